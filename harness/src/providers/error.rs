//! Typed provider errors, mapped to the API's `session.error` types.

use std::fmt;
use std::time::Duration;

/// The API's `session.error` type a provider failure maps to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ErrorKind {
    /// The provider is overloaded (HTTP 529 or 503, `overloaded_error`).
    #[serde(rename = "model_overloaded_error")]
    Overloaded,
    /// The provider rate-limited us (HTTP 429, `rate_limit_error`).
    #[serde(rename = "model_rate_limited_error")]
    RateLimited,
    /// The request failed: refused (4xx), a server error (5xx), a broken connection, or a malformed reply.
    #[serde(rename = "model_request_failed_error")]
    RequestFailed,
    /// Billing: payment required, quota or spend limit reached.
    #[serde(rename = "billing_error")]
    Billing,
    /// Anything else.
    #[serde(rename = "unknown_error")]
    Unknown,
}

impl ErrorKind {
    /// The `session.error` `error.type` value.
    pub fn session_error_type(self) -> &'static str {
        match self {
            Self::Overloaded => "model_overloaded_error",
            Self::RateLimited => "model_rate_limited_error",
            Self::RequestFailed => "model_request_failed_error",
            Self::Billing => "billing_error",
            Self::Unknown => "unknown_error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.session_error_type())
    }
}

/// A failed model call.
///
/// `retryable` says whether the same request may succeed later. The provider has already made its own retries
/// (counted in `attempts`) when it reports an error, so a retryable error means "retry the turn later", not "retry
/// now". Errors never carry request headers, so they never carry API keys.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub struct ProviderError {
    /// The `session.error` type.
    pub kind: ErrorKind,
    /// What went wrong, for people.
    pub message: String,
    /// Whether the same request may succeed later.
    pub retryable: bool,
    /// The HTTP status, when the provider answered with an error status (`None` for errors inside a 200 stream).
    pub status: Option<u16>,
    /// The provider's own error type or code (`overloaded_error`, `insufficient_quota`, ...).
    pub provider_type: Option<String>,
    /// The provider's request id (`request-id` or `x-request-id`), for support tickets.
    pub request_id: Option<String>,
    /// How long the provider asked us to wait (`retry-after-ms` / `retry-after`).
    pub retry_after: Option<Duration>,
    /// HTTP attempts made, retries included (0 for providers that make none).
    pub attempts: u32,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        let mut details = Vec::new();
        if let Some(status) = self.status {
            details.push(format!("HTTP {status}"));
        }
        if let Some(kind) = &self.provider_type {
            details.push(kind.clone());
        }
        if let Some(id) = &self.request_id {
            details.push(format!("request {id}"));
        }
        if self.attempts > 1 {
            details.push(format!("{} attempts", self.attempts));
        }
        if !details.is_empty() {
            write!(f, " ({})", details.join(", "))?;
        }
        Ok(())
    }
}

impl ProviderError {
    /// An error of `kind` with a message and nothing else known.
    pub fn new(kind: ErrorKind, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            kind,
            message: message.into(),
            retryable,
            status: None,
            provider_type: None,
            request_id: None,
            retry_after: None,
            attempts: 0,
        }
    }

    /// A reply that could not be decoded: not retryable, because the same server would most likely send it again.
    pub fn malformed(what: impl fmt::Display, data: &str) -> Self {
        Self::new(
            ErrorKind::RequestFailed,
            format!("malformed {what} (data: {})", truncate(data, 200)),
            false,
        )
    }

    /// A connection that broke or timed out: retryable.
    pub fn transport(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RequestFailed, message, true)
    }

    /// Classifies an error the provider reported, from its HTTP status (`None` inside a 200 stream) and its error
    /// type or code strings (for example `overloaded_error`, `insufficient_quota`).
    pub fn classified(status: Option<u16>, codes: &[&str], message: impl Into<String>) -> Self {
        let has = |needle: &str| codes.iter().any(|c| c.contains(needle));
        let (kind, retryable) = if status == Some(402)
            || has("billing")
            || has("insufficient_quota")
            || has("spend_limit")
            || has("payment")
        {
            (ErrorKind::Billing, false)
        } else if status == Some(529) || status == Some(503) || has("overloaded") {
            (ErrorKind::Overloaded, true)
        } else if status == Some(429) || has("rate_limit") {
            (ErrorKind::RateLimited, true)
        } else {
            match status {
                Some(408 | 409) => (ErrorKind::RequestFailed, true),
                Some(500..=599) => (ErrorKind::RequestFailed, true),
                Some(400..=499) => (ErrorKind::RequestFailed, false),
                Some(_) => (ErrorKind::Unknown, false),
                None if has("api_error") || has("server_error") || has("timeout") => {
                    (ErrorKind::RequestFailed, true)
                }
                None if has("invalid_request") || has("authentication") || has("permission") => {
                    (ErrorKind::RequestFailed, false)
                }
                None => (ErrorKind::Unknown, false),
            }
        };
        let mut err = Self::new(kind, message, retryable);
        err.status = status;
        err.provider_type = codes.iter().find(|c| !c.is_empty()).map(|c| (*c).to_owned());
        err
    }
}

/// The first `max` characters of `text`, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}
