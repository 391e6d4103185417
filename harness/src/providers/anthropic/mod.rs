//! The Anthropic Messages API: `POST {base}/v1/messages` with `stream: true`, decoded from its SSE events.

mod decode;
mod wire;

use std::sync::Arc;

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderValue};

use super::http::{self, ApiKey, BuildError, HttpSettings};
use super::{EventStream, ModelRequest, Provider};

/// The public endpoint.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The `anthropic-version` sent unless configured otherwise.
pub const DEFAULT_API_VERSION: &str = "2026-10-21";

/// How the API key is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthHeader {
    /// `x-api-key: <key>`, the documented header.
    #[default]
    XApiKey,
    /// `Authorization: Bearer <key>`, for gateways that expect it.
    Bearer,
}

/// Settings of an Anthropic provider.
#[derive(Clone, Debug)]
pub struct AnthropicConfig {
    /// Base URL; requests go to `{base_url}/v1/messages`.
    pub base_url: String,
    /// The API key (from the Agent's Secret).
    pub api_key: ApiKey,
    /// How the key is sent.
    pub auth: AuthHeader,
    /// The `anthropic-version` header.
    pub api_version: String,
    /// Beta features, sent as `anthropic-beta`.
    pub betas: Vec<String>,
    /// Retries and timeouts.
    pub http: HttpSettings,
}

impl AnthropicConfig {
    /// Settings for the public endpoint with this key and the defaults.
    pub fn new(api_key: ApiKey) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key,
            auth: AuthHeader::default(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            betas: Vec::new(),
            http: HttpSettings::default(),
        }
    }
}

/// A provider speaking the Anthropic Messages API.
#[derive(Clone, Debug)]
pub struct AnthropicProvider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    url: String,
    config: AnthropicConfig,
}

impl AnthropicProvider {
    /// Builds the provider (no request is made).
    pub fn new(config: AnthropicConfig) -> Result<Self, BuildError> {
        let url = format!("{}/v1/messages", http::base_url(&config.base_url)?);
        let client = http::client(&config.http)?;
        Ok(Self {
            inner: Arc::new(Inner { client, url, config }),
        })
    }
}

impl Provider for AnthropicProvider {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn stream(&self, request: ModelRequest) -> EventStream {
        let body = wire::body(&request);
        let inner = self.inner.clone();
        http::drive(
            inner.config.http.clone(),
            move || {
                let config = &inner.config;
                let (name, value) = match config.auth {
                    AuthHeader::XApiKey => ("x-api-key", config.api_key.header("")?),
                    AuthHeader::Bearer => ("authorization", config.api_key.header("Bearer ")?),
                };
                let mut builder = inner
                    .client
                    .post(&inner.url)
                    .header(name, value)
                    .header("anthropic-version", &config.api_version)
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .header(ACCEPT, HeaderValue::from_static("text/event-stream"))
                    .json(&body);
                if !config.betas.is_empty() {
                    builder = builder.header("anthropic-beta", config.betas.join(","));
                }
                Ok(builder)
            },
            decode::AnthropicDecoder::default,
        )
    }
}
