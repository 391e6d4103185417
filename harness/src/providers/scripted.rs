//! A provider that replays a script instead of calling a model: for tests, demos and `corral run` without a key.
//!
//! # Script format
//!
//! A script is YAML (or JSON, which YAML reads too) holding a list of `turns`. Turn `n` answers the `n`-th model
//! call of a session: the provider counts the assistant messages already in the request (see
//! [`ModelRequest::assistant_turns`]) and plays that turn. It keeps no state of its own for this, so the harness,
//! which is stateless, gets the same reply when it retries a call after a crash.
//!
//! ```yaml
//! turns:
//!   - content:                       # blocks, streamed in this order
//!       - thinking: "The user wants a greeting."       # a string, or a list of chunks
//!       - text: ["Hello", "! Let me check."]           # each chunk is one delta
//!       - tool_use:
//!           name: bash
//!           input: { command: "echo hello" }
//!           id: toolu_hello          # optional; default toolu_scripted_<turn>_<block>
//!     delay_ms: 20                   # optional pause before each chunk (default 0)
//!     usage:                         # optional; default: about one token per four characters
//!       input_tokens: 120
//!       output_tokens: 30
//!       cache_read_input_tokens: 0
//!       cache_creation_input_tokens: 0
//!     stop_reason: tool_use          # optional: end_turn, tool_use, max_tokens or refusal;
//!                                    # default tool_use when the turn calls a tool, else end_turn
//!     error:                         # optional: fail this call instead of finishing it
//!       type: model_overloaded_error # a session.error type: model_overloaded_error,
//!                                    # model_rate_limited_error, model_request_failed_error,
//!                                    # billing_error or unknown_error
//!       message: "Overloaded"        # optional
//!       after_chunks: 0              # chunks streamed before the error (default 0: fail before any output)
//!       times: 1                     # optional: fail only the first N calls of this turn made by this
//!                                    # provider instance (default: every call)
//!       retryable: true              # optional; default true for overloaded and rate-limited errors
//! ```
//!
//! Unknown keys are refused, so a typo is an error at load time, not a silent change of behaviour. A call past the
//! last turn fails with a `model_request_failed_error` that says so.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::error::{ErrorKind, ProviderError};
use super::event::{ProviderEvent, StopReason, ToolCall, ToolInput, Usage};
use super::request::{Block, ModelRequest};
use super::{EventStream, Provider};

/// A parsed script.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// The replies, one per model call.
    #[serde(default)]
    pub turns: Vec<ScriptTurn>,
}

/// One scripted reply.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptTurn {
    /// The blocks, streamed in order.
    #[serde(default)]
    pub content: Vec<ScriptBlock>,
    /// Pause before each chunk, in milliseconds.
    #[serde(default)]
    pub delay_ms: u64,
    /// Usage to report; estimated from the text when absent.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// Stop reason; `tool_use` when the turn calls a tool, else `end_turn`, when absent.
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    /// An error to fail the call with.
    #[serde(default)]
    pub error: Option<InjectedError>,
    /// Texts the request's system prompt must hold; a request without one of them fails (not retryable) naming it,
    /// so a test learns what the model was told.
    #[serde(default)]
    pub expect_system: Vec<String>,
    /// Media types the request's messages must hold an image or document of (`image/png`, `application/pdf`); a
    /// request without one fails the same way.
    #[serde(default)]
    pub expect_media: Vec<String>,
}

/// One block of a scripted reply: a map with exactly one key, `text`, `thinking` or `tool_use`.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(try_from = "RawBlock")]
pub enum ScriptBlock {
    /// Text, in chunks.
    Text(Chunks),
    /// Thinking, in chunks.
    Thinking(Chunks),
    /// A tool call.
    ToolUse(ScriptToolUse),
}

/// A block as written: the one-key map form (YAML libraries disagree on externally tagged enums, so the key is
/// checked here).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBlock {
    #[serde(default)]
    text: Option<Chunks>,
    #[serde(default)]
    thinking: Option<Chunks>,
    #[serde(default)]
    tool_use: Option<ScriptToolUse>,
}

impl TryFrom<RawBlock> for ScriptBlock {
    type Error = String;

    fn try_from(raw: RawBlock) -> Result<Self, String> {
        match (raw.text, raw.thinking, raw.tool_use) {
            (Some(text), None, None) => Ok(Self::Text(text)),
            (None, Some(thinking), None) => Ok(Self::Thinking(thinking)),
            (None, None, Some(tool)) => Ok(Self::ToolUse(tool)),
            _ => Err("a content block needs exactly one of `text`, `thinking` or `tool_use`".to_owned()),
        }
    }
}

/// A string, or a list of strings streamed as separate deltas.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum Chunks {
    /// One chunk.
    One(String),
    /// Several chunks.
    Many(Vec<String>),
}

impl Chunks {
    fn pieces(&self) -> Vec<String> {
        match self {
            Self::One(text) => vec![text.clone()],
            Self::Many(pieces) => pieces.clone(),
        }
    }
}

/// A scripted tool call.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScriptToolUse {
    /// The tool's name.
    pub name: String,
    /// The input (an object; `{}` when absent).
    #[serde(default = "empty_object")]
    pub input: Value,
    /// The call's id; `toolu_scripted_<turn>_<block>` when absent, so replays get the same ids.
    #[serde(default)]
    pub id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// An error the scripted call fails with.
#[derive(Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InjectedError {
    /// The `session.error` type.
    #[serde(rename = "type")]
    pub kind: ErrorKind,
    /// The message.
    #[serde(default)]
    pub message: Option<String>,
    /// Chunks streamed before the error.
    #[serde(default)]
    pub after_chunks: usize,
    /// Fail only the first `times` calls of this turn made by this provider instance; every call when absent.
    #[serde(default)]
    pub times: Option<u32>,
    /// Whether the error is retryable; true for overloaded and rate-limited errors when absent.
    #[serde(default)]
    pub retryable: Option<bool>,
}

impl InjectedError {
    fn error(&self, turn: usize) -> ProviderError {
        let retryable = self.retryable.unwrap_or(matches!(
            self.kind,
            ErrorKind::Overloaded | ErrorKind::RateLimited
        ));
        let message = self
            .message
            .clone()
            .unwrap_or_else(|| format!("scripted {} in turn {turn}", self.kind));
        let mut err = ProviderError::new(self.kind, message, retryable);
        err.attempts = 1;
        err
    }
}

/// A script that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScriptLoadError {
    /// The file could not be read.
    #[error("cannot read script {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not a valid script.
    #[error("invalid script: {0}")]
    Parse(#[from] serde_yaml::Error),
}

/// Replays a [`Script`] through the [`Provider`] trait.
#[derive(Clone, Debug)]
pub struct ScriptedProvider {
    script: Arc<Script>,
    /// Calls per turn that carry an error with `times`, counted so the error stops after `times` calls.
    error_calls: Arc<Mutex<HashMap<usize, u32>>>,
}

impl ScriptedProvider {
    /// A provider replaying `script`.
    pub fn new(script: Script) -> Self {
        Self {
            script: Arc::new(script),
            error_calls: Arc::default(),
        }
    }

    /// Parses a script from YAML or JSON text.
    pub fn parse(text: &str) -> Result<Self, ScriptLoadError> {
        Ok(Self::new(serde_yaml::from_str(text)?))
    }

    /// Reads and parses a script file (YAML or JSON).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ScriptLoadError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScriptLoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// The script being replayed.
    pub fn script(&self) -> &Script {
        &self.script
    }

    /// Whether this call of `turn` fails with its injected error.
    fn fails(&self, turn: usize, error: &InjectedError) -> bool {
        let Some(times) = error.times else { return true };
        let mut calls = self.error_calls.lock().unwrap_or_else(PoisonError::into_inner);
        let count = calls.entry(turn).or_default();
        *count += 1;
        *count <= times
    }
}

impl Provider for ScriptedProvider {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn stream(&self, request: ModelRequest) -> EventStream {
        let step = request.assistant_turns();
        let Some(turn) = self.script.turns.get(step).cloned() else {
            let err = ProviderError::new(
                ErrorKind::RequestFailed,
                format!(
                    "the script has {} turns and the conversation asks for turn {} (it already holds {step} \
                     assistant messages)",
                    self.script.turns.len(),
                    step + 1
                ),
                false,
            );
            return Box::pin(futures::stream::once(async move { Err(err) }));
        };
        if let Some(why) = unmet_expectation(&turn, &request) {
            let err = ProviderError::new(
                ErrorKind::RequestFailed,
                format!("turn {}: {why}", step + 1),
                false,
            );
            return Box::pin(futures::stream::once(async move { Err(err) }));
        }
        let error = turn
            .error
            .as_ref()
            .filter(|e| self.fails(step, e))
            .map(|e| (e.after_chunks, e.error(step)));
        let (steps, output_chars, calls) = plan(step, &turn.content);
        let usage = turn.usage.unwrap_or(Usage {
            input_tokens: estimate_tokens(&request),
            output_tokens: (output_chars as u64).div_ceil(4).max(1),
            ..Usage::default()
        });
        let reason = turn.stop_reason.unwrap_or(if calls > 0 {
            StopReason::ToolUse
        } else {
            StopReason::EndTurn
        });
        let delay = Duration::from_millis(turn.delay_ms);
        Box::pin(async_stream::stream! {
            let mut chunks = 0usize;
            for (is_chunk, event) in steps {
                if is_chunk {
                    if let Some((after, err)) = &error
                        && chunks >= *after
                    {
                        yield Err(err.clone());
                        return;
                    }
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    chunks += 1;
                }
                yield Ok(event);
            }
            if let Some((_, err)) = error {
                yield Err(err);
                return;
            }
            yield Ok(ProviderEvent::Usage(usage));
            yield Ok(ProviderEvent::Stop { reason, raw: None });
        })
    }
}

/// What the request lacks of what `turn` expects of it (its system prompt's texts, its media), if anything.
fn unmet_expectation(turn: &ScriptTurn, request: &ModelRequest) -> Option<String> {
    let system = request.system.as_deref().unwrap_or_default();
    if let Some(missing) = turn.expect_system.iter().find(|t| !system.contains(t.as_str())) {
        return Some(format!(
            "the system prompt does not hold {missing:?}; it is: {system:?}"
        ));
    }
    fn media(block: &Block, out: &mut Vec<String>) {
        match block {
            Block::Image { media_type, .. } | Block::Document { media_type, .. } => {
                out.push(media_type.clone())
            }
            Block::ToolResult { content, .. } => content.iter().for_each(|b| media(b, out)),
            _ => {}
        }
    }
    let mut held = Vec::new();
    request
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .for_each(|b| media(b, &mut held));
    turn.expect_media
        .iter()
        .find(|m| !held.contains(m))
        .map(|missing| {
            format!("the request holds no image or document of type {missing:?}; it holds {held:?}")
        })
}

/// The events of a turn's blocks, each marked whether it is a chunk (a delta, which delays and error injection
/// count), plus the characters of output and the number of tool calls.
fn plan(step: usize, content: &[ScriptBlock]) -> (Vec<(bool, ProviderEvent)>, usize, usize) {
    let mut steps = Vec::new();
    let mut chars = 0;
    let mut calls = 0;
    for (index, block) in content.iter().enumerate() {
        match block {
            ScriptBlock::Text(text) => {
                let pieces = text.pieces();
                for piece in &pieces {
                    steps.push((
                        true,
                        ProviderEvent::TextDelta {
                            index,
                            text: piece.clone(),
                        },
                    ));
                }
                let text = pieces.concat();
                chars += text.len();
                steps.push((false, ProviderEvent::TextComplete { index, text }));
            }
            ScriptBlock::Thinking(thinking) => {
                steps.push((false, ProviderEvent::ThinkingStart { index }));
                let pieces = thinking.pieces();
                for piece in &pieces {
                    steps.push((
                        true,
                        ProviderEvent::ThinkingDelta {
                            index,
                            text: piece.clone(),
                        },
                    ));
                }
                let thinking = pieces.concat();
                chars += thinking.len();
                steps.push((
                    false,
                    ProviderEvent::ThinkingComplete {
                        index,
                        thinking,
                        signature: None,
                    },
                ));
            }
            ScriptBlock::ToolUse(tool) => {
                let id = tool
                    .id
                    .clone()
                    .unwrap_or_else(|| format!("toolu_scripted_{step}_{index}"));
                let name = tool.name.clone();
                steps.push((
                    false,
                    ProviderEvent::ToolCallStart {
                        index,
                        id: id.clone(),
                        name: name.clone(),
                    },
                ));
                let json = tool.input.to_string();
                chars += json.len() + name.len();
                steps.push((true, ProviderEvent::ToolCallDelta { index, json }));
                let call = ToolCall {
                    id,
                    name,
                    input: ToolInput::Valid(tool.input.clone()),
                };
                steps.push((false, ProviderEvent::ToolCallComplete { index, call }));
                calls += 1;
            }
        }
    }
    (steps, chars, calls)
}

/// About one token per four characters of the request's text.
fn estimate_tokens(request: &ModelRequest) -> u64 {
    fn block_chars(block: &Block) -> usize {
        match block {
            Block::Text { text } => text.len(),
            Block::Thinking { thinking, .. } => thinking.len(),
            Block::ToolUse { name, input, .. } => name.len() + input.to_string().len(),
            Block::ToolResult { content, .. } => content.iter().map(block_chars).sum(),
            Block::Image { .. } | Block::Document { .. } | Block::RedactedThinking { .. } => 0,
        }
    }
    let chars = request.system.as_deref().map_or(0, str::len)
        + request
            .messages
            .iter()
            .flat_map(|m| &m.content)
            .map(block_chars)
            .sum::<usize>()
        + request
            .tools
            .iter()
            .map(|t| t.name.len() + t.description.len() + t.input_schema.to_string().len())
            .sum::<usize>();
    (chars as u64).div_ceil(4).max(1)
}
