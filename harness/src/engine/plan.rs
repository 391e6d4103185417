//! Deciding the next step of a session from its [`Scan`]: pure, so every rule is unit-tested without Redis.

use std::collections::HashSet;

use corral_api::budget::{Budget, Spent};
use corral_api::events::{EventId, Permission, RetryStatus, StopReason, error_types};
use corral_session::NewEvent;

use super::events;
use super::scan::{OpenSpan, Scan, Status, ToolUse, UseKind};

/// The next thing to do.
#[derive(Debug)]
pub enum Step {
    /// Append these events (in one atomic batch); afterwards the tool uses in `arm` may run in this process.
    Append {
        /// The events.
        events: Vec<NewEvent>,
        /// Tool uses this append authorises (confirmed calls picked up now).
        arm: Vec<EventId>,
    },
    /// Call the model: under the open span `span`, or under a new one.
    Model {
        /// The open span to finish, or `None` to start one.
        span: Option<OpenSpan>,
        /// Failed attempts so far in this turn (for the backoff before retrying).
        failed_attempts: u32,
    },
    /// Run one built-in tool call.
    RunTool(ToolUse),
    /// A built-in call another run started and never answered (its replica was lost): ask the sandbox for that
    /// run's result, else report it interrupted. Never runs it again.
    RecoverTool(ToolUse),
    /// Nothing to do until a client event comes.
    Done,
}

/// Limits of a turn.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Model requests per turn before the turn ends with `tool_use_limit_reached_error`.
    pub max_model_calls: u32,
    /// The session's budget (its own, else its agent's): once reached, no model request is made and the turn ends
    /// with `stop_reason: budget_reached`.
    pub budget: Option<Budget>,
    /// The agent's `totalBudget`, with what the agent's other sessions have spent: once this session's spend
    /// brings the sum to it, the turn ends with `stop_reason: budget_reached` as well.
    pub agent_total: Option<(Budget, Spent)>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_model_calls: 200,
            budget: None,
            agent_total: None,
        }
    }
}

impl Limits {
    /// Whether a budget stops the session, given what it has spent.
    fn budget_reached(&self, spent: Spent) -> bool {
        self.budget.as_ref().is_some_and(|b| b.reached(spent))
            || self
                .agent_total
                .as_ref()
                .is_some_and(|(total, others)| total.reached(others.plus(spent)))
    }
}

fn append(events: Vec<NewEvent>) -> Step {
    Step::Append {
        events,
        arm: Vec::new(),
    }
}

/// Decides the next step. `armed` holds the tool uses this process authorised and has not run yet.
pub fn plan(scan: &Scan, armed: &HashSet<EventId>, limits: &Limits) -> Step {
    if scan.interrupt {
        return append(interrupt(scan, armed));
    }
    if let Some(span) = &scan.open_span {
        return Step::Model {
            span: Some(span.clone()),
            failed_attempts: scan.failed_attempts,
        };
    }
    let mut blocking = Vec::new();
    let mut arm = Vec::new();
    for tool in scan.tool_uses.iter().filter(|t| !t.resolved) {
        let Some(permission) = tool.kind.permission() else {
            // A custom tool: the client answers it.
            blocking.push(tool.id.to_string());
            continue;
        };
        let mcp = matches!(tool.kind, UseKind::Mcp(_));
        match (permission, &tool.confirmation) {
            (Permission::Ask, None) => blocking.push(tool.id.to_string()),
            (Permission::Ask, Some((false, message))) => {
                let text = match message {
                    Some(m) => format!("The user denied this tool call: {m}"),
                    None => "The user denied this tool call.".to_owned(),
                };
                return append(vec![events::error_for(mcp, &tool.id, text)]);
            }
            (Permission::Ask, Some((true, _))) if !armed.contains(&tool.id) && !tool.picked_up => {
                arm.push(tool.id.clone());
            }
            (Permission::Deny, _) => {
                return append(vec![events::error_for(
                    mcp,
                    &tool.id,
                    "This tool is not available to the agent.",
                )]);
            }
            _ => {
                if armed.contains(&tool.id) {
                    return Step::RunTool(tool.clone());
                }
                if !mcp {
                    return Step::RecoverTool(tool.clone());
                }
                return append(vec![events::error_for(
                    mcp,
                    &tool.id,
                    events::INTERRUPTED_BY_RESTART,
                )]);
            }
        }
    }
    if !arm.is_empty() {
        return Step::Append {
            events: vec![events::running()],
            arm,
        };
    }
    if !blocking.is_empty() {
        if scan.status
            == (Status::Idle {
                requires: Some(blocking.clone()),
            })
        {
            return Step::Done;
        }
        return append(vec![events::idle(StopReason::RequiresAction {
            event_ids: blocking,
        })]);
    }
    if scan.followup || scan.pending_input || scan.retry_pending {
        if scan.status != Status::Running {
            return append(vec![events::running()]);
        }
        if limits.budget_reached(scan.spent) {
            return append(vec![events::idle(StopReason::BudgetReached)]);
        }
        if scan.model_calls >= limits.max_model_calls {
            return append(vec![
                events::error(
                    error_types::TOOL_USE_LIMIT_REACHED,
                    format!(
                        "the turn reached its limit of {} model requests",
                        limits.max_model_calls
                    ),
                    RetryStatus::Exhausted,
                ),
                events::idle(StopReason::RetriesExhausted),
            ]);
        }
        return Step::Model {
            span: None,
            failed_attempts: scan.failed_attempts,
        };
    }
    if matches!(scan.status, Status::Running | Status::Rescheduled) {
        let stop = match scan.reply_stop.as_deref() {
            Some("refusal") => StopReason::Refusal,
            _ => StopReason::EndTurn,
        };
        return append(vec![events::idle(stop)]);
    }
    Step::Done
}

/// The events that end an interrupted turn: the open model request closed as failed, an error result for every
/// built-in call without one, and an `end_turn` idle.
fn interrupt(scan: &Scan, armed: &HashSet<EventId>) -> Vec<NewEvent> {
    let mut out = Vec::new();
    if let Some(span) = &scan.open_span {
        out.push(events::span_end(&span.id, Default::default(), true, None));
    }
    for tool in scan.tool_uses.iter().filter(|t| !t.resolved) {
        if let Some(permission) = tool.kind.permission() {
            let started = armed.contains(&tool.id)
                || (permission == Permission::Allow)
                || matches!(tool.confirmation, Some((true, _)) if tool.picked_up);
            let text = if started {
                events::INTERRUPTED_BY_USER
            } else {
                events::NOT_RUN_INTERRUPT
            };
            out.push(events::error_for(
                matches!(tool.kind, UseKind::Mcp(_)),
                &tool.id,
                text,
            ));
        }
    }
    out.push(events::idle(StopReason::EndTurn));
    out
}
