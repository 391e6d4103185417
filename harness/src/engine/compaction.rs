//! Compaction: when the rebuilt context outgrows its token budget, older turns are summarised by the model into an
//! `agent.thread_context_compacted` event, and later contexts start from that summary.
//!
//! The cut is always at the start of the current turn (the client event that opened it), which keeps every tool use
//! next to its result. The event keeps the summary and the id of the first event kept verbatim in its private
//! `corral` fields (`summary`, `first_kept`); its API form shows only `processed_at`.

use corral_api::events::{Empty, EventBody, EventId};
use corral_session::NewEvent;

use super::context;
use super::scan::Scan;
use crate::agent::ResolvedAgent;
use crate::log::LogEntry;
use crate::log::hidden::{fields, with_hidden};
use crate::providers::{Block, Message, ModelRequest};

/// The instruction that asks for a summary.
pub const PROMPT: &str = include_str!("compaction_prompt.md");

/// Estimated tokens of a request: about one per four characters of its text.
pub fn estimate_tokens(request: &ModelRequest) -> u64 {
    fn chars(block: &Block) -> usize {
        match block {
            Block::Text { text } => text.len(),
            Block::Thinking { thinking, .. } => thinking.len(),
            Block::RedactedThinking { data } => data.len(),
            Block::Image { .. } => 4 * 1600,
            // About a token per four bytes of the PDF (base64 holds four characters per three bytes).
            Block::Document { data, .. } => data.len() * 3 / 4,
            Block::ToolUse { name, input, .. } => name.len() + input.to_string().len(),
            Block::ToolResult { content, .. } => content.iter().map(chars).sum(),
        }
    }
    let total = request.system.as_deref().map_or(0, str::len)
        + request
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .map(chars)
            .sum::<usize>()
        + request
            .tools
            .iter()
            .map(|t| t.name.len() + t.description.len() + t.input_schema.to_string().len())
            .sum::<usize>();
    (total as u64).div_ceil(4)
}

/// Where to cut if the next reply's context is over `budget` tokens: the position of the first event to keep. `None`
/// when the context fits, or when nothing before the current turn is left to summarise.
pub fn cut(entries: &[LogEntry], scan: &Scan, agent: &ResolvedAgent, budget: Option<u64>) -> Option<usize> {
    let budget = budget?;
    let start = scan.turn_start?;
    if estimate_tokens(&context::build(entries, entries.len(), agent)) <= budget {
        return None;
    }
    let previous = scan.compaction.map_or(0, |c| c + 1);
    if previous >= start {
        return None;
    }
    let has_older_turns = entries[previous..start]
        .iter()
        .any(|e| matches!(e.body, EventBody::AgentMessage(_)));
    has_older_turns.then_some(start)
}

/// The summarisation request: the context up to the cut, then the instruction.
pub fn request(entries: &[LogEntry], cut: usize, agent: &ResolvedAgent) -> ModelRequest {
    let mut request = context::build(entries, cut, agent);
    request.tools.clear();
    match request.messages.last_mut() {
        Some(last) if last.role == crate::providers::Role::User => last.content.push(Block::Text {
            text: PROMPT.to_owned(),
        }),
        _ => request.messages.push(Message::user_text(PROMPT)),
    }
    request
}

/// The `agent.thread_context_compacted` event.
pub fn event(summary: &str, first_kept: &EventId) -> NewEvent {
    with_hidden(
        EventBody::AgentThreadContextCompacted(Empty {}),
        fields([
            ("summary", summary.into()),
            ("first_kept", first_kept.to_string().into()),
        ]),
    )
    .into()
}
