//! The one table of event types: each type's name and what it means to Corral (who may send it, whether it wakes
//! the harness, whether it changes the session's status, whether it ends a stream).
//!
//! Adding an event type: add its variant here and to [`EventBody`](super::EventBody) (and to
//! [`EventParam`](super::EventParam) when clients send it); the compiler then lists every `match` that must say what
//! the new type does, here and in the harness, the gateway and the benchmarks.

/// Who appends an event of a type to a session's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Sender {
    /// A client, through `POST /v1/sessions/{id}/events` (`user.*`, `system.message`).
    Client,
    /// The harness, as the session's fenced writer (`agent.*`, `span.*`, the session's status and usage).
    Harness,
    /// The gateway, on an API call that is not an event (`session.updated`, `session.deleted`).
    Gateway,
}

/// What an event type means to Corral. One row of the table in [`EventType::props`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventProps {
    /// Who appends it.
    pub sender: Sender,
    /// Whether appending it wakes the namespace's harness pool (a client event the agent must answer).
    pub wakes_harness: bool,
    /// Whether it changes the session's status (`session.status_*`), so the Session's status is written.
    pub session_status: bool,
    /// Whether a stream following the session ends after it.
    pub ends_stream: bool,
}

impl EventProps {
    const fn new(sender: Sender) -> Self {
        Self {
            sender,
            wakes_harness: false,
            session_status: false,
            ends_stream: false,
        }
    }

    const fn wakes(mut self) -> Self {
        self.wakes_harness = true;
        self
    }

    const fn status(mut self) -> Self {
        self.session_status = true;
        self
    }

    const fn ends_stream(mut self) -> Self {
        self.ends_stream = true;
        self
    }
}

/// Every event type Corral knows, without its fields. Types it does not know are kept as
/// [`EventBody::Other`](super::EventBody::Other) and have no row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    /// `user.message`.
    UserMessage,
    /// `user.interrupt`.
    UserInterrupt,
    /// `user.tool_confirmation`.
    UserToolConfirmation,
    /// `user.custom_tool_result`.
    UserCustomToolResult,
    /// `user.tool_result`.
    UserToolResult,
    /// `system.message`.
    SystemMessage,
    /// `agent.message`.
    AgentMessage,
    /// `agent.thinking`.
    AgentThinking,
    /// `agent.tool_use`.
    AgentToolUse,
    /// `agent.tool_result`.
    AgentToolResult,
    /// `agent.mcp_tool_use`.
    AgentMcpToolUse,
    /// `agent.mcp_tool_result`.
    AgentMcpToolResult,
    /// `agent.custom_tool_use`.
    AgentCustomToolUse,
    /// `agent.thread_context_compacted`.
    AgentThreadContextCompacted,
    /// `session.status_running`.
    SessionStatusRunning,
    /// `session.status_idle`.
    SessionStatusIdle,
    /// `session.status_rescheduled`.
    SessionStatusRescheduled,
    /// `session.status_terminated`.
    SessionStatusTerminated,
    /// `session.error`.
    SessionError,
    /// `session.updated`.
    SessionUpdated,
    /// `session.usage`.
    SessionUsage,
    /// `session.deleted`.
    SessionDeleted,
    /// `span.model_request_start`.
    SpanModelRequestStart,
    /// `span.model_request_end`.
    SpanModelRequestEnd,
}

impl EventType {
    /// Every known type, in the API catalogue's order.
    pub const ALL: [Self; 24] = [
        Self::UserMessage,
        Self::UserInterrupt,
        Self::UserToolConfirmation,
        Self::UserCustomToolResult,
        Self::UserToolResult,
        Self::SystemMessage,
        Self::AgentMessage,
        Self::AgentThinking,
        Self::AgentToolUse,
        Self::AgentToolResult,
        Self::AgentMcpToolUse,
        Self::AgentMcpToolResult,
        Self::AgentCustomToolUse,
        Self::AgentThreadContextCompacted,
        Self::SessionStatusRunning,
        Self::SessionStatusIdle,
        Self::SessionStatusRescheduled,
        Self::SessionStatusTerminated,
        Self::SessionError,
        Self::SessionUpdated,
        Self::SessionUsage,
        Self::SessionDeleted,
        Self::SpanModelRequestStart,
        Self::SpanModelRequestEnd,
    ];

    /// The type's `type` string on the wire.
    pub const fn name(self) -> &'static str {
        match self {
            Self::UserMessage => "user.message",
            Self::UserInterrupt => "user.interrupt",
            Self::UserToolConfirmation => "user.tool_confirmation",
            Self::UserCustomToolResult => "user.custom_tool_result",
            Self::UserToolResult => "user.tool_result",
            Self::SystemMessage => "system.message",
            Self::AgentMessage => "agent.message",
            Self::AgentThinking => "agent.thinking",
            Self::AgentToolUse => "agent.tool_use",
            Self::AgentToolResult => "agent.tool_result",
            Self::AgentMcpToolUse => "agent.mcp_tool_use",
            Self::AgentMcpToolResult => "agent.mcp_tool_result",
            Self::AgentCustomToolUse => "agent.custom_tool_use",
            Self::AgentThreadContextCompacted => "agent.thread_context_compacted",
            Self::SessionStatusRunning => "session.status_running",
            Self::SessionStatusIdle => "session.status_idle",
            Self::SessionStatusRescheduled => "session.status_rescheduled",
            Self::SessionStatusTerminated => "session.status_terminated",
            Self::SessionError => "session.error",
            Self::SessionUpdated => "session.updated",
            Self::SessionUsage => "session.usage",
            Self::SessionDeleted => "session.deleted",
            Self::SpanModelRequestStart => "span.model_request_start",
            Self::SpanModelRequestEnd => "span.model_request_end",
        }
    }

    /// The type named `name`, if Corral knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// What the type means to Corral: the table every component reads.
    pub const fn props(self) -> EventProps {
        use Sender::{Client, Gateway, Harness};
        match self {
            Self::UserMessage
            | Self::UserInterrupt
            | Self::UserToolConfirmation
            | Self::UserCustomToolResult => EventProps::new(Client).wakes(),
            // A self-hosted worker's result, and extra system context, wait for the next turn.
            Self::UserToolResult | Self::SystemMessage => EventProps::new(Client),
            Self::AgentMessage
            | Self::AgentThinking
            | Self::AgentToolUse
            | Self::AgentToolResult
            | Self::AgentMcpToolUse
            | Self::AgentMcpToolResult
            | Self::AgentCustomToolUse
            | Self::AgentThreadContextCompacted
            | Self::SessionError
            | Self::SessionUsage
            | Self::SpanModelRequestStart
            | Self::SpanModelRequestEnd => EventProps::new(Harness),
            Self::SessionStatusRunning | Self::SessionStatusIdle | Self::SessionStatusRescheduled => {
                EventProps::new(Harness).status()
            }
            Self::SessionStatusTerminated => EventProps::new(Harness).status().ends_stream(),
            Self::SessionUpdated => EventProps::new(Gateway),
            Self::SessionDeleted => EventProps::new(Gateway).ends_stream(),
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Every known type's name, in the API catalogue's order.
pub const KNOWN_EVENT_TYPES: [&str; EventType::ALL.len()] = {
    let mut names = [""; EventType::ALL.len()];
    let mut i = 0;
    while i < names.len() {
        names[i] = EventType::ALL[i].name();
        i += 1;
    }
    names
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_one_name_that_leads_back_to_it() {
        let names: std::collections::BTreeSet<&str> = KNOWN_EVENT_TYPES.into_iter().collect();
        assert_eq!(names.len(), EventType::ALL.len());
        for t in EventType::ALL {
            assert_eq!(EventType::from_name(t.name()), Some(t));
        }
        assert_eq!(EventType::from_name("workflow_run.created"), None);
    }

    #[test]
    fn the_table_says_what_the_api_documents() {
        for t in EventType::ALL {
            let props = t.props();
            let client = t.name().starts_with("user.") || t.name() == "system.message";
            assert_eq!(props.sender == Sender::Client, client, "{t}");
            assert!(
                !props.wakes_harness || client,
                "{t} wakes the harness but no client sends it"
            );
            assert_eq!(
                props.session_status,
                t.name().starts_with("session.status_"),
                "{t}"
            );
        }
        let ends: Vec<&str> = EventType::ALL
            .into_iter()
            .filter(|t| t.props().ends_stream)
            .map(EventType::name)
            .collect();
        assert_eq!(ends, ["session.status_terminated", "session.deleted"]);
        assert!(EventType::UserMessage.props().wakes_harness);
        assert!(!EventType::SystemMessage.props().wakes_harness);
    }
}
