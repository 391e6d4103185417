//! Constructors of the events the harness appends.

use corral_api::events::{
    AgentMcpToolResult, AgentToolResult, ContentBlock, Empty, EventBody, EventId, ModelUsage, RetryStatus,
    SessionError, SessionErrorInfo, SessionStatusIdle, SessionUsage, SpanModelRequestEnd, StopReason, Usage,
};
use corral_session::NewEvent;
use serde_json::Value;

use crate::log::hidden::{fields, with_hidden};

/// What a model request is for (`corral.purpose` of its `span.model_request_start`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// The agent's reply.
    Reply,
    /// Summarising older turns.
    Compaction,
}

impl Purpose {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reply => "reply",
            Self::Compaction => "compaction",
        }
    }
}

/// `session.status_running`.
pub fn running() -> NewEvent {
    EventBody::SessionStatusRunning(Empty {}).into()
}

/// `session.status_rescheduled`.
pub fn rescheduled() -> NewEvent {
    EventBody::SessionStatusRescheduled(Empty {}).into()
}

/// `session.status_idle` with `stop_reason`.
pub fn idle(stop_reason: StopReason) -> NewEvent {
    EventBody::SessionStatusIdle(SessionStatusIdle {
        stop_reason,
        stop_details: None,
    })
    .into()
}

/// `span.model_request_start` for `purpose`.
pub fn span_start(purpose: Purpose) -> NewEvent {
    let body = EventBody::SpanModelRequestStart(Empty {});
    match purpose {
        Purpose::Reply => body.into(),
        Purpose::Compaction => with_hidden(body, fields([("purpose", purpose.as_str().into())])).into(),
    }
}

/// `span.model_request_end` closing `start`, with the model's stop reason kept privately.
pub fn span_end(start: &EventId, usage: ModelUsage, error: bool, stop: Option<&str>) -> NewEvent {
    span_end_served(start, usage, error, stop, None)
}

/// The model that served a request and the request's estimated list cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Served<'a> {
    /// The provider's name (`anthropic`, `openai`, `scripted`).
    pub provider: &'a str,
    /// The model id.
    pub model: &'a str,
    /// The estimated list cost in US cents; `None` when the price table does not know the model.
    pub cost_cents: Option<f64>,
}

/// [`span_end`] recording also which model served the request and what it cost (private fields).
pub fn span_end_served(
    start: &EventId,
    usage: ModelUsage,
    error: bool,
    stop: Option<&str>,
    served: Option<&Served<'_>>,
) -> NewEvent {
    let body = EventBody::SpanModelRequestEnd(SpanModelRequestEnd {
        model_request_start_id: start.to_string(),
        model_usage: usage,
        is_error: error.then_some(true),
    });
    with_hidden(
        body,
        fields([
            ("stop_reason", stop.map_or(Value::Null, Value::from)),
            ("provider", served.map_or(Value::Null, |s| s.provider.into())),
            ("model", served.map_or(Value::Null, |s| s.model.into())),
            (
                "cost_cents",
                served.and_then(|s| s.cost_cents).map_or(Value::Null, Value::from),
            ),
        ]),
    )
    .into()
}

/// `session.usage` with the cumulative usage and the session's budget.
pub fn usage(usage: Usage, budget: Option<Value>) -> NewEvent {
    EventBody::SessionUsage(SessionUsage { usage, budget }).into()
}

/// `session.error`.
pub fn error(kind: &str, message: impl Into<String>, retry: RetryStatus) -> NewEvent {
    EventBody::SessionError(SessionError {
        error: SessionErrorInfo::new(kind, message, retry),
    })
    .into()
}

/// `agent.tool_result` answering `tool_use_id`.
pub fn tool_result(tool_use_id: &EventId, content: Vec<ContentBlock>, is_error: bool) -> NewEvent {
    EventBody::AgentToolResult(AgentToolResult {
        tool_use_id: tool_use_id.to_string(),
        content: Some(content),
        is_error: Some(is_error),
        session_thread_id: None,
    })
    .into()
}

/// An error `agent.tool_result` with one text block.
pub fn tool_error(tool_use_id: &EventId, text: impl Into<String>) -> NewEvent {
    tool_result(tool_use_id, vec![ContentBlock::text(text)], true)
}

/// `agent.mcp_tool_result` answering `mcp_tool_use_id`.
pub fn mcp_tool_result(mcp_tool_use_id: &EventId, content: Vec<ContentBlock>, is_error: bool) -> NewEvent {
    EventBody::AgentMcpToolResult(AgentMcpToolResult {
        mcp_tool_use_id: mcp_tool_use_id.to_string(),
        content: Some(content),
        is_error: Some(is_error),
        session_thread_id: None,
    })
    .into()
}

/// The result event of a call the harness runs: `agent.mcp_tool_result` for MCP tools, else `agent.tool_result`.
pub fn result_for(mcp: bool, tool_use_id: &EventId, content: Vec<ContentBlock>, is_error: bool) -> NewEvent {
    if mcp {
        mcp_tool_result(tool_use_id, content, is_error)
    } else {
        tool_result(tool_use_id, content, is_error)
    }
}

/// An error result with one text block, of the kind [`result_for`] picks.
pub fn error_for(mcp: bool, tool_use_id: &EventId, text: impl Into<String>) -> NewEvent {
    result_for(mcp, tool_use_id, vec![ContentBlock::text(text)], true)
}

/// `session.error` for an MCP server that is not available (`mcp_connection_failed_error` or
/// `mcp_authentication_failed_error`, with `mcp_server_name`). The turn goes on without the server's tools.
pub fn mcp_error(kind: &str, server: &str, message: impl Into<String>) -> NewEvent {
    let mut error = SessionErrorInfo::new(kind, message, RetryStatus::Retrying);
    error
        .extra
        .insert("mcp_server_name".to_owned(), Value::from(server));
    EventBody::SessionError(SessionError { error }).into()
}

/// What the model reads for a built-in call that has no result because the harness stopped while it ran.
pub const INTERRUPTED_BY_RESTART: &str = "This tool call was interrupted: the agent's runtime restarted while the \
     call was in progress, so it may have run partly or not at all. It was NOT run again. Check its effects before \
     relying on them, and call the tool again if needed.";

/// What the model reads for a call that the user's interrupt stopped.
pub const INTERRUPTED_BY_USER: &str =
    "This tool call was interrupted by the user and may have run partly or not at all. It was not run again.";

/// What the model reads for a call that the user's interrupt stopped before it started.
pub const NOT_RUN_INTERRUPT: &str = "This tool call was not run: the user interrupted the turn first.";
