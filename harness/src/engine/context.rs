//! Rebuilding the model's context from the log: the pure projection of events onto a [`ModelRequest`].
//!
//! - The context of a request is every event before its `span.model_request_start`, starting at the newest
//!   `agent.thread_context_compacted` (whose summary stands in for everything before the first event it kept).
//! - A reply's events (thinking, message, tool uses) form one assistant message. Client messages that arrived while
//!   that reply streamed come after it, since the model had not seen them.
//! - Every tool use is answered in the next user message, in call order, by its result wherever it is in the log;
//!   a built-in call without one is answered with an error saying it was interrupted and not re-run, a custom call
//!   without one with an error saying no result came. Results that answer nothing are dropped.
//! - The agent's skills are named after its system prompt (`crate::skills::prompt_section`), and `system.message`
//!   text is appended after them.

use std::collections::HashMap;

use corral_api::events::{ContentBlock, DOCUMENT_MEDIA_TYPE, EventBody, IMAGE_MEDIA_TYPES, Source};
use serde_json::Value;

use super::events::{self as ev, Purpose};
use crate::agent::ResolvedAgent;
use crate::attachments::{Attachment, Attachments};
use crate::log::LogEntry;
use crate::providers::{Block, CacheHints, Message, ModelRequest, Role};

/// The text that opens a compacted context.
pub const SUMMARY_PREFIX: &str = "The earlier part of this conversation was compacted. Summary of it:\n\n";

/// Builds the request for a model call whose `span.model_request_start` is at `limit` (or after every entry when
/// `limit` is `entries.len()`), without the attached files' contents (a note stands for each).
pub fn build(entries: &[LogEntry], limit: usize, agent: &ResolvedAgent) -> ModelRequest {
    build_with(entries, limit, agent, &Attachments::new())
}

/// [`build`], with the files the messages attach (`crate::attachments`) handed to the model.
pub fn build_with(
    entries: &[LogEntry],
    limit: usize,
    agent: &ResolvedAgent,
    files: &Attachments,
) -> ModelRequest {
    let entries = &entries[..limit.min(entries.len())];
    let mut system = agent.spec.system.clone().unwrap_or_default();
    let skills = crate::skills::prompt_section(&agent.skills);
    if !skills.is_empty() {
        if !system.is_empty() {
            system.push_str("\n\n");
        }
        system.push_str(&skills);
    }
    let (start, summary) = compaction_start(entries);
    let results = results(entries, files);
    let mut builder = Builder::default();
    if let Some(summary) = summary {
        builder.user(Block::Text {
            text: format!("{SUMMARY_PREFIX}{summary}"),
        });
    }
    // Spans whose end is in the context: their reply's events arrive as one batch just before the end.
    let mut in_span = false;
    let mut deferred: Vec<Block> = Vec::new();
    for entry in &entries[start..] {
        match &entry.body {
            EventBody::SpanModelRequestStart(_) => {
                in_span = entry.hidden_str("purpose") != Some(Purpose::Compaction.as_str());
            }
            EventBody::SpanModelRequestEnd(_) => {
                if in_span {
                    builder.close_assistant(&results);
                    for block in deferred.drain(..) {
                        builder.user(block);
                    }
                }
                in_span = false;
            }
            EventBody::UserMessage(message) => {
                for block in message.content.iter().filter_map(|b| user_block(b, files)) {
                    if in_span {
                        deferred.push(block)
                    } else {
                        builder.user(block)
                    }
                }
            }
            EventBody::SystemMessage(message) => {
                for text in message.content.iter().filter_map(ContentBlock::as_text) {
                    if !system.is_empty() {
                        system.push_str("\n\n");
                    }
                    system.push_str(text);
                }
            }
            EventBody::AgentThinking(_) => {
                if let Some(data) = entry.hidden_str("redacted") {
                    builder.assistant(Block::RedactedThinking {
                        data: data.to_owned(),
                    });
                } else if let Some(thinking) = entry.hidden_str("thinking") {
                    builder.assistant(Block::Thinking {
                        thinking: thinking.to_owned(),
                        signature: entry.hidden_str("signature").map(str::to_owned),
                    });
                }
            }
            EventBody::AgentMessage(message) => {
                for text in message.content.iter().filter_map(ContentBlock::as_text) {
                    if !text.trim().is_empty() {
                        builder.assistant(Block::Text {
                            text: text.to_owned(),
                        });
                    }
                }
            }
            EventBody::AgentToolUse(tool) => builder.tool_use(entry, &tool.name, &tool.input, true),
            EventBody::AgentMcpToolUse(tool) => builder.tool_use(entry, &tool.name, &tool.input, true),
            EventBody::AgentCustomToolUse(tool) => builder.tool_use(entry, &tool.name, &tool.input, false),
            // Results are placed after their tool use (`results`); the rest is not model context.
            EventBody::AgentToolResult(_)
            | EventBody::AgentMcpToolResult(_)
            | EventBody::UserCustomToolResult(_)
            | EventBody::UserToolResult(_)
            | EventBody::UserInterrupt(_)
            | EventBody::UserToolConfirmation(_)
            | EventBody::AgentThreadContextCompacted(_)
            | EventBody::SessionStatusRunning(_)
            | EventBody::SessionStatusIdle(_)
            | EventBody::SessionStatusRescheduled(_)
            | EventBody::SessionStatusTerminated(_)
            | EventBody::SessionError(_)
            | EventBody::SessionUpdated(_)
            | EventBody::SessionUsage(_)
            | EventBody::SessionDeleted(_)
            | EventBody::Other(_) => {}
        }
    }
    builder.close_assistant(&results);
    for block in deferred {
        builder.user(block);
    }
    let mut request = ModelRequest::new(agent.spec.model.id.clone(), agent.max_tokens(), builder.finish());
    request.system = (!system.is_empty()).then_some(system);
    request.tools = agent.tools.definitions().to_vec();
    request.effort = agent.spec.model.effort;
    request.cache = CacheHints::agent_loop();
    request
}

/// Where the context starts, and the summary that replaces what comes before.
fn compaction_start(entries: &[LogEntry]) -> (usize, Option<String>) {
    let Some((index, entry)) = entries
        .iter()
        .enumerate()
        .rev()
        .find(|(_, e)| matches!(e.body, EventBody::AgentThreadContextCompacted(_)))
    else {
        return (0, None);
    };
    let summary = entry.hidden_str("summary").unwrap_or_default().to_owned();
    let kept = entry
        .hidden_str("first_kept")
        .and_then(|id| entries.iter().position(|e| e.id == *id))
        .unwrap_or(index + 1);
    (kept, Some(summary))
}

/// Where the model's context starts in `entries`: after the newest compaction, at the first event it kept.
pub fn context_start(entries: &[LogEntry]) -> usize {
    compaction_start(entries).0
}

/// The result of each tool use id: the first one in the log.
fn results(entries: &[LogEntry], files: &Attachments) -> HashMap<String, (Vec<Block>, bool)> {
    let mut out = HashMap::new();
    for entry in entries {
        let (id, content, is_error) = match &entry.body {
            EventBody::AgentToolResult(r) => (&r.tool_use_id, &r.content, r.is_error),
            EventBody::AgentMcpToolResult(r) => (&r.mcp_tool_use_id, &r.content, r.is_error),
            EventBody::UserCustomToolResult(r) => (&r.custom_tool_use_id, &r.content, r.is_error),
            EventBody::UserToolResult(r) => (&r.tool_use_id, &r.content, r.is_error),
            EventBody::UserMessage(_)
            | EventBody::UserInterrupt(_)
            | EventBody::UserToolConfirmation(_)
            | EventBody::SystemMessage(_)
            | EventBody::AgentMessage(_)
            | EventBody::AgentThinking(_)
            | EventBody::AgentToolUse(_)
            | EventBody::AgentMcpToolUse(_)
            | EventBody::AgentCustomToolUse(_)
            | EventBody::AgentThreadContextCompacted(_)
            | EventBody::SessionStatusRunning(_)
            | EventBody::SessionStatusIdle(_)
            | EventBody::SessionStatusRescheduled(_)
            | EventBody::SessionStatusTerminated(_)
            | EventBody::SessionError(_)
            | EventBody::SessionUpdated(_)
            | EventBody::SessionUsage(_)
            | EventBody::SessionDeleted(_)
            | EventBody::SpanModelRequestStart(_)
            | EventBody::SpanModelRequestEnd(_)
            | EventBody::Other(_) => continue,
        };
        let blocks = content
            .iter()
            .flatten()
            .filter_map(|b| user_block(b, files))
            .collect();
        out.entry(id.clone())
            .or_insert((blocks, is_error.unwrap_or(false)));
    }
    out
}

/// A client content block as a model block: inline images and PDFs as they are, attached files from `files`
/// (text files as text), text documents as text; what the model cannot have is a note saying why.
fn user_block(block: &ContentBlock, files: &Attachments) -> Option<Block> {
    match block {
        ContentBlock::Text(t) => Some(Block::Text { text: t.text.clone() }),
        ContentBlock::Image(image) => Some(match &image.source {
            Source::Base64 { media_type, data } => Block::Image {
                media_type: media_type.clone(),
                data: data.clone(),
            },
            Source::File { file_id: id } | Source::Url { url: id } => {
                match files.get(id).map(AsRef::as_ref) {
                    // A URL says its own type: one the model does not take would fail every later request.
                    Some(Attachment::Inline { media_type, data })
                        if IMAGE_MEDIA_TYPES.contains(&media_type.as_str()) =>
                    {
                        Block::Image {
                            media_type: media_type.clone(),
                            data: data.clone(),
                        }
                    }
                    Some(Attachment::Inline { media_type, .. }) => not_taken("image", id, media_type),
                    other => unavailable("image", id, other),
                }
            }
            other => note(&format!(
                "[an image from a {} source, not available here]",
                other.type_name()
            )),
        }),
        ContentBlock::Document(doc) => Some(match &doc.source {
            Source::Text { data, .. } => Block::Text { text: data.clone() },
            Source::Base64 { media_type, data } => Block::Document {
                media_type: media_type.clone(),
                data: data.clone(),
                title: doc.title.clone(),
            },
            Source::File { file_id: id } | Source::Url { url: id } => {
                match files.get(id).map(AsRef::as_ref) {
                    Some(Attachment::Inline { media_type, data }) if media_type == DOCUMENT_MEDIA_TYPE => {
                        Block::Document {
                            media_type: media_type.clone(),
                            data: data.clone(),
                            title: doc.title.clone(),
                        }
                    }
                    Some(Attachment::Inline { media_type, .. }) => not_taken("document", id, media_type),
                    Some(Attachment::Text(text)) => Block::Text { text: text.clone() },
                    other => unavailable("document", id, other),
                }
            }
            other => note(&format!(
                "[a document from a {} source, not available here]",
                other.type_name()
            )),
        }),
        ContentBlock::SearchResult(result) => Some(Block::Text {
            text: format!(
                "{} ({})\n{}",
                result.title,
                result.source,
                result
                    .content
                    .iter()
                    .map(|c| c.text.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }),
        ContentBlock::Redacted | ContentBlock::Other(_) => None,
    }
}

fn note(text: &str) -> Block {
    Block::Text {
        text: text.to_owned(),
    }
}

/// The note standing for an attached file the model cannot have.
/// The note for an attachment of a type the model does not take as that kind of block.
fn not_taken(kind: &str, id: &str, media_type: &str) -> Block {
    note(&format!(
        "[an attached {kind} ({id}) of type {media_type}, which the model does not take as an {kind}]"
    ))
}

fn unavailable(kind: &str, file_id: &str, attachment: Option<&Attachment>) -> Block {
    match attachment {
        Some(Attachment::Unavailable(why)) => note(&format!("[an attached {kind}: {why}]")),
        Some(Attachment::Text(_)) => note(&format!(
            "[an attached {kind} ({file_id}) that is text, not an image]"
        )),
        _ => note(&format!(
            "[an attached {kind} ({file_id}), not read for this request]"
        )),
    }
}

/// Assembles messages: merges neighbours of one role, puts tool results first in a user message.
#[derive(Default)]
struct Builder {
    messages: Vec<Message>,
    /// The open assistant message's tool uses: (id, built-in?).
    open_uses: Vec<(String, bool)>,
    assistant_open: bool,
}

impl Builder {
    fn push(&mut self, role: Role, block: Block) {
        match self.messages.last_mut() {
            Some(last) if last.role == role => last.content.push(block),
            _ => self.messages.push(Message {
                role,
                content: vec![block],
            }),
        }
    }

    fn assistant(&mut self, block: Block) {
        self.assistant_open = true;
        self.push(Role::Assistant, block);
    }

    fn tool_use(&mut self, entry: &LogEntry, name: &str, input: &Value, builtin: bool) {
        let input = if input.is_object() {
            input.clone()
        } else {
            Value::Object(Default::default())
        };
        self.assistant(Block::ToolUse {
            id: entry.id.to_string(),
            name: name.to_owned(),
            input,
        });
        self.open_uses.push((entry.id.to_string(), builtin));
    }

    fn user(&mut self, block: Block) {
        self.push(Role::User, block);
    }

    /// Ends the open assistant message and answers its tool uses.
    fn close_assistant(&mut self, results: &HashMap<String, (Vec<Block>, bool)>) {
        if !self.assistant_open {
            return;
        }
        self.assistant_open = false;
        for (id, builtin) in std::mem::take(&mut self.open_uses) {
            let (content, is_error) = match results.get(&id) {
                Some((content, is_error)) => (content.clone(), *is_error),
                None if builtin => (
                    vec![Block::Text {
                        text: ev::INTERRUPTED_BY_RESTART.to_owned(),
                    }],
                    true,
                ),
                None => (
                    vec![Block::Text {
                        text: "No result came for this tool call: the turn ended before it was answered."
                            .into(),
                    }],
                    true,
                ),
            };
            self.user(Block::ToolResult {
                tool_use_id: id,
                content,
                is_error,
            });
        }
    }

    fn finish(mut self) -> Vec<Message> {
        for message in &mut self.messages {
            if message.role == Role::User {
                // Tool results must lead their user message.
                message
                    .content
                    .sort_by_key(|b| !matches!(b, Block::ToolResult { .. }));
            }
        }
        self.messages.retain(|m| !m.content.is_empty());
        if self.messages.first().is_some_and(|m| m.role == Role::Assistant) {
            self.messages
                .insert(0, Message::user_text("(the conversation continues)"));
        }
        self.messages
    }
}
