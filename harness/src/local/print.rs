//! Human-readable lines for session events.

use corral_api::events::{ContentBlock, Event, EventBody, StopReason};

fn text(blocks: &[ContentBlock]) -> String {
    blocks
        .iter()
        .map(|b| {
            b.as_text()
                .map_or_else(|| format!("[{}]", b.type_name()), str::to_owned)
        })
        .collect::<Vec<_>>()
        .join("")
}

fn indent(text: &str) -> String {
    text.trim_end().lines().collect::<Vec<_>>().join("\n    ")
}

/// One line (or a few) describing an event; `None` for events not worth showing.
pub fn describe(event: &Event) -> Option<String> {
    Some(match &event.body {
        EventBody::UserMessage(m) => format!("> user: {}", indent(&text(&m.content))),
        EventBody::UserInterrupt(_) => "> user: (interrupt)".into(),
        EventBody::UserCustomToolResult(r) => {
            format!(
                "> custom tool result: {}",
                indent(&text(r.content.as_deref().unwrap_or_default()))
            )
        }
        EventBody::UserToolConfirmation(c) => format!("> confirmation: {:?}", c.result),
        EventBody::SessionStatusRunning(_) => "~ running".into(),
        EventBody::SessionStatusRescheduled(_) => "~ rescheduled (retrying)".into(),
        EventBody::SessionStatusIdle(idle) => match &idle.stop_reason {
            StopReason::EndTurn => "~ idle (end_turn)".into(),
            StopReason::RequiresAction { event_ids } => {
                format!("~ idle (requires_action: {})", event_ids.join(", "))
            }
            other => format!(
                "~ idle ({})",
                serde_json::to_value(other).ok()?.get("type")?.as_str()?
            ),
        },
        EventBody::AgentThinking(_) => "  (thinking)".into(),
        EventBody::AgentMessage(m) => format!("agent: {}", indent(&text(&m.content))),
        EventBody::AgentToolUse(t) => format!("tool {} {}", t.name, t.input),
        EventBody::AgentCustomToolUse(t) => {
            format!("custom tool {} {} (waiting for its result)", t.name, t.input)
        }
        EventBody::AgentMcpToolUse(t) => format!("mcp tool {}/{} {}", t.mcp_server_name, t.name, t.input),
        EventBody::AgentToolResult(r) => result(r.is_error, r.content.as_deref()),
        EventBody::AgentMcpToolResult(r) => result(r.is_error, r.content.as_deref()),
        EventBody::AgentThreadContextCompacted(_) => "~ context compacted".into(),
        EventBody::SessionError(e) => format!("! {}: {}", e.error.kind, e.error.message),
        EventBody::SpanModelRequestEnd(end) if end.is_error != Some(true) => format!(
            "  (model: {} in, {} out, {} cached)",
            end.model_usage.input_tokens,
            end.model_usage.output_tokens,
            end.model_usage.cache_read_input_tokens
        ),
        EventBody::UserToolResult(_)
        | EventBody::SystemMessage(_)
        | EventBody::SessionStatusTerminated(_)
        | EventBody::SessionUpdated(_)
        | EventBody::SessionUsage(_)
        | EventBody::SessionDeleted(_)
        | EventBody::SpanModelRequestStart(_)
        | EventBody::SpanModelRequestEnd(_)
        | EventBody::Other(_) => return None,
    })
}

fn result(is_error: Option<bool>, content: Option<&[ContentBlock]>) -> String {
    let mark = if is_error == Some(true) { "error" } else { "result" };
    format!("  {mark}: {}", indent(&text(content.unwrap_or_default())))
}
