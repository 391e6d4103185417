//! Computing the harness's status fields from the log (pure).

use corral_api::budget::Money;
use corral_api::events::{EventBody, format_rfc3339_millis};
use corral_api::session::{SessionPhase, Usage};

use crate::log::LogEntry;

/// The status fields the harness owns.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusFields {
    /// `idle`, `running` or `rescheduling`.
    pub phase: SessionPhase,
    /// Tokens used so far.
    pub usage: Usage,
    /// Estimated list cost; `None` when unknown (a model without a price) or nothing was spent.
    pub list_cost: Option<Money>,
    /// Seconds spent running, to the millisecond.
    pub active_seconds: f64,
    /// When the last event was appended (RFC 3339).
    pub last_event_time: Option<String>,
}

/// The fields as the log says.
pub fn compute(entries: &[LogEntry]) -> StatusFields {
    let mut phase = SessionPhase::Idle;
    let mut usage = Usage::default();
    let mut spent = crate::pricing::nothing_spent();
    let mut active_ms: u64 = 0;
    let mut running_since: Option<u64> = None;
    for entry in entries {
        let at = entry.cursor.millis();
        match &entry.body {
            EventBody::SessionStatusRunning(_) => {
                phase = SessionPhase::Running;
                running_since.get_or_insert(at);
            }
            EventBody::SessionStatusIdle(_) | EventBody::SessionStatusRescheduled(_) => {
                phase = if matches!(entry.body, EventBody::SessionStatusIdle(_)) {
                    SessionPhase::Idle
                } else {
                    SessionPhase::Rescheduling
                };
                if let Some(since) = running_since.take() {
                    active_ms += at.saturating_sub(since);
                }
            }
            EventBody::SessionStatusTerminated(_) => phase = SessionPhase::Terminated,
            EventBody::SpanModelRequestEnd(end) => {
                let u = &end.model_usage;
                crate::pricing::add_request(&mut spent, u, entry.hidden_f64("cost_cents"));
                usage.input_tokens += i64::try_from(u.input_tokens).unwrap_or(i64::MAX);
                usage.output_tokens += i64::try_from(u.output_tokens).unwrap_or(i64::MAX);
                usage.cache_read_input_tokens += i64::try_from(u.cache_read_input_tokens).unwrap_or(i64::MAX);
                usage.cache_creation_input_tokens +=
                    i64::try_from(u.cache_creation_input_tokens).unwrap_or(i64::MAX);
            }
            EventBody::UserMessage(_)
            | EventBody::UserInterrupt(_)
            | EventBody::UserToolConfirmation(_)
            | EventBody::UserCustomToolResult(_)
            | EventBody::UserToolResult(_)
            | EventBody::SystemMessage(_)
            | EventBody::AgentMessage(_)
            | EventBody::AgentThinking(_)
            | EventBody::AgentToolUse(_)
            | EventBody::AgentToolResult(_)
            | EventBody::AgentMcpToolUse(_)
            | EventBody::AgentMcpToolResult(_)
            | EventBody::AgentCustomToolUse(_)
            | EventBody::AgentThreadContextCompacted(_)
            | EventBody::SessionError(_)
            | EventBody::SessionUpdated(_)
            | EventBody::SessionUsage(_)
            | EventBody::SessionDeleted(_)
            | EventBody::SpanModelRequestStart(_)
            | EventBody::Other(_) => {}
        }
    }
    if let (Some(since), Some(last)) = (running_since, entries.last()) {
        active_ms += last.cursor.millis().saturating_sub(since);
    }
    StatusFields {
        phase,
        usage,
        list_cost: crate::pricing::list_cost(spent),
        active_seconds: active_ms as f64 / 1000.0,
        last_event_time: entries.last().map(|e| format_rfc3339_millis(&e.cursor.time())),
    }
}
