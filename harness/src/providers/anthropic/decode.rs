//! Decoding the Messages API's SSE events (`message_start`, `content_block_*`, `message_delta`, `message_stop`,
//! `ping`, `error`) into provider-neutral events.

use std::collections::HashMap;

use eventsource_stream::Event;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::Value;

use crate::providers::error::ProviderError;
use crate::providers::event::{ProviderEvent, StopReason, ToolCall, ToolInput, Usage};
use crate::providers::http::{Decoder, plain_status_message};

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: WireMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: Value,
    },
    ContentBlockDelta {
        index: usize,
        delta: WireDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: WireMessageDelta,
        #[serde(default)]
        usage: UsagePatch,
    },
    MessageStop,
    Ping,
    Error {
        error: WireError,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    usage: UsagePatch,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct WireMessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Usage fields; each overwrites the snapshot only when present (the values are cumulative).
#[derive(Deserialize, Default)]
struct UsagePatch {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Option<WireErrorDetails>,
}

#[derive(Deserialize)]
struct WireErrorDetails {
    #[serde(default)]
    error_code: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: WireError,
}

impl WireError {
    fn into_error(self, status: Option<u16>) -> ProviderError {
        let code = self.details.and_then(|d| d.error_code).unwrap_or_default();
        let message = if self.message.is_empty() {
            self.kind.clone()
        } else {
            self.message
        };
        ProviderError::classified(status, &[self.kind.as_str(), code.as_str()], message)
    }
}

enum BlockState {
    Text(String),
    Thinking {
        text: String,
        signature: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    /// A block kind we do not surface (server tools, redacted thinking already emitted, future kinds).
    Ignored,
}

/// State of one reply being decoded.
#[derive(Default)]
pub(super) struct AnthropicDecoder {
    started: bool,
    blocks: HashMap<usize, BlockState>,
    tool_calls: usize,
    usage: Usage,
    stop_reason: Option<String>,
    done: bool,
}

impl AnthropicDecoder {
    fn patch_usage(&mut self, patch: UsagePatch) {
        let usage = &mut self.usage;
        usage.input_tokens = patch.input_tokens.unwrap_or(usage.input_tokens);
        usage.output_tokens = patch.output_tokens.unwrap_or(usage.output_tokens);
        usage.cache_read_input_tokens = patch
            .cache_read_input_tokens
            .unwrap_or(usage.cache_read_input_tokens);
        usage.cache_creation_input_tokens = patch
            .cache_creation_input_tokens
            .unwrap_or(usage.cache_creation_input_tokens);
    }

    fn start_block(
        &mut self,
        index: usize,
        block: Value,
        data: &str,
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let text = |key: &str| {
            block
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (state, events) = match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let initial = text("text");
                let events = if initial.is_empty() {
                    vec![]
                } else {
                    vec![ProviderEvent::TextDelta {
                        index,
                        text: initial.clone(),
                    }]
                };
                (BlockState::Text(initial), events)
            }
            Some("thinking") => {
                let initial = text("thinking");
                let mut events = vec![ProviderEvent::ThinkingStart { index }];
                if !initial.is_empty() {
                    events.push(ProviderEvent::ThinkingDelta {
                        index,
                        text: initial.clone(),
                    });
                }
                let signature = Some(text("signature")).filter(|s| !s.is_empty());
                (
                    BlockState::Thinking {
                        text: initial,
                        signature,
                    },
                    events,
                )
            }
            Some("redacted_thinking") => (
                BlockState::Ignored,
                vec![ProviderEvent::RedactedThinking {
                    index,
                    data: text("data"),
                }],
            ),
            Some("tool_use") => {
                let (id, name) = (text("id"), text("name"));
                if id.is_empty() || name.is_empty() {
                    return Err(ProviderError::malformed(
                        "tool_use block without id or name",
                        data,
                    ));
                }
                let events = vec![ProviderEvent::ToolCallStart {
                    index,
                    id: id.clone(),
                    name: name.clone(),
                }];
                (
                    BlockState::ToolUse {
                        id,
                        name,
                        json: String::new(),
                    },
                    events,
                )
            }
            _ => (BlockState::Ignored, vec![]),
        };
        self.blocks.insert(index, state);
        Ok(events)
    }

    fn delta(
        &mut self,
        index: usize,
        delta: WireDelta,
        data: &str,
    ) -> Result<Vec<ProviderEvent>, ProviderError> {
        let Some(block) = self.blocks.get_mut(&index) else {
            return Err(ProviderError::malformed(
                format_args!("delta for block {index}, which never started"),
                data,
            ));
        };
        // A delta whose kind does not match its block is ignored, as the SDKs do.
        Ok(match (block, delta) {
            (BlockState::Text(buf), WireDelta::TextDelta { text }) => {
                buf.push_str(&text);
                vec![ProviderEvent::TextDelta { index, text }]
            }
            (BlockState::Thinking { text: buf, .. }, WireDelta::ThinkingDelta { thinking }) => {
                buf.push_str(&thinking);
                vec![ProviderEvent::ThinkingDelta {
                    index,
                    text: thinking,
                }]
            }
            (BlockState::Thinking { signature, .. }, WireDelta::SignatureDelta { signature: sig }) => {
                *signature = Some(sig); // replaces, never appends
                vec![]
            }
            (BlockState::ToolUse { json, .. }, WireDelta::InputJsonDelta { partial_json }) => {
                json.push_str(&partial_json);
                if partial_json.is_empty() {
                    vec![]
                } else {
                    vec![ProviderEvent::ToolCallDelta {
                        index,
                        json: partial_json,
                    }]
                }
            }
            _ => vec![],
        })
    }

    fn stop_block(&mut self, index: usize, data: &str) -> Result<Vec<ProviderEvent>, ProviderError> {
        let Some(block) = self.blocks.insert(index, BlockState::Ignored) else {
            return Err(ProviderError::malformed(
                format_args!("stop of block {index}, which never started"),
                data,
            ));
        };
        Ok(match block {
            BlockState::Text(text) => vec![ProviderEvent::TextComplete { index, text }],
            BlockState::Thinking { text, signature } => {
                vec![ProviderEvent::ThinkingComplete {
                    index,
                    thinking: text,
                    signature,
                }]
            }
            BlockState::ToolUse { id, name, json } => {
                self.tool_calls += 1;
                let call = ToolCall {
                    id,
                    name,
                    input: ToolInput::parse(&json),
                };
                vec![ProviderEvent::ToolCallComplete { index, call }]
            }
            BlockState::Ignored => vec![],
        })
    }

    fn finish(&mut self) -> Vec<ProviderEvent> {
        self.done = true;
        let raw = self.stop_reason.clone();
        let reason = match raw.as_deref() {
            Some("tool_use") => StopReason::ToolUse,
            Some("max_tokens" | "model_context_window_exceeded") => StopReason::MaxTokens,
            Some("refusal") => StopReason::Refusal,
            Some("end_turn" | "stop_sequence" | "pause_turn") => StopReason::EndTurn,
            _ if self.tool_calls > 0 => StopReason::ToolUse,
            _ => StopReason::EndTurn,
        };
        vec![
            ProviderEvent::Usage(self.usage),
            ProviderEvent::Stop { reason, raw },
        ]
    }
}

impl Decoder for AnthropicDecoder {
    fn event(&mut self, event: &Event) -> Result<Vec<ProviderEvent>, ProviderError> {
        let data = event.data.trim();
        if data.is_empty() || event.event == "ping" {
            return Ok(vec![]);
        }
        let wire: WireEvent = serde_json::from_str(data)
            .map_err(|err| ProviderError::malformed(format_args!("{} event: {err}", event.event), data))?;
        if !self.started
            && !matches!(
                wire,
                WireEvent::MessageStart { .. }
                    | WireEvent::Ping
                    | WireEvent::Error { .. }
                    | WireEvent::Unknown
            )
        {
            return Err(ProviderError::malformed(
                "stream: content before message_start",
                data,
            ));
        }
        match wire {
            WireEvent::MessageStart { message } => {
                self.started = true;
                self.patch_usage(message.usage);
                Ok(vec![])
            }
            WireEvent::ContentBlockStart { index, content_block } => {
                self.start_block(index, content_block, data)
            }
            WireEvent::ContentBlockDelta { index, delta } => self.delta(index, delta, data),
            WireEvent::ContentBlockStop { index } => self.stop_block(index, data),
            WireEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                self.patch_usage(usage);
                Ok(vec![])
            }
            WireEvent::MessageStop => Ok(self.finish()),
            WireEvent::Ping | WireEvent::Unknown => Ok(vec![]),
            WireEvent::Error { error } => Err(error.into_error(None)),
        }
    }

    fn end(&mut self) -> Result<Vec<ProviderEvent>, ProviderError> {
        Err(ProviderError::transport("the stream ended before message_stop"))
    }

    fn done(&self) -> bool {
        self.done
    }

    fn error_body(status: StatusCode, body: &str) -> ProviderError {
        match serde_json::from_str::<ErrorEnvelope>(body) {
            Ok(envelope) => envelope.error.into_error(Some(status.as_u16())),
            Err(_) => {
                ProviderError::classified(Some(status.as_u16()), &[], plain_status_message(status, body))
            }
        }
    }
}
