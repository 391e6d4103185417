//! Folding a session's log into what the planner needs to know: where the turn stands.

use corral_api::budget::Spent;
use corral_api::events::{ConfirmationResult, EventBody, EventId, ModelUsage, Permission};
use serde_json::Value;

use super::events::Purpose;
use crate::agent::{ToolKind, ToolSet};
use crate::log::LogEntry;

/// The session's status as its last status event says.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// No status event yet (a new session is idle).
    New,
    /// `session.status_running`.
    Running,
    /// `session.status_rescheduled`: a failed model call will be retried.
    Rescheduled,
    /// `session.status_idle`; `requires` holds the blocking event ids of a `requires_action` idle.
    Idle {
        /// The `event_ids` of a `requires_action` idle.
        requires: Option<Vec<String>>,
    },
}

/// How a tool use is run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UseKind {
    /// `agent.tool_use` of a built-in tool, with its evaluated permission.
    Builtin(Permission),
    /// `agent.mcp_tool_use` of an MCP server's tool, with its evaluated permission.
    Mcp(Permission),
    /// `agent.custom_tool_use`.
    Custom,
}

impl UseKind {
    /// The evaluated permission of a call the harness runs (built-in or MCP); `None` for custom tools.
    pub fn permission(self) -> Option<Permission> {
        match self {
            Self::Builtin(p) | Self::Mcp(p) => Some(p),
            Self::Custom => None,
        }
    }
}

/// A tool use of the latest model reply.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolUse {
    /// The `agent.tool_use` / `agent.custom_tool_use` event id.
    pub id: EventId,
    /// The tool's name.
    pub name: String,
    /// Its input.
    pub input: Value,
    /// How it runs.
    pub kind: UseKind,
    /// The MCP server of an `agent.mcp_tool_use`.
    pub server: Option<String>,
    /// Whether a result is in the log.
    pub resolved: bool,
    /// The client's confirmation (`ask` tools): allowed, and the deny message.
    pub confirmation: Option<(bool, Option<String>)>,
    /// Whether the harness appended anything after the confirmation (it may have started the call).
    pub picked_up: bool,
}

/// A `span.model_request_start` without its end.
#[derive(Clone, Debug, PartialEq)]
pub struct OpenSpan {
    /// Its event id.
    pub id: EventId,
    /// Its position in the entries.
    pub index: usize,
    /// What the request is for.
    pub purpose: Purpose,
}

/// Where the session stands.
#[derive(Clone, Debug, PartialEq)]
pub struct Scan {
    /// The last status event.
    pub status: Status,
    /// A model request that started and did not end.
    pub open_span: Option<OpenSpan>,
    /// A `user.message` or `system.message` that no model request has seen yet.
    pub pending_input: bool,
    /// A `user.interrupt` that stopped an active turn and has not been answered by an idle yet.
    pub interrupt: bool,
    /// A failed model request waits to be retried.
    pub retry_pending: bool,
    /// The latest reply called tools: once they all have results, the model is called again.
    pub followup: bool,
    /// The model's stop reason of the latest reply of the current turn.
    pub reply_stop: Option<String>,
    /// The tool uses of the latest reply of the current turn.
    pub tool_uses: Vec<ToolUse>,
    /// Failed model requests in a row in the current turn.
    pub failed_attempts: u32,
    /// Model requests (replies) in the current turn.
    pub model_calls: u32,
    /// Position of the client event that opened the current turn.
    pub turn_start: Option<usize>,
    /// Position of the newest `agent.thread_context_compacted`.
    pub compaction: Option<usize>,
    /// Token counts of every model request of the session.
    pub usage: ModelUsage,
    /// Tokens and estimated cost of every model request of the session (what budgets count).
    pub spent: Spent,
}

impl Scan {
    /// Whether a turn is under way (an interrupt stops it).
    pub fn turn_active(&self) -> bool {
        matches!(
            self.status,
            Status::Running | Status::Rescheduled | Status::Idle { requires: Some(_) }
        ) || self.pending_input
            || self.open_span.is_some()
    }

    fn end_turn(&mut self) {
        self.followup = false;
        self.reply_stop = None;
        self.tool_uses.clear();
        self.failed_attempts = 0;
        self.model_calls = 0;
        self.retry_pending = false;
        self.turn_start = None;
    }

    fn resolve(&mut self, pending: &mut [ToolUse], id: &str) {
        for tool in self.tool_uses.iter_mut().chain(pending.iter_mut()) {
            if tool.id == *id {
                tool.resolved = true;
            }
        }
    }
}

/// Folds `entries` (the whole log, oldest first) into a [`Scan`].
pub fn scan(entries: &[LogEntry], tools: &ToolSet) -> Scan {
    let mut s = Scan {
        status: Status::New,
        open_span: None,
        pending_input: false,
        interrupt: false,
        retry_pending: false,
        followup: false,
        reply_stop: None,
        tool_uses: Vec::new(),
        failed_attempts: 0,
        model_calls: 0,
        turn_start: None,
        compaction: None,
        usage: ModelUsage::default(),
        spent: crate::pricing::nothing_spent(),
    };
    // Tool uses of the reply being recorded (between its span's start and end).
    let mut current: Vec<ToolUse> = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        if !entry.body.is_client_event() {
            for tool in &mut s.tool_uses {
                if tool.confirmation.is_some() {
                    tool.picked_up = true;
                }
            }
        }
        match &entry.body {
            EventBody::UserMessage(_) | EventBody::SystemMessage(_) => {
                let in_turn = matches!(s.status, Status::Running | Status::Rescheduled);
                if s.turn_start.is_none() && !in_turn {
                    s.turn_start = Some(index);
                }
                s.pending_input = true;
            }
            EventBody::UserInterrupt(_) if s.turn_active() => {
                s.interrupt = true;
                s.pending_input = false;
            }
            EventBody::UserToolConfirmation(c) => {
                if let Some(tool) = s.tool_uses.iter_mut().find(|t| t.id == *c.tool_use_id.as_str())
                    && tool.confirmation.is_none()
                {
                    tool.confirmation = Some((c.result == ConfirmationResult::Allow, c.deny_message.clone()));
                    tool.picked_up = false;
                }
            }
            EventBody::UserCustomToolResult(r) => s.resolve(&mut current, &r.custom_tool_use_id),
            EventBody::UserToolResult(r) => s.resolve(&mut current, &r.tool_use_id),
            EventBody::AgentToolResult(r) => s.resolve(&mut current, &r.tool_use_id),
            EventBody::AgentMcpToolResult(r) => s.resolve(&mut current, &r.mcp_tool_use_id),
            EventBody::SessionStatusRunning(_) => s.status = Status::Running,
            EventBody::SessionStatusRescheduled(_) => {
                s.status = Status::Rescheduled;
                // A failed call waits for its retry; a call cut off by a takeover is repeated under its open span,
                // and nothing is pending once it ends.
                s.retry_pending = s.open_span.is_none();
            }
            EventBody::SessionStatusIdle(idle) => {
                s.interrupt = false;
                if idle.stop_reason.ends_turn() {
                    s.status = Status::Idle { requires: None };
                    s.end_turn();
                    if idle.stop_reason == corral_api::events::StopReason::BudgetReached {
                        // The input that found the budget spent is answered by this idle: it is not run later.
                        s.pending_input = false;
                    }
                } else {
                    let ids = match &idle.stop_reason {
                        corral_api::events::StopReason::RequiresAction { event_ids } => event_ids.clone(),
                        _ => Vec::new(),
                    };
                    s.status = Status::Idle { requires: Some(ids) };
                }
            }
            EventBody::SpanModelRequestStart(_) => {
                let purpose = match entry.hidden_str("purpose") {
                    Some("compaction") => Purpose::Compaction,
                    _ => Purpose::Reply,
                };
                if purpose == Purpose::Reply {
                    s.pending_input = false;
                    s.followup = false;
                    s.retry_pending = false;
                    s.model_calls += 1;
                }
                current.clear();
                s.open_span = Some(OpenSpan {
                    id: entry.id.clone(),
                    index,
                    purpose,
                });
            }
            EventBody::SpanModelRequestEnd(end) => {
                add_usage(&mut s.usage, &end.model_usage);
                crate::pricing::add_request(&mut s.spent, &end.model_usage, entry.hidden_f64("cost_cents"));
                let Some(open) = s
                    .open_span
                    .take_if(|o| o.id == *end.model_request_start_id.as_str())
                else {
                    continue;
                };
                if open.purpose != Purpose::Reply {
                    continue;
                }
                if end.is_error == Some(true) {
                    s.failed_attempts += 1;
                } else {
                    s.failed_attempts = 0;
                    s.tool_uses = std::mem::take(&mut current);
                    s.followup = !s.tool_uses.is_empty();
                    s.reply_stop = entry.hidden_str("stop_reason").map(str::to_owned);
                }
            }
            EventBody::AgentToolUse(tool) => {
                let permission = tool.evaluated_permission.unwrap_or(match tools.kind(&tool.name) {
                    ToolKind::Builtin { permission, .. } => permission,
                    _ => Permission::Deny,
                });
                current.push(ToolUse {
                    id: entry.id.clone(),
                    name: tool.name.clone(),
                    input: tool.input.clone(),
                    kind: UseKind::Builtin(permission),
                    server: None,
                    resolved: false,
                    confirmation: None,
                    picked_up: false,
                });
            }
            EventBody::AgentMcpToolUse(tool) => {
                let permission = tool.evaluated_permission.unwrap_or(match tools.kind(&tool.name) {
                    ToolKind::Mcp { permission, .. } => permission,
                    _ => Permission::Deny,
                });
                current.push(ToolUse {
                    id: entry.id.clone(),
                    name: tool.name.clone(),
                    input: tool.input.clone(),
                    kind: UseKind::Mcp(permission),
                    server: Some(tool.mcp_server_name.clone()),
                    resolved: false,
                    confirmation: None,
                    picked_up: false,
                });
            }
            EventBody::AgentCustomToolUse(tool) => current.push(ToolUse {
                id: entry.id.clone(),
                name: tool.name.clone(),
                input: tool.input.clone(),
                kind: UseKind::Custom,
                server: None,
                resolved: false,
                confirmation: None,
                picked_up: false,
            }),
            EventBody::AgentThreadContextCompacted(_) => s.compaction = Some(index),
            EventBody::UserInterrupt(_)
            | EventBody::AgentMessage(_)
            | EventBody::AgentThinking(_)
            | EventBody::SessionStatusTerminated(_)
            | EventBody::SessionError(_)
            | EventBody::SessionUpdated(_)
            | EventBody::SessionUsage(_)
            | EventBody::SessionDeleted(_)
            | EventBody::Other(_) => {}
        }
    }
    s
}

fn add_usage(total: &mut ModelUsage, add: &ModelUsage) {
    total.input_tokens += add.input_tokens;
    total.output_tokens += add.output_tokens;
    total.cache_creation_input_tokens += add.cache_creation_input_tokens;
    total.cache_read_input_tokens += add.cache_read_input_tokens;
}
