//! The provider-neutral stream events: what every provider's stream decodes into.
//!
//! A stream yields, for each content block of the assistant's reply, a start (thinking and tool calls), deltas, and
//! a `*Complete` event carrying the whole block; then [`ProviderEvent::Usage`] when the provider reported usage,
//! then exactly one [`ProviderEvent::Stop`], and then it ends. Deltas are for showing progress; the `*Complete`
//! events are the unit of work the harness records. An `Err` item ends the stream early: discard the partial reply.

use serde_json::Value;

/// One decoded event of a model's streamed reply.
#[derive(Clone, Debug, PartialEq)]
pub enum ProviderEvent {
    /// A fragment of text for block `index`.
    TextDelta {
        /// Position of the block in the assistant message.
        index: usize,
        /// The fragment.
        text: String,
    },
    /// A text block is complete.
    TextComplete {
        /// Position of the block in the assistant message.
        index: usize,
        /// The whole text of the block.
        text: String,
    },
    /// A thinking block begins.
    ThinkingStart {
        /// Position of the block in the assistant message.
        index: usize,
    },
    /// A fragment of thinking for block `index`.
    ThinkingDelta {
        /// Position of the block in the assistant message.
        index: usize,
        /// The fragment.
        text: String,
    },
    /// A thinking block is complete.
    ThinkingComplete {
        /// Position of the block in the assistant message.
        index: usize,
        /// The whole reasoning text.
        thinking: String,
        /// The provider's signature, to echo back unchanged (Anthropic only).
        signature: Option<String>,
    },
    /// A redacted thinking block (complete on arrival).
    RedactedThinking {
        /// Position of the block in the assistant message.
        index: usize,
        /// Opaque data to echo back unchanged.
        data: String,
    },
    /// A tool call begins; its input follows as [`ProviderEvent::ToolCallDelta`]s.
    ToolCallStart {
        /// Position of the block in the assistant message.
        index: usize,
        /// The call's id.
        id: String,
        /// The tool's name.
        name: String,
    },
    /// A fragment of a tool call's input JSON. Fragments split strings and numbers anywhere: only the
    /// concatenation is JSON.
    ToolCallDelta {
        /// Position of the block in the assistant message.
        index: usize,
        /// The fragment.
        json: String,
    },
    /// A tool call is complete.
    ToolCallComplete {
        /// Position of the block in the assistant message.
        index: usize,
        /// The call.
        call: ToolCall,
    },
    /// Token usage of the whole request (a cumulative snapshot; the last one wins).
    Usage(Usage),
    /// The reply ended normally. Always the last event.
    Stop {
        /// Why the model stopped.
        reason: StopReason,
        /// The provider's own value (`end_turn`, `stop_sequence`, `tool_calls`, `length`, ...), when it sent one.
        raw: Option<String>,
    },
}

/// A complete tool call.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// The call's id (synthesized when an OpenAI-compatible server sent none, or a duplicate).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The input as the model wrote it.
    pub input: ToolInput,
}

/// A tool call's input: valid JSON, or what the model wrote when it was not.
///
/// Invalid input is not a stream error: the harness answers the call with an error tool result so the model can
/// correct itself.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolInput {
    /// The parsed input (an empty input is `{}`).
    Valid(Value),
    /// The input did not parse.
    Invalid {
        /// The concatenated input text.
        raw: String,
        /// The parse error.
        error: String,
    },
}

impl ToolInput {
    /// Parses an input buffer: empty (or whitespace) means `{}`; a JSON string that itself holds a JSON object (as
    /// some servers double-encode) is decoded once more.
    pub fn parse(raw: &str) -> Self {
        if raw.trim().is_empty() {
            return Self::Valid(Value::Object(serde_json::Map::new()));
        }
        match serde_json::from_str::<Value>(raw) {
            Ok(Value::String(inner)) => match serde_json::from_str::<Value>(&inner) {
                Ok(value @ Value::Object(_)) => Self::Valid(value),
                _ => Self::Valid(Value::String(inner)),
            },
            Ok(value) => Self::Valid(value),
            Err(err) => Self::Invalid {
                raw: raw.to_owned(),
                error: err.to_string(),
            },
        }
    }

    /// The input as JSON: the parsed value, or the raw text as a JSON string when it did not parse.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Valid(value) => value.clone(),
            Self::Invalid { raw, .. } => Value::String(raw.clone()),
        }
    }
}

/// Token counts of one request, normalized to Anthropic's meaning: `input_tokens` excludes cached tokens, so the
/// whole prompt is `input_tokens + cache_read_input_tokens + cache_creation_input_tokens`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens, thinking included.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens served from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
}

impl Usage {
    /// The whole prompt: uncached, cache-read and cache-written input tokens.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens
    }
}

/// Why the model stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its turn (also a matched stop sequence).
    EndTurn,
    /// The model called tools: run them and send the results.
    ToolUse,
    /// The output cap or the context window was reached. Tool calls of this reply may be truncated: never run them.
    MaxTokens,
    /// The provider refused to continue (safety classifier or content filter).
    Refusal,
}

impl StopReason {
    /// The snake_case name: `end_turn`, `tool_use`, `max_tokens` or `refusal`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EndTurn => "end_turn",
            Self::ToolUse => "tool_use",
            Self::MaxTokens => "max_tokens",
            Self::Refusal => "refusal",
        }
    }
}
