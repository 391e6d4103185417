//! Retry policy: exponential backoff with jitter, and the server's `retry-after` hints.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use super::error::ProviderError;

/// When and how long to wait before repeating a failed request.
///
/// Only failures before any event reached the caller are retried: connection errors, retryable statuses (408, 409,
/// 429, 5xx, 529) and retryable errors at the very start of a stream. Once output began, an error ends the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts in all).
    pub max_retries: u32,
    /// The first backoff; each retry doubles it.
    pub initial_backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// The longest `retry-after` we wait for; a server asking for more gets no retry (the error carries its
    /// `retry_after` so the caller can reschedule).
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::default()
        }
    }

    /// The backoff before retry number `retries_done + 1`: `initial × 2^retries_done`, capped at `max_backoff`,
    /// times a random factor between 0.75 and 1.0.
    pub fn backoff(&self, retries_done: u32) -> Duration {
        let exp = self.initial_backoff.saturating_mul(1u32 << retries_done.min(20));
        exp.min(self.max_backoff).mul_f64(jitter())
    }

    /// How long to wait before the next attempt after `err`, or `None` when it must not be retried:
    /// not retryable, out of retries, or a `retry-after` longer than `max_retry_after`.
    pub fn delay_for(&self, err: &ProviderError, retries_done: u32) -> Option<Duration> {
        if !err.retryable || retries_done >= self.max_retries {
            return None;
        }
        match err.retry_after {
            Some(wait) if wait > self.max_retry_after => None,
            Some(wait) => Some(wait),
            None => Some(self.backoff(retries_done)),
        }
    }
}

/// A factor in [0.75, 1.0].
fn jitter() -> f64 {
    let random = getrandom::u32().unwrap_or(u32::MAX / 2);
    0.75 + 0.25 * (f64::from(random) / f64::from(u32::MAX))
}

/// The delay a response asks for: `retry-after-ms` (milliseconds), else `retry-after` (seconds, possibly
/// fractional, or an HTTP date).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = header("retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(1e9)));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// The `x-should-retry` override: `Some(true)` or `Some(false)` when the server sent one.
pub(crate) fn should_retry_override(headers: &HeaderMap) -> Option<bool> {
    match headers.get("x-should-retry")?.to_str().ok()?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::error::ErrorKind;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy::default();
        for retries in 0..10 {
            let base = (Duration::from_millis(500) * 2u32.pow(retries)).min(Duration::from_secs(8));
            let got = policy.backoff(retries);
            assert!(
                got <= base && got >= base.mul_f64(0.75),
                "retry {retries}: {got:?} vs {base:?}"
            );
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            retry_after(&headers),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        headers.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn long_retry_after_is_not_waited_for() {
        let policy = RetryPolicy::default();
        let mut err = ProviderError::new(ErrorKind::RateLimited, "slow down", true);
        err.retry_after = Some(Duration::from_secs(600));
        assert_eq!(policy.delay_for(&err, 0), None);
        err.retry_after = Some(Duration::from_secs(3));
        assert_eq!(policy.delay_for(&err, 0), Some(Duration::from_secs(3)));
        assert_eq!(policy.delay_for(&err, 3), None, "out of retries");
        err.retryable = false;
        assert_eq!(policy.delay_for(&err, 0), None);
    }
}
