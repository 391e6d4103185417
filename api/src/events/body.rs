//! The typed bodies of session events, one per `type` of the API's event catalogue.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use super::{
    content::ContentBlock,
    kind::{EventProps, EventType, Sender},
    parts::{
        ConfirmationResult, Evaluation, ModelUsage, Permission, SessionErrorInfo, StopDetails, StopReason,
        Usage,
    },
};

/// What happened: the part of an event after its `id` and `processed_at`, tagged by `type`.
///
/// Types this crate does not know (threads, workflow runs, outcomes, custom types) are kept whole as raw JSON in
/// [`EventBody::Other`], so reading a log never fails on them and writing them back loses nothing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type")]
pub enum EventBody {
    /// `user.message`: starts or continues a turn.
    #[serde(rename = "user.message")]
    UserMessage(UserMessage),
    /// `user.interrupt`: stops the running turn.
    #[serde(rename = "user.interrupt")]
    UserInterrupt(UserInterrupt),
    /// `user.tool_confirmation`: answers a tool use waiting for confirmation.
    #[serde(rename = "user.tool_confirmation")]
    UserToolConfirmation(UserToolConfirmation),
    /// `user.custom_tool_result`: answers an `agent.custom_tool_use`.
    #[serde(rename = "user.custom_tool_result")]
    UserCustomToolResult(UserCustomToolResult),
    /// `user.tool_result`: answers an `agent.tool_use` (self-hosted environments).
    #[serde(rename = "user.tool_result")]
    UserToolResult(UserToolResult),
    /// `system.message`: privileged system-role context.
    #[serde(rename = "system.message")]
    SystemMessage(SystemMessage),
    /// `agent.message`: text from the agent.
    #[serde(rename = "agent.message")]
    AgentMessage(AgentMessage),
    /// `agent.thinking`: a progress signal; it carries no thinking text.
    #[serde(rename = "agent.thinking")]
    AgentThinking(Empty),
    /// `agent.tool_use`: the agent calls a built-in tool.
    #[serde(rename = "agent.tool_use")]
    AgentToolUse(AgentToolUse),
    /// `agent.tool_result`: the result of an `agent.tool_use`.
    #[serde(rename = "agent.tool_result")]
    AgentToolResult(AgentToolResult),
    /// `agent.mcp_tool_use`: the agent calls a tool of an MCP server.
    #[serde(rename = "agent.mcp_tool_use")]
    AgentMcpToolUse(AgentMcpToolUse),
    /// `agent.mcp_tool_result`: the result of an `agent.mcp_tool_use`.
    #[serde(rename = "agent.mcp_tool_result")]
    AgentMcpToolResult(AgentMcpToolResult),
    /// `agent.custom_tool_use`: the agent calls a tool the client runs.
    #[serde(rename = "agent.custom_tool_use")]
    AgentCustomToolUse(AgentCustomToolUse),
    /// `agent.thread_context_compacted`: older turns were summarised.
    #[serde(rename = "agent.thread_context_compacted")]
    AgentThreadContextCompacted(Empty),
    /// `session.status_running`: the agent is working.
    #[serde(rename = "session.status_running")]
    SessionStatusRunning(Empty),
    /// `session.status_idle`: the session waits for input.
    #[serde(rename = "session.status_idle")]
    SessionStatusIdle(SessionStatusIdle),
    /// `session.status_rescheduled`: a transient error; the session retries by itself.
    #[serde(rename = "session.status_rescheduled")]
    SessionStatusRescheduled(Empty),
    /// `session.status_terminated`: the session has ended.
    #[serde(rename = "session.status_terminated")]
    SessionStatusTerminated(Empty),
    /// `session.error`: something failed.
    #[serde(rename = "session.error")]
    SessionError(SessionError),
    /// `session.updated`: the session's settings changed.
    #[serde(rename = "session.updated")]
    SessionUpdated(SessionUpdated),
    /// `session.usage`: a snapshot of the session's cumulative usage.
    #[serde(rename = "session.usage")]
    SessionUsage(SessionUsage),
    /// `session.deleted`: the session is gone; ends every open stream.
    #[serde(rename = "session.deleted")]
    SessionDeleted(Empty),
    /// `span.model_request_start`: a model request began.
    #[serde(rename = "span.model_request_start")]
    SpanModelRequestStart(Empty),
    /// `span.model_request_end`: a model request ended.
    #[serde(rename = "span.model_request_end")]
    SpanModelRequestEnd(SpanModelRequestEnd),
    /// An event of a type this crate does not know, kept whole (including its `type`).
    #[serde(untagged)]
    Other(Value),
}

impl EventBody {
    /// The event's type, or `None` for a type Corral does not know. An [`EventBody::Other`] whose `type` is known
    /// (a known event stored with private fields) has that type.
    pub fn event_type(&self) -> Option<EventType> {
        Some(match self {
            Self::UserMessage(_) => EventType::UserMessage,
            Self::UserInterrupt(_) => EventType::UserInterrupt,
            Self::UserToolConfirmation(_) => EventType::UserToolConfirmation,
            Self::UserCustomToolResult(_) => EventType::UserCustomToolResult,
            Self::UserToolResult(_) => EventType::UserToolResult,
            Self::SystemMessage(_) => EventType::SystemMessage,
            Self::AgentMessage(_) => EventType::AgentMessage,
            Self::AgentThinking(_) => EventType::AgentThinking,
            Self::AgentToolUse(_) => EventType::AgentToolUse,
            Self::AgentToolResult(_) => EventType::AgentToolResult,
            Self::AgentMcpToolUse(_) => EventType::AgentMcpToolUse,
            Self::AgentMcpToolResult(_) => EventType::AgentMcpToolResult,
            Self::AgentCustomToolUse(_) => EventType::AgentCustomToolUse,
            Self::AgentThreadContextCompacted(_) => EventType::AgentThreadContextCompacted,
            Self::SessionStatusRunning(_) => EventType::SessionStatusRunning,
            Self::SessionStatusIdle(_) => EventType::SessionStatusIdle,
            Self::SessionStatusRescheduled(_) => EventType::SessionStatusRescheduled,
            Self::SessionStatusTerminated(_) => EventType::SessionStatusTerminated,
            Self::SessionError(_) => EventType::SessionError,
            Self::SessionUpdated(_) => EventType::SessionUpdated,
            Self::SessionUsage(_) => EventType::SessionUsage,
            Self::SessionDeleted(_) => EventType::SessionDeleted,
            Self::SpanModelRequestStart(_) => EventType::SpanModelRequestStart,
            Self::SpanModelRequestEnd(_) => EventType::SpanModelRequestEnd,
            Self::Other(_) => return EventType::from_name(self.type_name()),
        })
    }

    /// The event's `type` string.
    pub fn type_name(&self) -> &str {
        match self {
            Self::Other(raw) => raw.get("type").and_then(Value::as_str).unwrap_or(""),
            typed => typed.event_type().map_or("", EventType::name),
        }
    }

    /// What the event's type means to Corral; `None` for a type Corral does not know.
    pub fn props(&self) -> Option<EventProps> {
        self.event_type().map(EventType::props)
    }

    /// Whether a client sent this event (`user.*` and `system.message`).
    pub fn is_client_event(&self) -> bool {
        self.props().is_some_and(|p| p.sender == Sender::Client)
    }

    /// Whether a stream following the session ends after this event (`session.status_terminated`,
    /// `session.deleted`).
    pub fn ends_stream(&self) -> bool {
        self.props().is_some_and(|p| p.ends_stream)
    }

    /// Whether appending this event wakes the harness pool.
    pub fn wakes_harness(&self) -> bool {
        self.props().is_some_and(|p| p.wakes_harness)
    }
}

/// The body of events that carry nothing but their type. Unknown fields are ignored.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Empty {}

/// `user.message`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct UserMessage {
    /// `text`, `image`, `document` or `redacted` blocks.
    pub content: Vec<ContentBlock>,
}

/// `user.interrupt`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInterrupt {
    /// Interrupt only this thread; without it, every thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// `user.tool_confirmation`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UserToolConfirmation {
    /// The `agent.tool_use` or `agent.mcp_tool_use` event answered.
    pub tool_use_id: String,
    /// `allow` or `deny`.
    pub result: ConfirmationResult,
    /// Why, with `deny` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_message: Option<String>,
    /// The thread the confirmation was routed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// `user.custom_tool_result`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct UserCustomToolResult {
    /// The `agent.custom_tool_use` event answered.
    pub custom_tool_use_id: String,
    /// `text`, `image`, `document` or `search_result` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentBlock>>,
    /// Whether the tool failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// The thread the result was routed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// `user.tool_result`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct UserToolResult {
    /// The `agent.tool_use` event answered.
    pub tool_use_id: String,
    /// `text`, `image`, `document` or `search_result` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentBlock>>,
    /// Whether the tool failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// The thread the result was routed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// `system.message`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SystemMessage {
    /// Text blocks.
    pub content: Vec<ContentBlock>,
}

/// `agent.message`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentMessage {
    /// `text` or `redacted` blocks.
    pub content: Vec<ContentBlock>,
    /// Set when the event was copied from a subagent thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// `agent.tool_use`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentToolUse {
    /// The tool's name.
    pub name: String,
    /// The tool's input (a JSON object).
    pub input: Value,
    /// The permission the call was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_permission: Option<Permission>,
    /// How the permission was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
    /// Set when the event was copied from a subagent thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// `agent.tool_result`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentToolResult {
    /// The `agent.tool_use` event this answers.
    pub tool_use_id: String,
    /// `text`, `image`, `document` or `search_result` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentBlock>>,
    /// Whether the tool failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// Set when the event was copied from a subagent thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// `agent.mcp_tool_use`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentMcpToolUse {
    /// The MCP server's name.
    pub mcp_server_name: String,
    /// The tool's name.
    pub name: String,
    /// The tool's input (a JSON object).
    pub input: Value,
    /// The permission the call was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluated_permission: Option<Permission>,
    /// How the permission was decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<Evaluation>,
    /// Set when the event was copied from a subagent thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// `agent.mcp_tool_result`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentMcpToolResult {
    /// The `agent.mcp_tool_use` event this answers.
    pub mcp_tool_use_id: String,
    /// Result blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ContentBlock>>,
    /// Whether the tool failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// Set when the event was copied from a subagent thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// `agent.custom_tool_use`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentCustomToolUse {
    /// The custom tool's name.
    pub name: String,
    /// The tool's input (a JSON object).
    pub input: Value,
    /// Set when the event was copied from a subagent thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_thread_id: Option<String>,
}

/// `session.status_idle`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SessionStatusIdle {
    /// Why the session went idle.
    pub stop_reason: StopReason,
    /// Details of a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_details: Option<StopDetails>,
}

/// `session.error`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SessionError {
    /// What failed and whether the server retries.
    pub error: SessionErrorInfo,
}

/// `session.updated`: only the fields that changed are present. A present `null` (`Some(None)`) means cleared.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SessionUpdated {
    /// The full SessionAgent snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Value>,
    /// The new budget, or `Some(None)` when it was removed.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub budget: Option<Option<Value>>,
    /// The full metadata map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// The new title, or `Some(None)` when it was cleared.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub title: Option<Option<String>>,
}

/// Deserializes a field that is present (possibly `null`) as `Some`, so absent and `null` stay distinct.
fn present<'de, T, D>(deserializer: D) -> Result<Option<T>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// `session.usage`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SessionUsage {
    /// The cumulative usage so far.
    pub usage: Usage,
    /// The session's budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Value>,
}

/// `span.model_request_end`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SpanModelRequestEnd {
    /// The id of the matching `span.model_request_start`.
    pub model_request_start_id: String,
    /// The request's token counts.
    pub model_usage: ModelUsage,
    /// Whether the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
}
