//! Pure builders: the desired child objects computed from specs and configuration, without any client.

pub mod common;
pub mod harness;
pub mod sandbox;
