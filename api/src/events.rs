//! Session events, as the Managed Agents API puts them on the wire.
//!
//! An [`Event`] is an `id`, a `processed_at` time and a typed [`EventBody`] tagged by `type` (`user.message`,
//! `agent.tool_use`, `session.status_idle`, ...). The JSON is exactly the API's: events go out over the HTTP API
//! unchanged. Event types and content blocks this crate does not know are kept as raw JSON, so reading a stored log
//! never fails on them. What a client may send is [`EventParam`], checked by [`parse_send_events`].

mod body;
mod content;
mod id;
mod kind;
mod params;
mod parts;
#[cfg(test)]
mod tests;

pub use body::{
    AgentCustomToolUse, AgentMcpToolResult, AgentMcpToolUse, AgentMessage, AgentToolResult, AgentToolUse,
    Empty, EventBody, SessionError, SessionStatusIdle, SessionUpdated, SessionUsage, SpanModelRequestEnd,
    SystemMessage, UserCustomToolResult, UserInterrupt, UserMessage, UserToolConfirmation, UserToolResult,
};
pub use content::{
    Citations, ContentBlock, DocumentBlock, ImageBlock, SearchResultBlock, Source, TextBlock, TextContent,
};
pub use id::{EventId, InvalidEventId};
pub use kind::{EventProps, EventType, KNOWN_EVENT_TYPES, Sender};
pub use params::{
    DOCUMENT_MEDIA_TYPE, EventParam, EventParamError, IMAGE_MEDIA_TYPES, MAX_EVENTS_PER_REQUEST,
    parse_send_events, validate_params,
};
pub use parts::{
    AutoPermission, CacheCreation, ConfirmationResult, Cost, Evaluation, ModelUsage, Permission, RetryStatus,
    ServerToolUse, SessionErrorInfo, StopDetails, StopReason, Usage, error_types,
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, serialized as RFC 3339 (`2026-05-01T10:00:00.120Z`).
pub use jiff::Timestamp;

/// One event of a session's log: `{"type": ..., "id": ..., ...fields, "processed_at": ...}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Event {
    /// The event's API id (`sevt_…`).
    pub id: EventId,
    /// What happened.
    #[serde(flatten)]
    pub body: EventBody,
    /// When the session log took the event, at millisecond precision; `null` only on echoes of events not yet
    /// stored.
    #[serde(default, serialize_with = "rfc3339_millis", deserialize_with = "rfc3339")]
    pub processed_at: Option<Timestamp>,
}

impl Event {
    /// An event with a fresh id, not yet processed.
    pub fn new(body: EventBody) -> Self {
        Self {
            id: EventId::generate(),
            body,
            processed_at: None,
        }
    }

    /// The event's `type` string.
    pub fn type_name(&self) -> &str {
        self.body.type_name()
    }
}

/// Formats a timestamp as RFC 3339 in UTC with exactly three fractional digits, as the API's examples do.
pub fn format_rfc3339_millis(ts: &Timestamp) -> String {
    jiff::fmt::temporal::DateTimePrinter::new()
        .precision(Some(3))
        .timestamp_to_string(ts)
}

fn rfc3339_millis<S: Serializer>(ts: &Option<Timestamp>, serializer: S) -> Result<S::Ok, S::Error> {
    match ts {
        Some(ts) => serializer.serialize_str(&format_rfc3339_millis(ts)),
        None => serializer.serialize_none(),
    }
}

fn rfc3339<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Timestamp>, D::Error> {
    Option::<Timestamp>::deserialize(deserializer)
}
