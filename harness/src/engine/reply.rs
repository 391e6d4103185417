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
            Block::Image { .. } | Block::ToolResult { .. } => {}
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
