//! The hands: the sandbox daemon that executes the agent toolset (`bash`, `read`, `write`, `edit`, `glob`, `grep`)
//! inside a sandbox, authenticated by a per-sandbox token; the client the harness calls it with; and a local mode
//! that runs the daemon as a child process. The protocol is described in the crate's README.

pub mod auth;
pub mod client;
pub mod config;
pub mod egress;
pub mod error;
pub mod local;
pub mod packages;
pub mod protocol;
pub mod reaper;
pub mod server;
pub mod tools;
pub mod truncate;
pub mod trust;

pub use client::{ClientError, SandboxClient};
pub use local::{Isolation, LocalSandbox, LocalSandboxOptions};
pub use protocol::{ContentBlock, ExecuteRequest, ToolResult};

/// `bytes` random bytes as lowercase hex (for tokens and shell markers).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() {
        // No system randomness: fall back to something unique to this process and moment.
        let seed = format!(
            "{}:{:?}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)
        );
        let digest = <sha2::Sha256 as sha2::Digest>::digest(seed.as_bytes());
        for (i, b) in buf.iter_mut().enumerate() {
            *b = digest[i % digest.len()];
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
