//! Following a session's SSE stream without losing events: each message's `id:` is a cursor; when the
//! connection drops, the follower reconnects with `Last-Event-ID: <last cursor>` and the gateway replays every
//! event after it exactly once.

use std::{collections::HashSet, pin::Pin, time::Duration};

use eventsource_stream::{Event as SseEvent, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{
    client::{Client, parse_error},
    error::{CliError, Result},
};

/// Where a stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// With the next event (the gateway fixes the position when it answers).
    Now,
    /// With the session's first event (replays the whole history, then follows).
    Beginning,
    /// After this cursor.
    After(String),
}

/// One event of the stream.
#[derive(Debug, Clone)]
pub struct Streamed {
    /// The stream cursor (`<millis>-<seq>`) to resume after this event.
    pub cursor: String,
    /// The event, as the API shapes it.
    pub event: Value,
}

type Sse =
    Pin<Box<dyn Stream<Item = std::result::Result<SseEvent, EventStreamError<reqwest::Error>>> + Send>>;

/// How long to wait between reconnects: 0.5 s, doubling up to 10 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1u64 << attempt.min(5))).min(Duration::from_secs(10))
}

/// Reconnects that may meet a 401 before the follower gives up (0.5 + 1 + 2 + 4 + 8 s of waiting).
const AUTH_ATTEMPTS: u32 = 5;

/// Consecutive failed connections after which the follower gives up.
const MAX_ATTEMPTS: u32 = 12;

/// A session's event stream that reconnects by itself.
pub struct Follower {
    client: Client,
    path: String,
    cursor: Option<String>,
    /// The gateway's clock (ms) when the first connection answered, for a reconnect before any event.
    opened_at: Option<u64>,
    seen: HashSet<String>,
    sse: Option<Sse>,
    done: bool,
}

impl Follower {
    /// Connects (so a wrong id or key fails at once and the start position is fixed before this returns).
    pub async fn open(client: &Client, session: &str, start: Start) -> Result<Self> {
        let cursor = match start {
            Start::Now => None,
            Start::Beginning => Some("0-0".to_owned()),
            Start::After(c) => Some(c),
        };
        let mut follower = Self {
            client: client.clone(),
            path: format!("/v1/sessions/{session}/events/stream"),
            cursor,
            opened_at: None,
            seen: HashSet::new(),
            sse: None,
            done: false,
        };
        follower.connect().await?;
        Ok(follower)
    }

    async fn connect(&mut self) -> Result<()> {
        let mut req = self
            .client
            .request(Method::GET, &self.path)
            .header("accept", "text/event-stream");
        let resume = self.cursor.clone().or_else(|| {
            // No event yet and the first connection is gone: resume from a second before it opened (the ids
            // seen set drops any repeat).
            self.opened_at.map(|ms| format!("{}-0", ms.saturating_sub(1000)))
        });
        if let Some(c) = &resume {
            req = req.header("last-event-id", c);
        }
        let res = self.client.execute(req).await?;
        if self.opened_at.is_none() {
            self.opened_at = res
                .headers()
                .get("date")
                .and_then(|d| d.to_str().ok())
                .and_then(httpdate_millis);
        }
        self.sse = Some(Box::pin(res.bytes_stream().eventsource()));
        Ok(())
    }

    /// The next event; `None` once the session is terminated or deleted (the gateway ends the stream).
    pub async fn next(&mut self) -> Result<Option<Streamed>> {
        let mut attempts = 0u32;
        loop {
            if self.done {
                return Ok(None);
            }
            let Some(sse) = self.sse.as_mut() else {
                if attempts >= MAX_ATTEMPTS {
                    return Err(CliError::Network(format!(
                        "lost the event stream and could not reconnect after {MAX_ATTEMPTS} tries"
                    )));
                }
                tokio::time::sleep(backoff(attempts)).await;
                attempts += 1;
                match self.connect().await {
                    Ok(()) => {}
                    // A gateway that just restarted may refuse keys until it has loaded them: a 401 is
                    // retried a few times on a reconnect (never on the first connection).
                    Err(CliError::Api(e)) if !retry_reconnect(e.status, attempts) => {
                        return Err(CliError::Api(e));
                    }
                    Err(e) => eprintln!("{}", console::style(format!("(reconnecting: {e})")).dim()),
                }
                continue;
            };
            match sse.next().await {
                Some(Ok(msg)) => {
                    if let Some(item) = self.accept(msg)? {
                        return Ok(Some(item));
                    }
                }
                Some(Err(e)) => {
                    eprintln!(
                        "{}",
                        console::style(format!("(stream interrupted: {e}; reconnecting)")).dim()
                    );
                    self.sse = None;
                }
                None => {
                    // Ended without a terminal event (gateway restart, proxy timeout): resume after the cursor.
                    self.sse = None;
                }
            }
        }
    }

    fn accept(&mut self, msg: SseEvent) -> Result<Option<Streamed>> {
        match msg.event.as_str() {
            "ping" => return Ok(None),
            "error" => {
                return Err(CliError::Api(parse_error(
                    StatusCode::OK,
                    None,
                    msg.data.as_bytes(),
                )));
            }
            _ => {}
        }
        if msg.data.trim().is_empty() {
            return Ok(None);
        }
        let event: Value = serde_json::from_str(&msg.data)
            .map_err(|e| CliError::Other(format!("the stream sent an event that is not JSON: {e}")))?;
        if !msg.id.is_empty() {
            self.cursor = Some(msg.id.clone());
        }
        let id = event
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let ty = event.get("type").and_then(Value::as_str).unwrap_or_default();
        if matches!(ty, "session.status_terminated" | "session.deleted") {
            self.done = true;
        }
        if !id.is_empty() && !self.seen.insert(id) {
            return Ok(None);
        }
        Ok(Some(Streamed {
            cursor: msg.id,
            event,
        }))
    }
}

fn retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

/// Whether a reconnect that got `status` after `attempts` tries goes on trying.
fn retry_reconnect(status: u16, attempts: u32) -> bool {
    retryable(status) || (status == 401 && attempts < AUTH_ATTEMPTS)
}

/// Milliseconds since the epoch of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn httpdate_millis(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s).ok()?;
    let since = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_millis()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_ten_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(5), Duration::from_secs(10));
        assert_eq!(backoff(40), Duration::from_secs(10));
    }

    #[test]
    fn http_dates_become_millis() {
        assert_eq!(
            httpdate_millis("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(httpdate_millis("yesterday"), None);
    }

    #[test]
    fn client_errors_are_not_retried() {
        assert!(!retryable(404));
        assert!(!retryable(401));
        assert!(retryable(429));
        assert!(retryable(503));
        assert!(retry_reconnect(401, 1));
        assert!(!retry_reconnect(401, AUTH_ATTEMPTS));
        assert!(!retry_reconnect(404, 0));
    }
}
