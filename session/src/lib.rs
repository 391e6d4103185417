//! The session log: every session's events in one Redis stream, outside any model's context window.
//!
//! All keys of one session share a hash tag (`{namespace/session}`), so Redis Cluster keeps them on one shard and
//! multi-key scripts (the fenced append) stay legal.

pub mod keys;

pub use keys::SessionKeys;

/// Errors talking to the session log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Redis refused the command or could not be reached.
    #[error("session log unavailable: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Deletes every key of a session's log. Idempotent: deleting a log that is already gone succeeds.
pub async fn delete_session_log(
    conn: &mut impl redis::aio::ConnectionLike,
    namespace: &str,
    session: &str,
) -> Result<(), Error> {
    let keys = SessionKeys::new(namespace, session);
    let _: () = redis::cmd("DEL").arg(keys.all()).query_async(conn).await?;
    tracing::debug!(namespace, session, "deleted session log");
    Ok(())
}
