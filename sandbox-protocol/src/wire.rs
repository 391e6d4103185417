//! The wire format between the harness and the sandbox daemon: one request runs one tool and answers with the shape
//! of an `agent.tool_result`. Failures of the request itself (bad token, malformed JSON, unknown tool) are HTTP
//! errors with an [`ErrorEnvelope`]; failures of the tool (file not found, command timed out) are `200` results with
//! `is_error: true`, because the model can read and fix them.

use serde::{Deserialize, Serialize};

/// The route that runs a tool.
pub const EXECUTE_PATH: &str = "/v1/execute";
/// The route that describes the daemon (version, workspace, tools).
pub const INFO_PATH: &str = "/v1/info";
/// The unauthenticated route naming the token the daemon accepts, by its SHA-256 ([`DaemonIdentity`]).
pub const IDENTITY_PATH: &str = "/v1/identity";
/// `PUT` (the body is the file; `?path=<absolute path>&id=<file id>`), `DELETE` (`?path=`) and `GET` (what is in
/// place, path → id): the session's file resources, put in place read-only by the harness (never a tool the model
/// calls).
pub const FILES_PATH: &str = "/v1/files";
/// `GET`: the session's outputs, the regular files under [`crate::pod::OUTPUTS_DIR`] ([`OutputsListing`]).
pub const OUTPUTS_PATH: &str = "/v1/outputs";
/// `GET ?path=<path relative to the outputs directory>`: one output's bytes.
pub const OUTPUT_CONTENT_PATH: &str = "/v1/outputs/content";
/// The unauthenticated liveness route for probes.
pub const HEALTH_PATH: &str = "/healthz";

/// `POST /v1/execute`: run `tool` with `input`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecuteRequest {
    /// The tool's name, one of the catalogue's (`crate::ToolName`).
    pub tool: String,
    /// The tool's input, as the model wrote it in `agent.tool_use.input`. Missing means `{}`.
    #[serde(default = "empty_object")]
    pub input: serde_json::Value,
    /// The id of the `agent.tool_use` this call answers; echoed back and logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    /// The fencing token of the caller's lease on the session. The daemon refuses a call whose token is older than
    /// one it has seen (409 `conflict_error`): its sender lost the session to another replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fencing_token: Option<u64>,
    /// Only recover the result of an earlier run of `tool_use_id` (in flight or kept), never start one: a new holder
    /// of the session asks this for a call it found started and unanswered. No such run: 404 `not_found_error`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recover: bool,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// The result of one tool call: the `content` and `is_error` of an `agent.tool_result`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolResult {
    /// What the model reads.
    pub content: Vec<ContentBlock>,
    /// Whether the tool failed (the model should see the text as an error).
    pub is_error: bool,
    /// The `tool_use_id` of the request, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    /// How long the daemon took to run the tool, in microseconds: the caller exports it as the daemon's span of
    /// the call (the daemon has no route to a trace collector).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_us: Option<u64>,
}

impl ToolResult {
    /// A successful result with one text block.
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            content: vec![ContentBlock::Text { text: text.into() }],
            is_error: false,
            tool_use_id: None,
            elapsed_us: None,
        }
    }

    /// A failed result with one text block.
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            is_error: true,
            ..Self::ok(text)
        }
    }

    /// All text blocks joined, for logs and tests.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .map(|ContentBlock::Text { text }| text.as_str())
            .collect()
    }
}

/// One block of tool output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
}

/// The body of every HTTP error: `{"type":"error","error":{"type","message"}}`, as in the Managed Agents API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// Always `"error"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What went wrong.
    pub error: ErrorBody,
}

/// The `error` object of an [`ErrorEnvelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `authentication_error`, `invalid_request_error`, `not_found_error`, `conflict_error` (a stale fencing token,
    /// or a `tool_use_id` reused for another call), `request_too_large` or `api_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A sentence for people.
    pub message: String,
}

/// `GET /v1/identity` (no token): which token this daemon accepts, as its SHA-256. A client checks it before it
/// sends its token, so a pod that took over a lost pod's address never receives that pod's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonIdentity {
    /// The SHA-256 of the accepted token, lowercase hex (`crate::pod::token_sha256`).
    pub token_sha256: String,
}

/// `GET /v1/info`: what this daemon is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// The daemon's version.
    pub version: String,
    /// The directory relative paths resolve against.
    pub workspace: String,
    /// The tools it runs.
    pub tools: Vec<String>,
}

/// One file under the outputs directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Its path relative to the outputs directory, `/`-separated.
    pub path: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// What changes when the file does: its size and modification time (`<size>:<mtime in ns>`).
    pub fingerprint: String,
}

/// `GET /v1/outputs`: the regular files under the outputs directory (symlinks and other kinds are not listed), at
/// most [`OutputsListing::MAX_FILES`], sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OutputsListing {
    /// The files.
    pub files: Vec<OutputFile>,
    /// Whether more files were there than listed (or some path was not UTF-8 or too deep).
    pub truncated: bool,
}

impl OutputsListing {
    /// The most files one listing names.
    pub const MAX_FILES: usize = 1000;
    /// The deepest directory nesting walked under the outputs directory.
    pub const MAX_DEPTH: usize = 16;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_has_the_shape_of_an_agent_tool_result() {
        let json = serde_json::to_value(ToolResult::error("boom")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"content":[{"type":"text","text":"boom"}],"is_error":true})
        );
    }

    #[test]
    fn a_request_without_input_means_an_empty_object() {
        let req: ExecuteRequest = serde_json::from_str(r#"{"tool":"bash"}"#).unwrap();
        assert_eq!(req.input, serde_json::json!({}));
        assert_eq!(req.tool_use_id, None);
    }
}
