//! The agreement between the harness, the operator and the sandbox daemon, in one place:
//!
//! - [`wire`]: the HTTP protocol's requests, results and errors;
//! - [`catalogue`]: the built-in tools, one input type each, from which the model-facing schemas are generated;
//! - [`pod`]: the sandbox pod contract (names, the token digest, the daemon's variables and port);
//! - with feature `client`, [`client`]: the daemon's HTTP client, whose connections are checked by [`verified`];
//! - with feature `launcher`, [`launcher`]: the daemon run as a local child process (local mode and tests);
//! - with feature `random`, [`random_hex`] for tokens and markers.
//!
//! Without features it does no I/O, so the API vocabulary can depend on it.

pub mod catalogue;
pub mod pod;
mod schema;
pub mod wire;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "launcher")]
pub mod launcher;
#[cfg(feature = "random")]
mod random;
#[cfg(feature = "client")]
pub mod verified;

pub use catalogue::{TOOLSET, ToolName};
#[cfg(feature = "client")]
pub use client::{ClientError, SandboxClient};
#[cfg(feature = "launcher")]
pub use launcher::{Isolation, LocalSandbox, LocalSandboxError, LocalSandboxOptions};
#[cfg(feature = "random")]
pub use random::random_hex;
pub use wire::{ContentBlock, ExecuteRequest, ToolResult};
