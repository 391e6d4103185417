//! The provider-neutral request: what the harness asks of a model, whichever provider serves it.
//!
//! The shapes follow the Anthropic Messages API (ordered content blocks, tool results in user messages) because it
//! is the richer of the two; the OpenAI-compatible client converts them (see `openai/wire.rs`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use corral_api::agent::Effort;

/// One model call: everything a provider needs, nothing provider-specific.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ModelRequest {
    /// Model id as the provider knows it.
    pub model: String,
    /// The system prompt, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The conversation so far, oldest first. The last message is normally a `user` message.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// Hard cap on output tokens (thinking included).
    pub max_tokens: u32,
    /// Reasoning effort; the provider's default when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
    /// Extended thinking; the provider's default when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Where to place prompt-cache breakpoints (providers without explicit caching ignore them).
    #[serde(default)]
    pub cache: CacheHints,
}

impl ModelRequest {
    /// A request with no system prompt, tools, effort, thinking or cache hints.
    pub fn new(model: impl Into<String>, max_tokens: u32, messages: Vec<Message>) -> Self {
        Self {
            model: model.into(),
            system: None,
            messages,
            tools: Vec::new(),
            max_tokens,
            effort: None,
            thinking: None,
            cache: CacheHints::default(),
        }
    }

    /// How many assistant turns the conversation already holds: the number of model calls that completed before
    /// this one. The scripted provider uses it to pick its next response.
    pub fn assistant_turns(&self) -> usize {
        self.messages.iter().filter(|m| m.role == Role::Assistant).count()
    }
}

/// Who wrote a message.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The user, or the harness reporting tool results.
    User,
    /// The model.
    Assistant,
}

/// One message: a role and ordered content blocks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// The blocks, in order. Thinking blocks must be kept byte-exact and in their original position.
    pub content: Vec<Block>,
}

impl Message {
    /// A user message holding one text block.
    pub fn user_text(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: vec![Block::Text { text: text.into() }],
        }
    }

    /// An assistant message holding one text block.
    pub fn assistant_text(text: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: vec![Block::Text { text: text.into() }],
        }
    }
}

/// A content block of a message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// An image, base64-encoded (user messages and tool results).
    Image {
        /// `image/png`, `image/jpeg`, `image/gif` or `image/webp`.
        media_type: String,
        /// The base64-encoded bytes.
        data: String,
    },
    /// A PDF document, base64-encoded (user messages and tool results).
    Document {
        /// `application/pdf`.
        media_type: String,
        /// The base64-encoded bytes.
        data: String,
        /// Its title, if the client gave one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
    },
    /// The model's visible reasoning. Echo it back unchanged, signature included.
    Thinking {
        /// The reasoning text.
        thinking: String,
        /// The provider's signature over it (Anthropic); `None` for providers that sign nothing.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Reasoning the provider withheld: opaque data to echo back unchanged.
    RedactedThinking {
        /// The opaque data.
        data: String,
    },
    /// A tool call made by the model (assistant messages).
    ToolUse {
        /// The call's id, answered by a [`Block::ToolResult`] with the same `tool_use_id`.
        id: String,
        /// The tool's name.
        name: String,
        /// The input, a JSON object.
        input: Value,
    },
    /// The result of a tool call (user messages, before any text of that message).
    ToolResult {
        /// The id of the [`Block::ToolUse`] it answers.
        tool_use_id: String,
        /// The result: text and image blocks.
        #[serde(default)]
        content: Vec<Block>,
        /// Whether the tool failed.
        #[serde(default)]
        is_error: bool,
    },
}

/// A tool the model may call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ToolDefinition {
    /// The tool's name (`[A-Za-z0-9_-]`, at most 64 characters for OpenAI).
    pub name: String,
    /// What the tool does, shown to the model.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the tool's input, an object schema.
    pub input_schema: Value,
}

/// Extended thinking settings.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Thinking {
    /// The model decides when and how much to think.
    Adaptive,
    /// Think with at most this many tokens (at least 1024 and below `max_tokens` for Anthropic).
    Budget {
        /// The token budget.
        budget_tokens: u32,
    },
    /// No thinking.
    Disabled,
}

/// Where to put prompt-cache breakpoints. Anthropic honours them; OpenAI-compatible servers cache automatically.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CacheHints {
    /// A breakpoint after the system prompt.
    #[serde(default)]
    pub system: bool,
    /// A breakpoint after the last tool definition (caches the whole tool list).
    #[serde(default)]
    pub tools: bool,
    /// A rolling breakpoint on the last cacheable block of the last message.
    #[serde(default)]
    pub last_message: bool,
    /// How long cached entries live; the provider's default (five minutes) when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<CacheTtl>,
}

impl CacheHints {
    /// Breakpoints on the system prompt, the tools and the last message: the usual setting for an agent loop.
    pub fn agent_loop() -> Self {
        Self {
            system: true,
            tools: true,
            last_message: true,
            ttl: None,
        }
    }
}

/// Lifetime of a prompt-cache entry.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheTtl {
    /// Five minutes.
    #[serde(rename = "5m")]
    FiveMinutes,
    /// One hour.
    #[serde(rename = "1h")]
    OneHour,
}

impl CacheTtl {
    /// The wire value: `5m` or `1h`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FiveMinutes => "5m",
            Self::OneHour => "1h",
        }
    }
}
