//! The session log: every session's events in one Redis stream, outside any model's context window.
//!
//! - [`Store::connect`] opens the shared connection; [`Store::session`] gives one session's [`SessionLog`].
//! - Appends are ordered and atomic. The harness appends as the session's single writer: it takes the lease
//!   ([`SessionLog::acquire_lease`]), and every [`SessionLog::append`] carries the lease's fencing token, which a
//!   Lua script checks inside Redis, so a paused or partitioned old writer can never write after a new one took over
//!   ([`Error::Fenced`]). The gateway appends client events with [`SessionLog::append_user_events`], without a
//!   lease: the events and the wake-up they cause in one atomic step, with an optional idempotency key.
//! - Each event gets its API id (`sevt_…`, chosen before the append) and its `processed_at` (the time Redis took
//!   it) when appended. The stream entry id is the log's monotonic sequence: a [`Cursor`], used as SSE id and page
//!   cursor; `processed_at` is its millisecond part, so time order and log order agree.
//! - Reads: [`SessionLog::range`] pages either way from any cursor; [`SessionLog::follow`] blocks for what comes
//!   next from any cursor, so a reconnecting reader misses nothing.
//! - Wake-ups: [`Store::enqueue`] puts a session on its namespace's queue; a [`WakeConsumer`] takes, touches and
//!   acknowledges entries and reclaims those a dead consumer held past the visibility timeout.
//!
//! Every key is named in [`keys`] (and described in `docs/redis.md`): a tenant's keys share a prefix a Redis ACL
//! user can be limited to, and a session's keys share the hash tag of its wake-up shard, so Redis Cluster keeps
//! them in one slot and multi-key scripts (the fenced append, the append with its wake-up) stay legal.
//!
//! Durability is Redis's: run it with `appendonly yes` and `appendfsync always` (or `everysec`, which can lose up
//! to a second of acknowledged events if the machine dies).

pub mod acl;
mod connection;
mod cursor;
mod error;
mod follow;
pub mod keys;
mod lease;
mod ledger;
pub mod liveness;
mod log;
pub mod sandbox_tokens;
mod settle;
mod store;
mod sweep;
#[cfg(feature = "test-support")]
pub mod testing;
mod wakeup;

pub use connection::Connection;
pub use cursor::Cursor;
pub use error::{Error, Result};
pub use follow::{FollowHub, FollowHubStats, Follower, SharedEvent};
pub use keys::SessionKeys;
pub use lease::{FencingToken, Lease, ReplicaAcquire, ReplicaRelease};
pub use ledger::SessionSpend;
pub use log::{Appended, NewEvent, Order, Page, SPEC_GENERATION_TTL, SessionLog, StoredEvent};
pub use settle::generated_key;
pub use store::{
    Config, DEFAULT_FOLLOW_CATCH_UP_READS, DEFAULT_FOLLOW_HUB_BYTES, DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_SESSION_BYTES, DEFAULT_MAX_SESSION_EVENTS, Memory, STARTUP_PATIENCE, SessionCaps, Store,
};
pub use sweep::{TAIL as SWEEP_TAIL, unanswered_in};
pub use wakeup::{QueueStats, WakeConsumer, Wakeup};

/// Deletes every key of a session's log, and the record of its outputs (the Files they are stay: they are the
/// tenant's). Idempotent: deleting a log that is already gone succeeds.
pub async fn delete_session_log(
    conn: &mut impl redis::aio::ConnectionLike,
    namespace: &str,
    session: &str,
) -> Result<(), Error> {
    let keys = SessionKeys::new(namespace, session);
    let _: () = redis::cmd("DEL").arg(keys.all()).query_async(conn).await?;
    // Another hash slot (the namespace's files): a command of its own.
    let outputs = keys::Tenant::new(namespace).files().outputs(session);
    let _: () = redis::cmd("DEL").arg(outputs).query_async(conn).await?;
    tracing::debug!(namespace, session, "deleted session log");
    Ok(())
}
