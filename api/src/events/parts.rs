//! The sub-shapes events carry: stop reasons, permission evaluations, errors and usage.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Why a session went idle (`session.status_idle.stop_reason`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StopReason {
    /// The agent finished its turn.
    EndTurn,
    /// The session waits for the client to resolve these events (tool confirmations, custom tool results).
    RequiresAction {
        /// Ids of the blocking `agent.tool_use`, `agent.mcp_tool_use` or `agent.custom_tool_use` events.
        event_ids: Vec<String>,
    },
    /// Retries of a failing turn ran out.
    RetriesExhausted,
    /// The session's budget is spent.
    BudgetReached,
    /// The model refused.
    Refusal,
    /// A stop reason this crate does not know, kept as it came.
    #[serde(untagged)]
    Other(Value),
}

impl StopReason {
    /// Whether this idle ends the turn (anything but `requires_action`).
    pub fn ends_turn(&self) -> bool {
        !matches!(self, Self::RequiresAction { .. })
    }
}

/// Details of a refusal (`session.status_idle.stop_details`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StopDetails {
    /// Always `refusal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `cyber`, `bio`, `frontier_llm`, `reasoning_extraction`, `general_harms` or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// A human-readable explanation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// The permission a tool call was given.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// The call runs.
    Allow,
    /// The call waits for a `user.tool_confirmation`.
    Ask,
    /// The call does not run; a synthetic error result follows.
    Deny,
}

/// How a tool call's permission was decided (`evaluation`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Evaluation {
    /// The policy always allows this tool.
    AlwaysAllow,
    /// The policy always asks for this tool.
    AlwaysAsk,
    /// An automatic evaluator decided.
    Auto {
        /// What it decided.
        evaluated_permission: AutoPermission,
    },
    /// An evaluation this crate does not know, kept as it came.
    #[serde(untagged)]
    Other(Value),
}

/// The decision of an automatic permission evaluator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AutoPermission {
    /// Allowed.
    Allow,
    /// Needs a confirmation.
    Ask {
        /// Why (an open set: `indeterminate`, `high_risk`, ...).
        reason_code: String,
    },
    /// Denied.
    Deny {
        /// Why (an open set: `indeterminate`, `high_risk`, ...).
        reason_code: String,
    },
    /// A decision this crate does not know, kept as it came.
    #[serde(untagged)]
    Other(Value),
}

/// The answer to a tool confirmation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmationResult {
    /// Run the call.
    Allow,
    /// Do not run it.
    Deny,
}

/// The error of a `session.error` event: `{type, message, retry_status, ...}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SessionErrorInfo {
    /// The error type, for example `model_overloaded_error` (see [`error_types`]).
    #[serde(rename = "type")]
    pub kind: String,
    /// A human-readable message.
    pub message: String,
    /// Whether the server retries.
    pub retry_status: RetryStatus,
    /// Fields some error types add (`mcp_server_name`, `credential_id`, `vault_id`, `repository_url`), kept as
    /// they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl SessionErrorInfo {
    /// An error of type `kind` with `message`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>, retry_status: RetryStatus) -> Self {
        Self {
            kind: kind.into(),
            message: message.into(),
            retry_status,
            extra: Map::new(),
        }
    }
}

/// The values of `session.error.error.type`.
pub mod error_types {
    /// Anything else.
    pub const UNKNOWN: &str = "unknown_error";
    /// The model provider is overloaded.
    pub const MODEL_OVERLOADED: &str = "model_overloaded_error";
    /// The model provider rate-limited the request.
    pub const MODEL_RATE_LIMITED: &str = "model_rate_limited_error";
    /// The model request failed.
    pub const MODEL_REQUEST_FAILED: &str = "model_request_failed_error";
    /// A billing problem.
    pub const BILLING: &str = "billing_error";
    /// Too many tool uses in a turn.
    pub const TOOL_USE_LIMIT_REACHED: &str = "tool_use_limit_reached_error";
    /// Compaction could not keep the context within its budget.
    pub const COMPACTION_LIMIT_REACHED: &str = "compaction_limit_reached_error";
    /// An MCP server could not be reached (adds `mcp_server_name`).
    pub const MCP_CONNECTION_FAILED: &str = "mcp_connection_failed_error";
    /// An MCP server refused the credentials (adds `mcp_server_name`).
    pub const MCP_AUTHENTICATION_FAILED: &str = "mcp_authentication_failed_error";
}

/// Whether the server retries after a `session.error`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RetryStatus {
    /// The server retries by itself.
    Retrying,
    /// The turn is dead; the session goes idle.
    Exhausted,
    /// The session will terminate.
    Terminal,
    /// A status this crate does not know, kept as it came.
    #[serde(untagged)]
    Other(Value),
}

/// Token counts of one model request (`span.model_request_end.model_usage`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelUsage {
    /// Input tokens not read from or written to the cache.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    pub cache_creation_input_tokens: u64,
    /// Input tokens read from the cache.
    pub cache_read_input_tokens: u64,
    /// `standard` or `fast`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<String>,
}

/// A session's cumulative usage (`session.usage.usage`, the Session object's `usage`). Every field is optional.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// Input tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Input tokens written to the cache, by lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
    /// Server-side tool requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_tool_use: Option<ServerToolUse>,
    /// The list-price cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_cost: Option<Cost>,
    /// Wall time during which at least one thread was running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_seconds: Option<f64>,
}

/// `{ephemeral_5m_input_tokens?, ephemeral_1h_input_tokens?}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CacheCreation {
    /// Tokens written to the 5-minute cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_5m_input_tokens: Option<u64>,
    /// Tokens written to the 1-hour cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_1h_input_tokens: Option<u64>,
}

/// `{web_search_requests?, web_fetch_requests?}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerToolUse {
    /// Web searches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search_requests: Option<u64>,
    /// Web fetches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_fetch_requests: Option<u64>,
}

/// `{amount, currency}`: `amount` in minor units as a decimal string.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Minor units as a decimal string, for example `"2500"`.
    pub amount: String,
    /// `USD`.
    pub currency: String,
}
