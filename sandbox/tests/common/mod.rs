//! Starting the real daemon binary for the tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use corral_sandbox_protocol::{Isolation, LocalSandbox, LocalSandboxOptions, SandboxClient, ToolResult};
use serde_json::{Value, json};

pub const BINARY: &str = env!("CARGO_BIN_EXE_corral-sandbox");

/// A daemon in a fresh workspace, as a plain child process.
pub async fn start() -> LocalSandbox {
    start_with(&[]).await
}

/// A daemon with extra flags.
pub async fn start_with(args: &[&str]) -> LocalSandbox {
    LocalSandbox::start(LocalSandboxOptions {
        binary: Some(BINARY.into()),
        isolation: Isolation::Plain,
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        ..LocalSandboxOptions::default()
    })
    .await
    .expect("the daemon starts")
}

pub async fn call(client: &SandboxClient, tool: &str, input: Value) -> ToolResult {
    client
        .execute(tool, input, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{tool} call failed: {e}"))
}

/// Runs a bash command and returns its text, asserting it is not an error.
pub async fn bash_ok(client: &SandboxClient, command: &str) -> String {
    let result = call(client, "bash", json!({ "command": command })).await;
    assert!(!result.is_error, "{command:?} failed: {}", result.text());
    result.text()
}
