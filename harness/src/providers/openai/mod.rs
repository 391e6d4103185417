//! OpenAI-compatible chat completions: `POST {base}/chat/completions` with `stream: true`, as served by OpenAI,
//! vLLM, Ollama, LiteLLM and the like, decoded from its `data:` chunks.

mod decode;
mod wire;

use std::sync::Arc;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use super::http::{self, ApiKey, BuildError, HttpSettings};
use super::{EventStream, ModelRequest, Provider};

/// The public OpenAI endpoint (its base already ends in `/v1`).
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// The field that carries the output cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxTokensField {
    /// `max_completion_tokens`: OpenAI (its reasoning models refuse `max_tokens`), vLLM, LiteLLM.
    MaxCompletionTokens,
    /// `max_tokens`: Ollama reads only this one; most compatible servers accept it.
    MaxTokens,
}

/// What a particular server accepts: the differences between OpenAI and the compatible servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect {
    /// Which field carries `max_tokens`.
    pub max_tokens_field: MaxTokensField,
    /// Send `stream_options: {include_usage: true}` so the server reports usage at the end of the stream.
    pub stream_usage: bool,
    /// Send `reasoning_effort` when the request sets an effort.
    pub reasoning_effort: bool,
}

impl Dialect {
    /// The dialect for OpenAI itself.
    pub fn openai() -> Self {
        Self {
            max_tokens_field: MaxTokensField::MaxCompletionTokens,
            stream_usage: true,
            reasoning_effort: true,
        }
    }

    /// A conservative dialect for other compatible servers (vLLM, Ollama, LiteLLM).
    pub fn compatible() -> Self {
        Self {
            max_tokens_field: MaxTokensField::MaxTokens,
            stream_usage: true,
            reasoning_effort: false,
        }
    }

    /// The dialect that suits a base URL: OpenAI's for `api.openai.com`, the compatible one otherwise.
    pub fn for_base_url(base_url: &str) -> Self {
        if base_url.contains("://api.openai.com") {
            Self::openai()
        } else {
            Self::compatible()
        }
    }
}

/// Settings of an OpenAI-compatible provider.
#[derive(Clone, Debug)]
pub struct OpenAiConfig {
    /// Base URL including the version segment (`http://ollama:11434/v1`); requests go to
    /// `{base_url}/chat/completions`.
    pub base_url: String,
    /// The API key, sent as `Authorization: Bearer`; `None` for servers without auth (Ollama).
    pub api_key: Option<ApiKey>,
    /// What the server accepts.
    pub dialect: Dialect,
    /// Retries and timeouts.
    pub http: HttpSettings,
}

impl OpenAiConfig {
    /// Settings for a base URL, with the dialect that suits it and the default retries.
    pub fn new(base_url: impl Into<String>, api_key: Option<ApiKey>) -> Self {
        let base_url = base_url.into();
        let dialect = Dialect::for_base_url(&base_url);
        Self {
            base_url,
            api_key,
            dialect,
            http: HttpSettings::default(),
        }
    }
}

/// A provider speaking OpenAI-compatible chat completions.
#[derive(Clone, Debug)]
pub struct OpenAiProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    url: String,
    config: OpenAiConfig,
}

impl OpenAiProvider {
    /// Builds the provider (no request is made).
    pub fn new(config: OpenAiConfig) -> Result<Self, BuildError> {
        let url = format!("{}/chat/completions", http::base_url(&config.base_url)?);
        let client = http::client(&config.http)?;
        Ok(Self {
            inner: Arc::new(Inner { client, url, config }),
        })
    }
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn stream(&self, request: ModelRequest) -> EventStream {
        let body = wire::body(&request, self.inner.config.dialect);
        let inner = self.inner.clone();
        http::drive(
            inner.config.http.clone(),
            move || {
                let mut builder = inner
                    .client
                    .post(&inner.url)
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
                    .json(&body);
                if let Some(key) = &inner.config.api_key {
                    builder = builder.header(AUTHORIZATION, key.header("Bearer ")?);
                }
                Ok(builder)
            },
            decode::OpenAiDecoder::default,
        )
    }
}
