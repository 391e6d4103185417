//! Model providers behind one trait.
//!
//! The harness builds a provider-neutral [`ModelRequest`] from the session log and reads the reply as a stream of
//! provider-neutral [`ProviderEvent`]s, whichever provider serves the agent:
//!
//! - [`AnthropicProvider`]: the Anthropic Messages API (streaming SSE, tool use, thinking, prompt caching);
//! - [`OpenAiProvider`]: OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, LiteLLM and the like);
//! - [`ScriptedProvider`]: replays a script file, for tests and demos.
//!
//! The HTTP providers retry 429, 5xx, 529 and connection failures with exponential backoff and jitter, honouring
//! `retry-after`, but only until the first event reached the caller: once output began, an error ends the stream
//! and the harness discards the partial reply. Errors are typed ([`ProviderError`]) and map to the API's
//! `session.error` types ([`ErrorKind`]).
//!
//! Keys are handed in by the caller (the harness reads them from the Agent's Secret) as [`ApiKey`]s, which never
//! print and travel in headers marked sensitive.
//!
//! ```
//! use corral_harness::providers::{Message, ModelRequest, Provider, ScriptedProvider, StopReason, collect};
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = ScriptedProvider::parse("turns:\n  - content: [{text: [Hel, lo]}]\n")?;
//! let request = ModelRequest::new("scripted", 1024, vec![Message::user_text("Hi")]);
//! let turn = collect(provider.stream(request)).await?; // or read the events one by one
//! assert_eq!((turn.text().as_str(), turn.stop_reason), ("Hello", StopReason::EndTurn));
//! # Ok(()) }
//! ```
//!
//! # Why a trait object
//!
//! [`Provider`] is object-safe: which provider serves a session is only known at run time (from the Agent's spec),
//! and tests and benchmarks plug in their own, so the harness holds an `Arc<dyn Provider>`. The trait needs no
//! `async fn`: [`Provider::stream`] returns the boxed stream at once, and the request, its retries and the
//! decoding all happen as the stream is polled. Dropping the stream cancels the request.

mod anthropic;
mod error;
mod event;
mod http;
mod openai;
mod request;
mod retry;
pub mod scripted;
mod turn;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;

pub use anthropic::{AnthropicConfig, AnthropicProvider, AuthHeader, DEFAULT_API_VERSION, DEFAULT_BASE_URL};
pub use error::{ErrorKind, ProviderError};
pub use event::{ProviderEvent, StopReason, ToolCall, ToolInput, Usage};
pub use http::{ApiKey, BuildError, HttpSettings, ModelTimeouts};
pub use openai::{Dialect, MaxTokensField, OPENAI_BASE_URL, OpenAiConfig, OpenAiProvider};
pub use request::{
    Block, CacheHints, CacheTtl, Effort, Message, ModelRequest, Role, Thinking, ToolDefinition,
};
pub use retry::RetryPolicy;
pub use scripted::ScriptedProvider;
pub use turn::{Turn, collect};

/// The events of one model call. It ends after [`ProviderEvent::Stop`], or after its first `Err`.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ProviderEvent, ProviderError>> + Send>>;

/// A model provider: turns a request into a stream of events.
pub trait Provider: Send + Sync {
    /// A short name for logs and metrics: `anthropic`, `openai` or `scripted`.
    fn name(&self) -> &'static str;

    /// Starts a model call. Nothing happens until the stream is polled.
    fn stream(&self, request: ModelRequest) -> EventStream;
}

/// What [`build`] needs beyond the Agent's provider settings: the things the harness reads from Secrets and
/// ConfigMaps.
#[derive(Clone, Debug, Default)]
pub struct ProviderInputs {
    /// The API key from `apiKeySecretRef`.
    pub api_key: Option<ApiKey>,
    /// The script text from `scriptRef` (scripted providers only).
    pub script: Option<String>,
    /// Retries and timeouts for HTTP providers.
    pub http: HttpSettings,
}

/// Builds the provider an Agent's `spec.model.provider` asks for.
pub fn build(
    config: &corral_api::agent::ProviderConfig,
    inputs: ProviderInputs,
) -> Result<Arc<dyn Provider>, BuildError> {
    use corral_api::agent::ProviderKind;
    Ok(match config.kind {
        ProviderKind::Anthropic => {
            let key = inputs
                .api_key
                .ok_or(BuildError::Missing("the anthropic provider needs an API key"))?;
            let mut anthropic = AnthropicConfig::new(key);
            if let Some(base) = &config.base_url {
                anthropic.base_url = base.clone();
            }
            anthropic.http = inputs.http;
            Arc::new(AnthropicProvider::new(anthropic)?)
        }
        ProviderKind::Openai => {
            let base = config.base_url.as_deref().unwrap_or(OPENAI_BASE_URL);
            let mut openai = OpenAiConfig::new(base, inputs.api_key);
            openai.http = inputs.http;
            Arc::new(OpenAiProvider::new(openai)?)
        }
        ProviderKind::Scripted => {
            let text = inputs
                .script
                .ok_or(BuildError::Missing("the scripted provider needs a script"))?;
            Arc::new(ScriptedProvider::parse(&text).map_err(|err| BuildError::Script(err.to_string()))?)
        }
    })
}
