//! How events read for people: one summary line each (`corral events`), or a transcript (`chat`, `run`).

use console::{Style, style};
use serde_json::Value;

/// The type of an event.
pub fn kind(event: &Value) -> &str {
    event.get("type").and_then(Value::as_str).unwrap_or("?")
}

/// The text blocks of `content[]` joined with newlines.
pub fn text(event: &Value) -> String {
    let Some(blocks) = event.get("content").and_then(Value::as_array) else {
        return String::new();
    };
    blocks
        .iter()
        .filter_map(|b| match b.get("type").and_then(Value::as_str) {
            Some("text") => b.get("text").and_then(Value::as_str).map(str::to_owned),
            Some(other) => Some(format!("[{other}]")),
            None => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A tool call's input, compact: a `command` alone (bash), else the JSON.
pub fn tool_input(event: &Value) -> String {
    match event.get("input") {
        Some(Value::Object(m)) if m.len() == 1 && m.get("command").is_some_and(Value::is_string) => m
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Some(v) => v.to_string(),
        None => String::new(),
    }
}

fn is_error(event: &Value) -> bool {
    event.get("is_error").and_then(Value::as_bool) == Some(true)
}

/// `s` on one line, cut to `max` characters with an ellipsis.
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// A one-line summary of what an event says.
pub fn summary(event: &Value) -> String {
    let ty = kind(event);
    match ty {
        "user.message" | "agent.message" | "system.message" => text(event),
        "agent.tool_use" | "agent.custom_tool_use" => {
            format!("{} {}", field(event, "name"), tool_input(event))
        }
        "agent.mcp_tool_use" => format!(
            "{}/{} {}",
            field(event, "mcp_server_name"),
            field(event, "name"),
            tool_input(event)
        ),
        "agent.tool_result" | "agent.mcp_tool_result" | "user.custom_tool_result" | "user.tool_result" => {
            let prefix = if is_error(event) { "error: " } else { "" };
            format!("{prefix}{}", text(event))
        }
        "user.tool_confirmation" => format!("{} {}", field(event, "result"), field(event, "tool_use_id")),
        "session.status_idle" => stop_reason(event),
        "session.error" => {
            let e = event.get("error").cloned().unwrap_or(Value::Null);
            format!(
                "{}: {} ({})",
                field(&e, "type"),
                field(&e, "message"),
                e.pointer("/retry_status/type")
                    .and_then(Value::as_str)
                    .unwrap_or("-")
            )
        }
        "span.model_request_end" => {
            let u = event.get("model_usage").cloned().unwrap_or(Value::Null);
            format!(
                "{} in, {} out",
                field(&u, "input_tokens"),
                field(&u, "output_tokens")
            )
        }
        "session.updated" => {
            let mut keys: Vec<&str> = event
                .as_object()
                .map(|m| {
                    m.keys()
                        .map(String::as_str)
                        .filter(|k| !matches!(*k, "type" | "id" | "processed_at"))
                        .collect()
                })
                .unwrap_or_default();
            keys.sort_unstable();
            keys.join(", ")
        }
        _ => String::new(),
    }
}

/// `end_turn`, or `requires_action (sevt_1, sevt_2)`.
pub fn stop_reason(event: &Value) -> String {
    let reason = event
        .pointer("/stop_reason/type")
        .and_then(Value::as_str)
        .unwrap_or("-");
    let ids: Vec<&str> = event
        .pointer("/stop_reason/event_ids")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        reason.to_owned()
    } else {
        format!("{reason} ({})", ids.join(", "))
    }
}

fn field(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// The color of an event type.
pub fn type_style(ty: &str) -> Style {
    match ty {
        "session.error" => Style::new().red().bold(),
        t if t.starts_with("user.") => Style::new().green(),
        "agent.message" => Style::new().bold(),
        t if t.contains("tool") => Style::new().cyan(),
        t if t.starts_with("session.") => Style::new().yellow(),
        _ => Style::new().dim(),
    }
}

/// One line of `corral events`: id, time, type, summary.
pub fn event_line(event: &Value, width: usize) -> String {
    let ty = kind(event);
    let time = event
        .get("processed_at")
        .and_then(Value::as_str)
        .map_or_else(|| "-".to_owned(), clock);
    let id = event.get("id").and_then(Value::as_str).unwrap_or("-");
    let head = format!("{id}  {time:>12}  {ty:<26}");
    let room = width.saturating_sub(head.chars().count() + 2).max(20);
    let summary = one_line(&summary(event), room);
    format!(
        "{}  {}  {}  {}",
        style(id).dim(),
        style(format!("{time:>12}")).dim(),
        type_style(ty).apply_to(format!("{ty:<26}")),
        summary
    )
    .trim_end()
    .to_owned()
}

/// `2026-05-01T10:00:02.120Z` → `10:00:02.120`.
fn clock(t: &str) -> String {
    t.split_once('T')
        .map(|(_, rest)| rest.trim_end_matches('Z').chars().take(12).collect())
        .unwrap_or_else(|| t.to_owned())
}

/// The transcript lines of an event in `chat` and `run` (`None`: nothing to show).
pub fn transcript(event: &Value) -> Option<String> {
    let ty = kind(event);
    let line = match ty {
        "agent.message" => text(event),
        "user.message" => format!("{} {}", style("you ›").green().bold(), text(event)),
        "agent.tool_use" | "agent.mcp_tool_use" | "agent.custom_tool_use" => {
            let name = match ty {
                "agent.mcp_tool_use" => {
                    format!("{}/{}", field(event, "mcp_server_name"), field(event, "name"))
                }
                _ => field(event, "name"),
            };
            let mut s = format!(
                "{} {} {}",
                style("⚙").cyan(),
                style(name).cyan().bold(),
                tool_input(event)
            );
            if event.get("evaluated_permission").and_then(Value::as_str) == Some("ask") {
                s.push_str(&style("  (waits for confirmation)").yellow().to_string());
            }
            if ty == "agent.custom_tool_use" {
                s.push_str(
                    &style("  (custom tool: the session waits for its result)")
                        .yellow()
                        .to_string(),
                );
            }
            s
        }
        "agent.tool_result" | "agent.mcp_tool_result" => {
            let body = text(event);
            let lines: Vec<&str> = body.lines().collect();
            let shown = lines
                .iter()
                .take(12)
                .map(|l| format!("  │ {l}"))
                .collect::<Vec<_>>();
            let mut s = if is_error(event) {
                style("  ↳ error").red().to_string()
            } else {
                style("  ↳ result").dim().to_string()
            };
            for l in shown {
                s.push('\n');
                s.push_str(&style(l).dim().to_string());
            }
            if lines.len() > 12 {
                s.push_str(
                    &style(format!("\n  │ … {} more lines", lines.len() - 12))
                        .dim()
                        .to_string(),
                );
            }
            s
        }
        "session.error" => style(format!("error: {}", summary(event))).red().to_string(),
        "session.status_idle" => {
            let reason = stop_reason(event);
            if reason.starts_with("requires_action") {
                style(format!("(idle: {reason}; answer with the API)"))
                    .yellow()
                    .to_string()
            } else if reason == "end_turn" {
                return None;
            } else {
                style(format!("(idle: {reason})")).yellow().to_string()
            }
        }
        "session.status_terminated" => style("(session terminated)").yellow().to_string(),
        "session.deleted" => style("(session deleted)").yellow().to_string(),
        "user.interrupt" => style("(interrupted)").yellow().to_string(),
        _ => return None,
    };
    Some(line)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Every event type whose display `summary`, `transcript` and `chat`'s progress line have decided (most show
    /// nothing more than their type); a type from a newer server shows its type alone.
    const DECIDED: [&str; 24] = [
        "user.message",
        "user.interrupt",
        "user.tool_confirmation",
        "user.custom_tool_result",
        "user.tool_result",
        "system.message",
        "agent.message",
        "agent.thinking",
        "agent.tool_use",
        "agent.tool_result",
        "agent.mcp_tool_use",
        "agent.mcp_tool_result",
        "agent.custom_tool_use",
        "agent.thread_context_compacted",
        "session.status_running",
        "session.status_idle",
        "session.status_rescheduled",
        "session.status_terminated",
        "session.error",
        "session.updated",
        "session.usage",
        "session.deleted",
        "span.model_request_start",
        "span.model_request_end",
    ];

    /// The CLI reads events as JSON and matches type strings, so the compiler cannot list a new type: this test
    /// does. When it fails, decide how the new type shows in `summary`, `transcript` (render.rs) and `chat.rs`'s
    /// progress line, then add it to `DECIDED`.
    #[test]
    fn every_api_event_type_has_a_decided_display() {
        let decided: std::collections::BTreeSet<&str> = DECIDED.into_iter().collect();
        let known: std::collections::BTreeSet<&str> =
            corral_api::events::KNOWN_EVENT_TYPES.into_iter().collect();
        assert_eq!(decided, known);
    }

    #[test]
    fn summaries_say_what_happened() {
        let msg = json!({"type": "agent.message", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]});
        assert_eq!(summary(&msg), "Hello\nthere");
        let tool = json!({"type": "agent.tool_use", "name": "bash", "input": {"command": "ls -la"}});
        assert_eq!(summary(&tool), "bash ls -la");
        let tool = json!({"type": "agent.tool_use", "name": "read", "input": {"path": "/a", "limit": 3}});
        assert_eq!(summary(&tool), r#"read {"limit":3,"path":"/a"}"#);
        let res = json!({"type": "agent.tool_result", "is_error": true, "content": [{"type": "text", "text": "boom"}]});
        assert_eq!(summary(&res), "error: boom");
        let idle = json!({"type": "session.status_idle", "stop_reason": {"type": "requires_action", "event_ids": ["sevt_1"]}});
        assert_eq!(summary(&idle), "requires_action (sevt_1)");
        let err = json!({"type": "session.error", "error": {"type": "model_overloaded_error", "message": "busy", "retry_status": {"type": "retrying"}}});
        assert_eq!(summary(&err), "model_overloaded_error: busy (retrying)");
        let upd = json!({"type": "session.updated", "id": "x", "title": "t", "metadata": {}});
        assert_eq!(summary(&upd), "metadata, title");
    }

    #[test]
    fn lines_fit_and_turns_end_on_idle() {
        assert_eq!(one_line("a\n  b   c", 80), "a b c");
        assert_eq!(one_line("abcdef", 4), "abc…");
        let e = json!({"type": "user.message", "id": "sevt_1", "processed_at": "2026-05-01T10:00:02.120Z",
                       "content": [{"type": "text", "text": "hi"}]});
        let line = console::strip_ansi_codes(&event_line(&e, 100)).to_string();
        assert!(line.starts_with("sevt_1  10:00:02.120  user.message"), "{line}");
        assert!(line.ends_with("hi"), "{line}");
        assert!(transcript(&json!({"type": "span.model_request_start"})).is_none());
        let result = json!({"type": "agent.tool_result", "content": [{"type": "text", "text": "a\nb"}]});
        let shown = console::strip_ansi_codes(&transcript(&result).unwrap_or_default()).to_string();
        assert_eq!(shown, "  ↳ result\n  │ a\n  │ b");
    }
}
