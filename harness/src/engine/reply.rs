//! Turning a model reply into log events: pure, so every rule (which tool uses may run, which are refused for a
//! denied tool, invalid JSON input or a reply cut off at the token limit) is unit-tested without Redis or a model.

use corral_api::budget::Budget;
use corral_api::events::{
    AgentCustomToolUse, AgentMcpToolUse, AgentMessage, AgentToolUse, CacheCreation, ContentBlock, Cost,
    Empty, EventBody, EventId, ModelUsage, Permission, RetryStatus, StopReason, Usage,
};
use corral_session::NewEvent;
use serde_json::Value;

use super::events::{self, Served};
use super::scan::Scan;
use crate::agent::{ResolvedAgent, ToolKind};
use crate::log::hidden::{fields, with_hidden};
use crate::providers::{Block, ProviderError, StopReason as ModelStop, ToolInput, Turn};

/// The usage of one model request as the log records it (zero when the provider reported none).
pub fn model_usage(turn: &Turn) -> ModelUsage {
    let usage = turn.usage.unwrap_or_default();
    ModelUsage {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
        speed: None,
    }
}

/// The events recording a failed model request: the span closed as failed, the error, and either the turn's end
/// (`retries_exhausted`) or `session.status_rescheduled`.
pub fn failure_events(span: &EventId, err: &ProviderError, attempts: u32, exhausted: bool) -> Vec<NewEvent> {
    let retry = if exhausted {
        RetryStatus::Exhausted
    } else {
        RetryStatus::Retrying
    };
    let message = if exhausted {
        format!("{} (after {attempts} attempts)", err.message)
    } else {
        format!("{} (attempt {attempts}; retrying)", err.message)
    };
    vec![
        events::span_end(span, ModelUsage::default(), true, None),
        events::error(err.kind.session_error_type(), message, retry),
        if exhausted {
            events::idle(StopReason::RetriesExhausted)
        } else {
            events::rescheduled()
        },
    ]
}

/// The batch recording a model reply, and the tool uses it authorises to run. `before` is the log's scan before the
/// reply (for the cumulative usage), `served` the model and cost of the request.
pub fn reply_events(
    turn: &Turn,
    agent: &ResolvedAgent,
    span: &EventId,
    before: &Scan,
    served: &Served<'_>,
) -> (Vec<NewEvent>, Vec<EventId>) {
    let mut batch: Vec<NewEvent> = Vec::new();
    let mut arm = Vec::new();
    let mut text: Vec<ContentBlock> = Vec::new();
    let flush = |text: &mut Vec<ContentBlock>, batch: &mut Vec<NewEvent>| {
        if !text.is_empty() {
            batch.push(
                EventBody::AgentMessage(AgentMessage {
                    content: std::mem::take(text),
                    session_thread_id: None,
                })
                .into(),
            );
        }
    };
    let cut_off = turn.stop_reason == ModelStop::MaxTokens;
    for block in &turn.content {
        match block {
            Block::Text { text: t } => text.push(ContentBlock::text(t.clone())),
            Block::Thinking { thinking, signature } => {
                flush(&mut text, &mut batch);
                let hidden = fields([
                    ("thinking", thinking.clone().into()),
                    ("signature", signature.clone().map_or(Value::Null, Value::from)),
                ]);
                batch.push(with_hidden(EventBody::AgentThinking(Empty {}), hidden).into());
            }
            Block::RedactedThinking { data } => {
                flush(&mut text, &mut batch);
                let hidden = fields([("redacted", data.clone().into())]);
                batch.push(with_hidden(EventBody::AgentThinking(Empty {}), hidden).into());
            }
            Block::ToolUse { id, name, input } => {
                flush(&mut text, &mut batch);
                let invalid = turn
                    .tool_calls
                    .iter()
                    .find(|c| c.id == *id)
                    .and_then(|c| match &c.input {
                        ToolInput::Invalid { error, .. } => Some(error.clone()),
                        ToolInput::Valid(_) => None,
                    });
                let event_id = EventId::generate();
                let problem = match (&invalid, cut_off) {
                    (Some(error), _) => Some(format!(
                        "The tool input was not valid JSON ({error}); the call was not run. Send the call again \
                         with valid JSON input."
                    )),
                    (None, true) => Some(
                        "The reply was cut off at the output token limit, so this call may be incomplete; it was \
                         not run."
                            .to_owned(),
                    ),
                    (None, false) => None,
                };
                match agent.tools.kind(name) {
                    ToolKind::Mcp {
                        server,
                        permission,
                        evaluation,
                    } => {
                        batch.push(NewEvent::with_id(
                            event_id.clone(),
                            EventBody::AgentMcpToolUse(AgentMcpToolUse {
                                mcp_server_name: server,
                                name: name.clone(),
                                input: input.clone(),
                                evaluated_permission: Some(permission),
                                evaluation: Some(evaluation),
                                session_thread_id: None,
                            }),
                        ));
                        if let Some(problem) = problem {
                            batch.push(events::error_for(true, &event_id, problem));
                        } else if permission == Permission::Allow {
                            arm.push(event_id);
                        }
                    }
                    ToolKind::Custom if problem.is_none() => {
                        batch.push(NewEvent::with_id(
                            event_id,
                            EventBody::AgentCustomToolUse(AgentCustomToolUse {
                                name: name.clone(),
                                input: input.clone(),
                                session_thread_id: None,
                            }),
                        ));
                    }
                    kind => {
                        let (permission, evaluation) = match kind {
                            ToolKind::Builtin {
                                permission,
                                evaluation,
                            } => (permission, Some(evaluation)),
                            ToolKind::Custom | ToolKind::Mcp { .. } => (Permission::Allow, None),
                            ToolKind::Denied => (Permission::Deny, None),
                        };
                        batch.push(NewEvent::with_id(
                            event_id.clone(),
                            EventBody::AgentToolUse(AgentToolUse {
                                name: name.clone(),
                                input: input.clone(),
                                evaluated_permission: Some(permission),
                                evaluation,
                                session_thread_id: None,
                            }),
                        ));
                        if let Some(problem) = problem {
                            batch.push(events::tool_error(&event_id, problem));
                        } else if permission == Permission::Deny {
                            batch.push(events::tool_error(
                                &event_id,
                                format!(
                                    "The tool {name:?} is not available to this agent; the call was not run."
                                ),
                            ));
                        } else if permission == Permission::Allow {
                            arm.push(event_id);
                        }
                    }
                }
            }
            Block::Image { .. } | Block::Document { .. } | Block::ToolResult { .. } => {}
        }
    }
    flush(&mut text, &mut batch);
    let usage = model_usage(turn);
    batch.push(events::span_end_served(
        span,
        usage.clone(),
        false,
        Some(turn.stop_reason.as_str()),
        Some(served),
    ));
    let total_before = &before.usage;
    let mut spent = before.spent;
    crate::pricing::add_request(&mut spent, &usage, served.cost_cents);
    let total = Usage {
        input_tokens: Some(total_before.input_tokens + usage.input_tokens),
        output_tokens: Some(total_before.output_tokens + usage.output_tokens),
        cache_read_input_tokens: Some(total_before.cache_read_input_tokens + usage.cache_read_input_tokens),
        cache_creation: Some(CacheCreation {
            ephemeral_5m_input_tokens: Some(
                total_before.cache_creation_input_tokens + usage.cache_creation_input_tokens,
            ),
            ephemeral_1h_input_tokens: None,
        }),
        list_cost: crate::pricing::list_cost(spent).map(|m| Cost {
            amount: m.amount,
            currency: m.currency,
        }),
        ..Usage::default()
    };
    batch.push(events::usage(total, agent.budget.as_ref().map(Budget::to_api)));
    (batch, arm)
}

#[cfg(test)]
mod tests {
    use corral_api::events::{EventBody, Permission};
    use serde_json::json;

    use super::*;
    use crate::agent::McpToolInfo;
    use crate::engine::scan::scan;
    use crate::engine::tests::agent;
    use crate::providers::{ToolCall, Usage as ModelTokens};

    const SERVED: Served<'static> = Served {
        provider: "scripted",
        model: "m",
        cost_cents: Some(1.5),
    };

    fn turn(content: Vec<Block>, stop_reason: ModelStop) -> Turn {
        let tool_calls = content
            .iter()
            .filter_map(|b| match b {
                Block::ToolUse { id, name, input } => Some(ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    input: ToolInput::Valid(input.clone()),
                }),
                _ => None,
            })
            .collect();
        Turn {
            content,
            tool_calls,
            usage: Some(ModelTokens {
                input_tokens: 100,
                output_tokens: 20,
                ..ModelTokens::default()
            }),
            stop_reason,
            raw_stop_reason: None,
        }
    }

    fn text(t: &str) -> Block {
        Block::Text { text: t.into() }
    }

    fn tool_use(id: &str, name: &str) -> Block {
        Block::ToolUse {
            id: id.into(),
            name: name.into(),
            input: json!({"command": "ls"}),
        }
    }

    /// The reply's events for an agent with `tools`, as (type, body) pairs, and the ids it arms.
    fn reply(tools: Value, turn: &Turn) -> (Vec<NewEvent>, Vec<EventId>) {
        let agent = agent(tools);
        let before = scan(&[], &agent.tools);
        reply_events(turn, &agent, &EventId::generate(), &before, &SERVED)
    }

    fn types(batch: &[NewEvent]) -> Vec<&str> {
        batch.iter().map(|e| e.body.type_name()).collect()
    }

    /// The text of the tool result in `batch` (there must be exactly one).
    fn result_text(batch: &[NewEvent]) -> String {
        let texts: Vec<String> = batch
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::AgentToolResult(r) => Some(r.content.as_ref()?[0].as_text()?.to_owned()),
                EventBody::AgentMcpToolResult(r) => Some(r.content.as_ref()?[0].as_text()?.to_owned()),
                _ => None,
            })
            .collect();
        assert_eq!(texts.len(), 1, "{:?}", types(batch));
        texts[0].clone()
    }

    #[test]
    fn text_blocks_join_into_one_message_between_thinking_and_the_span_end() {
        let t = turn(
            vec![
                Block::Thinking {
                    thinking: "hmm".into(),
                    signature: Some("sig".into()),
                },
                text("Hello, "),
                text("world."),
            ],
            ModelStop::EndTurn,
        );
        let (batch, arm) = reply(json!([]), &t);
        assert_eq!(
            types(&batch),
            [
                "agent.thinking",
                "agent.message",
                "span.model_request_end",
                "session.usage"
            ]
        );
        let EventBody::AgentMessage(message) = &batch[1].body else {
            panic!("{:?}", batch[1].body)
        };
        assert_eq!(message.content.len(), 2);
        assert!(arm.is_empty());
    }

    #[test]
    fn an_allowed_builtin_call_is_armed_and_an_ask_call_waits() {
        let tools = json!([{"type": "agent_toolset_20260401",
            "configs": [{"name": "read", "permissionPolicy": "always_ask"}]}]);
        let t = turn(
            vec![tool_use("t1", "bash"), tool_use("t2", "read")],
            ModelStop::ToolUse,
        );
        let (batch, arm) = reply(tools, &t);
        assert_eq!(
            types(&batch),
            [
                "agent.tool_use",
                "agent.tool_use",
                "span.model_request_end",
                "session.usage"
            ]
        );
        assert_eq!(arm, [batch[0].id.clone()]);
        let EventBody::AgentToolUse(ask) = &batch[1].body else {
            panic!()
        };
        assert_eq!(ask.evaluated_permission, Some(Permission::Ask));
    }

    #[test]
    fn a_call_of_a_tool_the_agent_lacks_is_denied_with_an_error_result() {
        let t = turn(vec![tool_use("t1", "bash")], ModelStop::ToolUse);
        let (batch, arm) = reply(json!([]), &t);
        assert_eq!(types(&batch)[..2], ["agent.tool_use", "agent.tool_result"]);
        let EventBody::AgentToolUse(denied) = &batch[0].body else {
            panic!()
        };
        assert_eq!(denied.evaluated_permission, Some(Permission::Deny));
        assert!(result_text(&batch).contains("not available to this agent"));
        assert!(arm.is_empty());
    }

    #[test]
    fn a_call_with_invalid_json_input_is_not_run_and_the_model_is_told_why() {
        let mut t = turn(vec![tool_use("t1", "bash")], ModelStop::ToolUse);
        t.tool_calls[0].input = ToolInput::Invalid {
            raw: "{\"command\": ".into(),
            error: "EOF while parsing".into(),
        };
        let (batch, arm) = reply(json!([{"type": "agent_toolset_20260401"}]), &t);
        assert_eq!(types(&batch)[..2], ["agent.tool_use", "agent.tool_result"]);
        let text = result_text(&batch);
        assert!(text.contains("not valid JSON (EOF while parsing)"), "{text}");
        assert!(arm.is_empty());
    }

    #[test]
    fn calls_of_a_reply_cut_off_at_the_token_limit_are_not_run() {
        let t = turn(vec![text("Let me"), tool_use("t1", "bash")], ModelStop::MaxTokens);
        let (batch, arm) = reply(json!([{"type": "agent_toolset_20260401"}]), &t);
        assert_eq!(
            types(&batch)[..3],
            ["agent.message", "agent.tool_use", "agent.tool_result"]
        );
        assert!(result_text(&batch).contains("cut off at the output token limit"));
        assert!(arm.is_empty());
    }

    #[test]
    fn a_custom_tool_call_goes_to_the_client_and_a_broken_one_is_answered_at_once() {
        let tools = json!([{"type": "custom", "name": "lookup", "inputSchema": {"type": "object"}}]);
        let t = turn(vec![tool_use("t1", "lookup")], ModelStop::ToolUse);
        let (batch, arm) = reply(tools.clone(), &t);
        assert_eq!(types(&batch)[0], "agent.custom_tool_use");
        assert!(arm.is_empty(), "the client runs custom tools");
        let t = turn(vec![tool_use("t1", "lookup")], ModelStop::MaxTokens);
        let (batch, _) = reply(tools, &t);
        assert_eq!(types(&batch)[..2], ["agent.tool_use", "agent.tool_result"]);
    }

    #[test]
    fn an_mcp_call_is_armed_by_its_toolset_policy_and_a_broken_one_gets_an_mcp_result() {
        let tools = json!([{"type": "mcp_toolset", "mcpServerName": "gh",
            "configs": [{"name": "search", "permissionPolicy": "always_allow"}]}]);
        let mut agent = agent(tools);
        let info = McpToolInfo {
            name: "search".into(),
            description: "search things".into(),
            input_schema: json!({"type": "object"}),
        };
        agent.tools.add_mcp_tools(&agent.spec.clone(), "gh", &[info]);
        let before = scan(&[], &agent.tools);
        let t = turn(vec![tool_use("t1", "search")], ModelStop::ToolUse);
        let (batch, arm) = reply_events(&t, &agent, &EventId::generate(), &before, &SERVED);
        assert_eq!(types(&batch)[0], "agent.mcp_tool_use");
        assert_eq!(arm, [batch[0].id.clone()]);
        let t = turn(vec![tool_use("t1", "search")], ModelStop::MaxTokens);
        let (batch, arm) = reply_events(&t, &agent, &EventId::generate(), &before, &SERVED);
        assert_eq!(
            types(&batch)[..2],
            ["agent.mcp_tool_use", "agent.mcp_tool_result"]
        );
        assert!(arm.is_empty());
    }

    #[test]
    fn the_usage_event_adds_this_request_to_the_session_totals_with_its_cost() {
        let t = turn(vec![text("hi")], ModelStop::EndTurn);
        let (batch, _) = reply(json!([]), &t);
        let EventBody::SessionUsage(usage) = &batch.last().unwrap().body else {
            panic!()
        };
        assert_eq!(usage.usage.input_tokens, Some(100));
        assert_eq!(usage.usage.output_tokens, Some(20));
        assert_eq!(
            usage.usage.list_cost.as_ref().map(|c| c.amount.as_str()),
            Some("1.5")
        );
    }

    #[test]
    fn a_failed_request_is_retried_until_the_attempts_run_out() {
        let err = ProviderError::new(crate::providers::ErrorKind::Overloaded, "busy", true);
        let span = EventId::generate();
        let retrying = failure_events(&span, &err, 1, false);
        assert_eq!(
            types(&retrying),
            [
                "span.model_request_end",
                "session.error",
                "session.status_rescheduled"
            ]
        );
        let exhausted = failure_events(&span, &err, 3, true);
        assert_eq!(
            types(&exhausted),
            ["span.model_request_end", "session.error", "session.status_idle"]
        );
    }
}
