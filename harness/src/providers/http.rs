//! What the HTTP providers share: the API key wrapper, connection settings, and the driver that sends a request
//! with retries and turns the SSE reply into provider-neutral events through a per-provider decoder.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, Response, StatusCode};

use super::EventStream;
use super::error::{ProviderError, truncate};
use super::event::ProviderEvent;
use super::retry::{RetryPolicy, retry_after, should_retry_override};

/// An API key. Its `Debug` output is redacted and the header carrying it is marked sensitive, so it never reaches
/// a log.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key read from a Secret (surrounding whitespace, such as a trailing newline, is dropped).
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into().trim().to_owned())
    }

    /// The key as a header value marked sensitive, with `prefix` before it (`"Bearer "` or `""`).
    pub(crate) fn header(&self, prefix: &str) -> Result<HeaderValue, ProviderError> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", self.0)).map_err(|_| {
            ProviderError::new(
                super::ErrorKind::RequestFailed,
                "the API key holds characters that cannot go in an HTTP header",
                false,
            )
        })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Connection settings shared by the HTTP providers.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Retries before any output (see [`RetryPolicy`]).
    pub retry: RetryPolicy,
    /// The timeouts of one model request.
    pub timeouts: ModelTimeouts,
}

/// The timeouts of a model request; each one that fires fails the attempt with an error naming it (retried like
/// any transport failure before output, else reported as the turn's `session.error`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelTimeouts {
    /// Longest wait for a TCP/TLS connection.
    pub connect: Duration,
    /// Longest wait from sending the request to the response's status and headers (and, for an error status, for
    /// each chunk of its body).
    pub response: Duration,
    /// Longest silence between two SSE events before the stream counts as broken (pings reset it).
    pub idle: Duration,
}

impl Default for ModelTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            response: Duration::from_secs(60),
            idle: Duration::from_secs(120),
        }
    }
}

static PROCESS_TIMEOUTS: OnceLock<ModelTimeouts> = OnceLock::new();

impl ModelTimeouts {
    /// Sets the timeouts every [`HttpSettings::default`] of this process starts from (the harness's flags). Only
    /// the first call counts.
    pub fn set_process_default(timeouts: Self) {
        let _ = PROCESS_TIMEOUTS.set(timeouts);
    }

    /// The process's timeouts: those set at start-up, else the built-in defaults.
    pub fn process_default() -> Self {
        PROCESS_TIMEOUTS.get().copied().unwrap_or_default()
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            timeouts: ModelTimeouts::process_default(),
        }
    }
}

/// Problems building a provider.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The base URL is not an http(s) URL.
    #[error("invalid base URL {0:?}: expected http:// or https://")]
    BaseUrl(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The base URL is an address the harness's outbound wall keeps closed.
    #[error("{0}")]
    Walled(String),
    /// A provider needs a setting it was not given.
    #[error("{0}")]
    Missing(&'static str),
    /// The scripted provider's script is invalid.
    #[error("{0}")]
    Script(String),
}

/// Builds the HTTP client: rustls with the ring crypto provider, no overall timeout (streams last as long as they
/// last; the idle timeout guards them).
pub(crate) fn client(settings: &HttpSettings) -> Result<reqwest::Client, BuildError> {
    // Installing fails harmlessly when a provider is already installed process-wide.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(crate::outbound::client_builder()
        .connect_timeout(settings.timeouts.connect)
        .build()?)
}

/// Checks a base URL (an http(s) URL the harness's outbound wall lets it reach) and drops its trailing slashes.
pub(crate) fn base_url(url: &str) -> Result<String, BuildError> {
    let trimmed = url.trim().trim_end_matches('/');
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        return Err(BuildError::BaseUrl(url.to_owned()));
    }
    crate::outbound::current()
        .check_url(trimmed)
        .map_err(BuildError::Walled)?;
    Ok(trimmed.to_owned())
}

/// Turns one provider's SSE events into provider-neutral events. A fresh decoder serves each attempt.
pub(crate) trait Decoder: Send + 'static {
    /// Decodes one SSE event into zero or more events.
    fn event(&mut self, event: &Event) -> Result<Vec<ProviderEvent>, ProviderError>;
    /// The server closed the stream: the final events, or an error when the reply was cut short.
    fn end(&mut self) -> Result<Vec<ProviderEvent>, ProviderError>;
    /// Whether the reply is complete (the driver stops reading).
    fn done(&self) -> bool;
    /// Decodes an error status's body.
    fn error_body(status: StatusCode, body: &str) -> ProviderError;
}

/// Sends the request built by `build` and decodes the reply with `D`, retrying failures that happen before any
/// event reached the caller.
pub(crate) fn drive<D, B, N>(settings: HttpSettings, build: B, new_decoder: N) -> EventStream
where
    D: Decoder,
    B: Fn() -> Result<RequestBuilder, ProviderError> + Send + 'static,
    N: Fn() -> D + Send + 'static,
{
    Box::pin(async_stream::stream! {
        let policy = settings.retry;
        let mut attempt: u32 = 0;
        'attempts: loop {
            attempt += 1;
            let request = match build() {
                Ok(request) => request,
                Err(err) => {
                    yield Err(err);
                    return;
                }
            };
            let timeouts = settings.timeouts;
            let sent = tokio::time::timeout(timeouts.response, request.send()).await;
            let failure = match sent {
                Err(_) => with_attempts(
                    ProviderError::transport(format!(
                        "no response within {:?} (the model response timeout)",
                        timeouts.response
                    )),
                    attempt,
                ),
                Ok(Err(err)) => with_attempts(transport_error(&err), attempt),
                Ok(Ok(response)) if !response.status().is_success() => {
                    with_attempts(status_error::<D>(response, timeouts.response).await, attempt)
                }
                Ok(Ok(response)) => {
                    let request_id = request_id(response.headers());
                    let mut events = response.bytes_stream().eventsource();
                    let mut decoder = new_decoder();
                    let mut yielded = false;
                    loop {
                        let next = tokio::time::timeout(timeouts.idle, events.next()).await;
                        let decoded = match next {
                            Err(_) => Err(ProviderError::transport(format!(
                                "no event for {:?}: the stream stalled (the model idle timeout)",
                                timeouts.idle
                            ))),
                            Ok(None) => decoder.end(),
                            Ok(Some(Err(err))) => Err(ProviderError::transport(format!("stream broke: {err}"))),
                            Ok(Some(Ok(event))) => decoder.event(&event),
                        };
                        match decoded {
                            Ok(out) => {
                                for event in out {
                                    yielded = true;
                                    yield Ok(event);
                                }
                                if decoder.done() {
                                    return;
                                }
                            }
                            Err(mut err) => {
                                err.request_id = err.request_id.or_else(|| request_id.clone());
                                if yielded {
                                    yield Err(with_attempts(err, attempt));
                                    return;
                                }
                                break with_attempts(err, attempt);
                            }
                        }
                    }
                }
            };
            match policy.delay_for(&failure, attempt - 1) {
                Some(delay) => {
                    tracing::warn!(
                        error = %failure,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "model request failed before any output; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    continue 'attempts;
                }
                None => {
                    yield Err(failure);
                    return;
                }
            }
        }
    })
}

fn with_attempts(mut err: ProviderError, attempt: u32) -> ProviderError {
    err.attempts = attempt;
    err
}

fn transport_error(err: &reqwest::Error) -> ProviderError {
    // reqwest's message names the URL but never the headers, so no key leaks here.
    let what = if err.is_connect() {
        "cannot connect"
    } else if err.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    let mut message = format!("{what}: {err}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    ProviderError::transport(message)
}

/// The most of an error body we read.
const MAX_ERROR_BODY: usize = 64 * 1024;

async fn status_error<D: Decoder>(response: Response, chunk_timeout: Duration) -> ProviderError {
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(chunk_timeout, chunks.next()).await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY {
            body.truncate(MAX_ERROR_BODY);
            break;
        }
    }
    let mut err = D::error_body(status, &String::from_utf8_lossy(&body));
    err.status = Some(status.as_u16());
    err.request_id = request_id(&headers);
    err.retry_after = retry_after(&headers);
    if let Some(retry) = should_retry_override(&headers) {
        err.retryable = retry;
    }
    err
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    ["request-id", "x-request-id"]
        .iter()
        .find_map(|name| headers.get(*name)?.to_str().ok().map(str::to_owned))
}

/// The message for an error status whose body is not the provider's error envelope.
pub(crate) fn plain_status_message(status: StatusCode, body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", truncate(body, 500))
    }
}
