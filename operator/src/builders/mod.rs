//! Pure builders of the harness: the desired child objects computed from specs and configuration, without any
//! client. (The sandbox's builders live in [`crate::sandbox`].)

pub mod common;
pub mod harness;
