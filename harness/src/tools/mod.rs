//! Running the tool calls the harness runs itself: the [`ToolRunner`] interface and its implementations, for
//! built-in tools a local sandbox daemon per session ([`LocalToolRunner`]) or a sandbox pod per session asked for
//! through the Session's status ([`ClusterToolRunner`]), and for MCP tools a run's connected MCP servers
//! (`crate::mcp::McpConnections`). The engine runs every call through this one interface.
//!
//! A runner never fails a call: a sandbox or server that cannot be started, reached or trusted becomes an
//! `is_error` result the model reads ("losing the pod is a tool error, never a lost session").

mod client_cache;
mod cluster;
pub mod file_resources;
mod local;
pub mod outputs;
mod repositories;
mod sandbox_waits;
pub mod sessions;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use corral_api::events::ContentBlock;
use corral_sandbox_protocol::{ClientError, ExecuteRequest, ToolResult};
use serde_json::Value;

pub use cluster::ClusterToolRunner;
pub use local::LocalToolRunner;

/// One tool call the harness runs.
#[derive(Clone, Debug)]
pub struct ToolCall<'a> {
    /// The session's namespace.
    pub namespace: &'a str,
    /// The session.
    pub session: &'a str,
    /// The `agent.tool_use` event id.
    pub tool_use_id: &'a str,
    /// The tool's name.
    pub name: &'a str,
    /// The tool's input.
    pub input: &'a Value,
    /// The MCP server whose tool this is; `None` for a built-in tool.
    pub server: Option<&'a str>,
    /// The fencing token of the run's lease: the sandbox refuses the call once a newer holder of the session used it.
    pub fencing_token: u64,
    /// The agent's skills, whose files the sandbox is to hold when the call runs.
    pub skills: &'a [std::sync::Arc<crate::skills::LoadedSkill>],
}

impl ToolCall<'_> {
    /// The sandbox daemon's request for this (built-in) call.
    pub fn sandbox_request(&self) -> ExecuteRequest {
        ExecuteRequest {
            tool: self.name.to_owned(),
            input: self.input.clone(),
            tool_use_id: Some(self.tool_use_id.to_owned()),
            fencing_token: Some(self.fencing_token),
            recover: false,
        }
    }

    /// The sandbox daemon's request recovering this call's earlier run (see [`ToolRunner::recover`]).
    pub fn recover_request(&self) -> ExecuteRequest {
        ExecuteRequest {
            recover: true,
            ..self.sandbox_request()
        }
    }
}

/// The result of a call, as it goes into `agent.tool_result`.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolOutput {
    /// What the model reads.
    pub content: Vec<ContentBlock>,
    /// Whether the call failed.
    pub is_error: bool,
}

impl ToolOutput {
    /// A failed call with one text block.
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            content: vec![ContentBlock::text(text)],
            is_error: true,
        }
    }

    /// The daemon's result.
    pub fn from_sandbox(result: ToolResult) -> Self {
        Self {
            content: result
                .content
                .into_iter()
                .map(|corral_sandbox_protocol::ContentBlock::Text { text }| ContentBlock::text(text))
                .collect(),
            is_error: result.is_error,
        }
    }

    /// All text joined (logs, tests).
    pub fn text(&self) -> String {
        self.content.iter().filter_map(ContentBlock::as_text).collect()
    }
}

/// A boxed future of a tool's output.
pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = ToolOutput> + Send + 'a>>;

/// A boxed future of an earlier run's output, when there is one.
pub type RecoverFuture<'a> = Pin<Box<dyn Future<Output = Option<ToolOutput>> + Send + 'a>>;

/// A boxed future of getting a session's sandbox ready: the reason when it cannot be.
pub type PrepareFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// Runs tool calls for sessions. Dropping the future abandons the call.
pub trait ToolRunner: Send + Sync {
    /// Runs one call.
    fn execute<'a>(&'a self, call: ToolCall<'a>) -> ToolFuture<'a>;

    /// Gets the session's sandbox ready before any call needs it (eager provisioning). Runners whose sandbox
    /// costs nothing to start are ready at once.
    fn prepare<'a>(&'a self, _namespace: &'a str, _session: &'a str) -> PrepareFuture<'a> {
        Box::pin(std::future::ready(Ok(())))
    }

    /// For a call found started and unanswered in the log (its replica was lost mid-call): the output of the run the
    /// lost replica started, when the session's sandbox ran it (waiting for it if it still runs). Starts nothing,
    /// provisions no sandbox, and tells the sandbox this run's fencing token, so the lost replica can start no more
    /// calls there. `None`: no such run; the call is reported as interrupted.
    fn recover<'a>(&'a self, _call: ToolCall<'a>) -> RecoverFuture<'a> {
        Box::pin(std::future::ready(None))
    }

    /// While a call or [`ToolRunner::prepare`] waits for the session's sandbox: why it is not ready yet when that
    /// is worth telling the client (no node can take its pod). `None` when nothing is waiting or all is well.
    fn sandbox_wait(&self, _namespace: &str, _session: &str) -> Option<String> {
        None
    }
}

/// How long to wait for the daemon's answer: a `bash` call's own `timeout_ms` (or the daemon's default of two
/// minutes) plus half a minute, so the daemon reports its timeout itself; a minute for the other tools.
pub fn call_timeout(call: &ToolCall<'_>) -> Duration {
    if call.name == "bash" {
        let ms = call
            .input
            .get("timeout_ms")
            .and_then(Value::as_u64)
            .unwrap_or(120_000);
        Duration::from_millis(ms.min(600_000)) + Duration::from_secs(30)
    } else {
        Duration::from_secs(60)
    }
}

/// The text of a result for a sandbox that could not run the call.
pub fn lost_sandbox(error: &dyn std::fmt::Display) -> ToolOutput {
    ToolOutput::error(format!(
        "The sandbox was lost before this tool call finished ({error}); it will be replaced on the next tool call. \
         Files and shell state of the lost sandbox may be gone. The call may have run partly; it was not retried."
    ))
}

/// The output of a recover request's outcome: the earlier run's, or `None` (no such run, or no answer).
pub fn recovered_output(outcome: Result<ToolResult, ClientError>) -> Option<ToolOutput> {
    match outcome {
        Ok(result) => Some(ToolOutput::from_sandbox(result)),
        Err(err) => {
            tracing::info!(error = %err, "no earlier run of the call to recover");
            None
        }
    }
}

/// What the model reads of a sandbox call's outcome, and whether the sandbox is gone, so its client must be dropped
/// and the next call starts or asks for a new one: no connection, a connection that broke, no answer in time, or a
/// token it no longer accepts (a replaced pod has a new one).
pub fn sandbox_output(outcome: Result<ToolResult, ClientError>) -> (ToolOutput, bool) {
    match outcome {
        Ok(result) => (ToolOutput::from_sandbox(result), false),
        Err(
            err @ (ClientError::Refused { .. }
            | ClientError::Unreachable { .. }
            | ClientError::Timeout(_)
            | ClientError::Rejected { status: 401, .. }),
        ) => (lost_sandbox(&err), true),
        Err(err) => (
            ToolOutput::error(format!("The sandbox refused the call: {err}")),
            false,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16) -> ClientError {
        ClientError::Rejected {
            status,
            kind: "x".into(),
            message: "no".into(),
        }
    }

    #[test]
    fn a_sandbox_request_carries_the_call_id_and_the_lease_token() {
        let input = serde_json::json!({"command": "true"});
        let call = ToolCall {
            namespace: "team-a",
            session: "sesn_1",
            tool_use_id: "sevt_1",
            name: "bash",
            input: &input,
            server: None,
            fencing_token: 42,
            skills: &[],
        };
        let request = call.sandbox_request();
        assert_eq!(
            (request.tool_use_id.as_deref(), request.fencing_token),
            (Some("sevt_1"), Some(42))
        );
    }

    #[test]
    fn a_sandbox_that_cannot_be_reached_or_no_longer_knows_the_token_is_lost() {
        for gone in [
            ClientError::Timeout(Duration::from_secs(1)),
            ClientError::Refused {
                url: "http://x".into(),
                message: "refused".into(),
            },
            rejected(401),
        ] {
            let (output, lost) = sandbox_output(Err(gone));
            assert!(lost && output.is_error);
            assert!(output.text().contains("it will be replaced"), "{}", output.text());
        }
        let (output, lost) = sandbox_output(Err(rejected(400)));
        assert!(!lost && output.is_error);
        assert!(output.text().starts_with("The sandbox refused the call"));
        let (output, lost) = sandbox_output(Ok(ToolResult::ok("hi")));
        assert_eq!(
            (output.text().as_str(), output.is_error, lost),
            ("hi", false, false)
        );
    }
}
