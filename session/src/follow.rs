//! Blocking follows of a session's log (for SSE).

use std::collections::VecDeque;

use futures::Stream;
use redis::{aio::MultiplexedConnection, streams::StreamReadReply};

use crate::{Cursor, Error, Result, SessionLog, StoredEvent, log::decode_lossy};

/// Follows one session's log from a cursor: [`Follower::next`] returns every later event in order, waiting while
/// there is none.
///
/// It holds a Redis connection of its own (blocking reads would stall a shared one). After an error the next call
/// reconnects and carries on from the last event it returned, so nothing is missed or repeated; a new follower
/// made with [`Follower::cursor`] does the same. `next` is cancel-safe.
pub struct Follower {
    log: SessionLog,
    conn: Option<MultiplexedConnection>,
    cursor: Cursor,
    read_to: Cursor,
    buffer: VecDeque<StoredEvent>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("log", &self.log.keys)
            .field("cursor", &self.cursor)
            .field("buffered", &self.buffer.len())
            .finish()
    }
}

impl Follower {
    pub(crate) fn new(log: SessionLog, after: Cursor) -> Self {
        Self {
            log,
            conn: None,
            cursor: after,
            read_to: after,
            buffer: VecDeque::new(),
        }
    }

    /// The cursor of the last event returned (or the starting point): resume from here.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// The next event, waiting for it as long as it takes.
    pub async fn next(&mut self) -> Result<StoredEvent> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.cursor = event.cursor;
                return Ok(event);
            }
            self.fill().await?;
        }
    }

    /// One blocking read of what follows the last buffered or returned event.
    async fn fill(&mut self) -> Result<()> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.log.store.dedicated().await?),
        };
        let config = self.log.store.config();
        let block_ms = u64::try_from(config.block.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(config.follow_batch.max(1))
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(self.log.keys.events())
            .arg(self.read_to.to_string())
            .query_async(conn)
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) => {
                self.conn = None;
                return Err(Error::from_redis(
                    err,
                    "follow",
                    config.block + config.command_timeout,
                ));
            }
        };
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in &key.ids {
                if let Ok(cursor) = entry.id.parse() {
                    self.read_to = cursor;
                }
                self.buffer.extend(decode_lossy(entry));
            }
        }
        Ok(())
    }

    /// The follower as a stream of events. It ends after the first error; resume with a new follower from the
    /// last cursor seen.
    pub fn into_stream(self) -> impl Stream<Item = Result<StoredEvent>> + Send {
        futures::stream::unfold(Some(self), |state| async move {
            let mut follower = state?;
            match follower.next().await {
                Ok(event) => Some((Ok(event), Some(follower))),
                Err(err) => Some((Err(err), None)),
            }
        })
    }
}
