//! Errors of the session log, sorted so callers can tell "retry later" from "you lost the session".

use std::time::Duration;

/// Errors talking to the session log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis could not be reached or the connection broke. Nothing was acknowledged; retry later.
    #[error("session log unavailable (Redis unreachable): {0}")]
    Unavailable(#[source] redis::RedisError),
    /// Redis did not answer in time. A write may or may not have been applied: read the log to find out before
    /// writing it again.
    #[error("session log timed out after {after:?} during {operation}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// How long we waited.
        after: Duration,
    },
    /// Redis refused the command.
    #[error("session log error: {0}")]
    Redis(#[source] redis::RedisError),
    /// The append was refused because another writer took the session over: this writer must stop.
    #[error("fenced: writer token {token} is stale, the session's current token is {current}")]
    Fenced {
        /// The token the append carried.
        token: u64,
        /// The session's current token (0 when no lease was ever taken).
        current: u64,
    },
    /// Another holder has the session's lease.
    #[error("session lease is held by {holder:?} for another {expires_in:?}")]
    LeaseHeld {
        /// The current holder.
        holder: String,
        /// Time left on its lease.
        expires_in: Duration,
    },
    /// The lease was lost (taken over, or expired and taken over): this writer must stop.
    #[error("session lease lost: token {token} no longer holds the session")]
    LeaseLost {
        /// The token that no longer holds.
        token: u64,
    },
    /// A cursor that is not a stream entry id (`<milliseconds>-<sequence>`).
    #[error("invalid cursor {0:?}")]
    InvalidCursor(String),
    /// A caller passed an argument the log cannot use.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A stored entry is not an event (not written by this library).
    #[error("corrupt entry {cursor} in the session log: {reason}")]
    Corrupt {
        /// The entry's stream id.
        cursor: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An event is larger than [`crate::Config::max_event_bytes`]; nothing was written.
    #[error("event {index} is {size} bytes, over the limit of {limit} bytes per event")]
    EventTooLarge {
        /// Its position in the append (from 0).
        index: usize,
        /// Its size as stored (JSON bytes).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The session's log is full ([`crate::SessionCaps`]); nothing was written.
    #[error("the session's log is full: it holds {used} {unit}, the limit is {limit} {unit} per session")]
    SessionFull {
        /// `"bytes"` or `"events"`: the cap reached.
        unit: &'static str,
        /// What the log holds.
        used: u64,
        /// The cap.
        limit: u64,
    },
    /// Redis is out of memory (`maxmemory` reached with `noeviction`): nothing was written. Retry later; an
    /// operator must raise `maxmemory` or delete sessions.
    #[error("session log out of memory (Redis maxmemory reached); nothing was written: {0}")]
    OutOfMemory(#[source] redis::RedisError),
    /// An event could not be encoded.
    #[error("cannot encode event: {0}")]
    Encode(#[from] serde_json::Error),
}

impl Error {
    /// Whether retrying later may succeed (Redis down or slow).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Timeout { .. } | Self::OutOfMemory(_)
        )
    }

    /// Sorts a Redis error by cause.
    pub(crate) fn from_redis(err: redis::RedisError, operation: &'static str, after: Duration) -> Self {
        if err.code() == Some("OOM") || err.to_string().contains("OOM command not allowed") {
            Self::OutOfMemory(err)
        } else if err.is_timeout() {
            Self::Timeout { operation, after }
        } else if err.is_io_error() || err.is_connection_refusal() || err.is_connection_dropped() {
            Self::Unavailable(err)
        } else {
            Self::Redis(err)
        }
    }
}

impl From<redis::RedisError> for Error {
    fn from(err: redis::RedisError) -> Self {
        Self::from_redis(err, "a command", Duration::ZERO)
    }
}

/// A result of the session log.
pub type Result<T, E = Error> = std::result::Result<T, E>;
