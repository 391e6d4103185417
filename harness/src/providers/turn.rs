//! Folding a provider's event stream into a finished assistant turn.

use futures::StreamExt;

use super::EventStream;
use super::error::{ErrorKind, ProviderError};
use super::event::{ProviderEvent, StopReason, ToolCall, ToolInput, Usage};
use super::request::{Block, Message, Role};

/// A complete assistant reply.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    /// The reply's blocks in order (text, thinking, redacted thinking, tool uses), ready to append to the
    /// conversation. Whitespace-only text blocks are dropped (providers refuse them when echoed back); a tool call
    /// whose input did not parse is recorded with input `{}` (its raw text is in `tool_calls`).
    pub content: Vec<Block>,
    /// The tool calls, in order, with their inputs as the model wrote them.
    pub tool_calls: Vec<ToolCall>,
    /// Usage, when the provider reported it.
    pub usage: Option<Usage>,
    /// Why the model stopped.
    pub stop_reason: StopReason,
    /// The provider's own stop value.
    pub raw_stop_reason: Option<String>,
}

impl Turn {
    /// The reply as an assistant message.
    pub fn message(&self) -> Message {
        Message {
            role: Role::Assistant,
            content: self.content.clone(),
        }
    }

    /// The text blocks joined together.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                Block::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// Reads a stream to its end and assembles the turn. The first error is returned and the partial reply dropped;
/// a stream that ends without [`ProviderEvent::Stop`] is an error too.
pub async fn collect(mut stream: EventStream) -> Result<Turn, ProviderError> {
    let mut blocks: Vec<(usize, Block)> = Vec::new();
    let mut tool_calls = Vec::new();
    let mut usage = None;
    while let Some(event) = stream.next().await {
        match event? {
            ProviderEvent::TextComplete { index, text } => {
                if !text.trim().is_empty() {
                    blocks.push((index, Block::Text { text }));
                }
            }
            ProviderEvent::ThinkingComplete {
                index,
                thinking,
                signature,
            } => {
                blocks.push((index, Block::Thinking { thinking, signature }));
            }
            ProviderEvent::RedactedThinking { index, data } => {
                blocks.push((index, Block::RedactedThinking { data }));
            }
            ProviderEvent::ToolCallComplete { index, call } => {
                let input = match &call.input {
                    ToolInput::Valid(value) => value.clone(),
                    ToolInput::Invalid { .. } => serde_json::json!({}),
                };
                blocks.push((
                    index,
                    Block::ToolUse {
                        id: call.id.clone(),
                        name: call.name.clone(),
                        input,
                    },
                ));
                tool_calls.push(call);
            }
            ProviderEvent::Usage(snapshot) => usage = Some(snapshot),
            ProviderEvent::Stop { reason, raw } => {
                blocks.sort_by_key(|(index, _)| *index);
                return Ok(Turn {
                    content: blocks.into_iter().map(|(_, block)| block).collect(),
                    tool_calls,
                    usage,
                    stop_reason: reason,
                    raw_stop_reason: raw,
                });
            }
            ProviderEvent::TextDelta { .. }
            | ProviderEvent::ThinkingStart { .. }
            | ProviderEvent::ThinkingDelta { .. }
            | ProviderEvent::ToolCallStart { .. }
            | ProviderEvent::ToolCallDelta { .. } => {}
        }
    }
    Err(ProviderError::new(
        ErrorKind::RequestFailed,
        "the event stream ended without a stop",
        true,
    ))
}
