//! The hands: the sandbox daemon that executes the built-in tools (the catalogue of `corral-sandbox-protocol`)
//! inside a sandbox, authenticated by a per-sandbox token. The protocol, its client and the local launcher live in
//! `corral-sandbox-protocol`; the protocol is described in the crate's README.

pub mod auth;
pub mod calls;
pub mod config;
pub mod egress;
pub mod error;
pub mod files;
pub mod outputs;
pub mod packages;
pub mod reaper;
pub mod server;
pub mod tools;
pub mod truncate;
pub mod trust;

pub use corral_sandbox_protocol::random_hex;
