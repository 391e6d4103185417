//! The wake-up queue of a namespace: a stream of sessions that have new user events, read by the harness pool
//! through one consumer group, with entries of dead consumers reclaimed after a visibility timeout.

use std::time::Duration;

use redis::{
    aio::MultiplexedConnection,
    streams::{StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadReply},
};

use crate::{
    Error, Result, Store,
    keys::{WAKEUP_GROUP, wakeups},
};

/// One wake-up taken from the queue: work on `session` until the turn ends, then [`WakeConsumer::ack`] it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wakeup {
    /// The queue entry's id.
    pub entry: String,
    /// The session to wake.
    pub session: String,
    /// Whether this entry was reclaimed from a consumer that held it past the visibility timeout.
    pub reclaimed: bool,
}

pub(crate) async fn enqueue(store: &Store, namespace: &str, session: &str) -> Result<String> {
    if session.is_empty() {
        return Err(Error::InvalidArgument("session must not be empty".into()));
    }
    let mut conn = store.connection();
    let cmd = redis::cmd("XADD")
        .arg(wakeups(namespace))
        .arg("*")
        .arg("session")
        .arg(session)
        .to_owned();
    store
        .run("enqueue wake-up", async move { cmd.query_async(&mut conn).await })
        .await
}

/// The size and age of a namespace's wake-up queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueStats {
    /// Wake-ups not yet acknowledged: waiting, or taken by a harness that works on their session.
    pub depth: u64,
    /// When the oldest of them was enqueued (Unix milliseconds, the Redis server's clock).
    pub oldest_ms: Option<u64>,
}

pub(crate) async fn queue_stats(store: &Store, namespace: &str) -> Result<QueueStats> {
    let key = wakeups(namespace);
    let mut conn = store.connection();
    let mut pipe = redis::pipe();
    pipe.cmd("XLEN")
        .arg(&key)
        .cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1);
    let (depth, first): (u64, StreamRangeReply) = store
        .run("read the wake-up queue's size", async move {
            pipe.query_async(&mut conn).await
        })
        .await?;
    let oldest_ms = first
        .ids
        .first()
        .and_then(|e| e.id.split_once('-'))
        .and_then(|(ms, _)| ms.parse().ok());
    Ok(QueueStats { depth, oldest_ms })
}

/// A consumer of one namespace's wake-up queue. Each harness process has one, with a unique name.
pub struct WakeConsumer {
    store: Store,
    key: String,
    consumer: String,
    visibility: Duration,
    claim_from: String,
    conn: Option<MultiplexedConnection>,
}

impl std::fmt::Debug for WakeConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeConsumer")
            .field("key", &self.key)
            .field("consumer", &self.consumer)
            .field("visibility", &self.visibility)
            .finish_non_exhaustive()
    }
}

impl WakeConsumer {
    pub(crate) async fn new(
        store: Store,
        namespace: &str,
        consumer: &str,
        visibility: Duration,
    ) -> Result<Self> {
        if consumer.is_empty() {
            return Err(Error::InvalidArgument("consumer name must not be empty".into()));
        }
        if visibility.is_zero() {
            return Err(Error::InvalidArgument(
                "visibility timeout must be positive".into(),
            ));
        }
        let this = Self {
            store,
            key: wakeups(namespace),
            consumer: consumer.to_owned(),
            visibility,
            claim_from: "0-0".into(),
            conn: None,
        };
        this.ensure_group().await?;
        Ok(this)
    }

    /// Creates the consumer group (reading from the queue's start) unless it exists.
    async fn ensure_group(&self) -> Result<()> {
        let mut conn = self.store.connection();
        let cmd = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.key)
            .arg(WAKEUP_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .to_owned();
        match self
            .store
            .run("create wake-up group", async move {
                cmd.query_async::<()>(&mut conn).await
            })
            .await
        {
            Err(Error::Redis(err)) if err.code() == Some("BUSYGROUP") => Ok(()),
            other => other,
        }
    }

    /// Takes up to `max` wake-ups: first entries other consumers held past the visibility timeout, otherwise new
    /// ones, waiting up to the configured block time for them. An empty list means nothing came.
    ///
    /// Dropping the future (on shutdown) loses nothing: an entry Redis handed over meanwhile stays pending and is
    /// reclaimed by another consumer after the visibility timeout. A wake-up means "look at this session";
    /// duplicates are harmless, since the session's lease lets one replica at a time work on it.
    pub async fn take(&mut self, max: usize) -> Result<Vec<Wakeup>> {
        let max = max.max(1);
        let reclaimed = self.reclaim(max).await?;
        if !reclaimed.is_empty() {
            return Ok(reclaimed);
        }
        match self.read_new(max).await {
            Err(Error::Redis(err)) if err.code() == Some("NOGROUP") => {
                self.ensure_group().await?;
                self.read_new(max).await
            }
            other => other,
        }
    }

    async fn reclaim(&mut self, max: usize) -> Result<Vec<Wakeup>> {
        let mut conn = self.store.connection();
        let cmd = redis::cmd("XAUTOCLAIM")
            .arg(&self.key)
            .arg(WAKEUP_GROUP)
            .arg(&self.consumer)
            .arg(u64::try_from(self.visibility.as_millis()).unwrap_or(u64::MAX))
            .arg(&self.claim_from)
            .arg("COUNT")
            .arg(max)
            .to_owned();
        let reply: StreamAutoClaimReply = match self
            .store
            .run(
                "reclaim wake-ups",
                async move { cmd.query_async(&mut conn).await },
            )
            .await
        {
            Err(Error::Redis(err)) if err.code() == Some("NOGROUP") => {
                self.ensure_group().await?;
                return Ok(Vec::new());
            }
            other => other?,
        };
        self.claim_from = reply.next_stream_id;
        Ok(self.wakeups(&reply.claimed, true).await)
    }

    async fn read_new(&mut self, max: usize) -> Result<Vec<Wakeup>> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.store.dedicated().await?),
        };
        let config = self.store.config();
        let block_ms = u64::try_from(config.block.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply: redis::RedisResult<Option<StreamReadReply>> = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(WAKEUP_GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.key)
            .arg(">")
            .query_async(conn)
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) => {
                if err.is_unrecoverable_error() || err.is_io_error() || err.is_timeout() {
                    self.conn = None;
                }
                return Err(Error::from_redis(
                    err,
                    "take wake-ups",
                    config.block + config.command_timeout,
                ));
            }
        };
        let entries: Vec<StreamId> = reply
            .map(|r| r.keys)
            .unwrap_or_default()
            .into_iter()
            .flat_map(|k| k.ids)
            .collect();
        Ok(self.wakeups(&entries, false).await)
    }

    /// Turns entries into wake-ups; entries without a session (not written by [`Store::enqueue`]) are acknowledged
    /// and dropped.
    async fn wakeups(&self, entries: &[StreamId], reclaimed: bool) -> Vec<Wakeup> {
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry.get::<String>("session") {
                Some(session) if !session.is_empty() => out.push(Wakeup {
                    entry: entry.id.clone(),
                    session,
                    reclaimed,
                }),
                _ => {
                    tracing::warn!(entry = %entry.id, queue = %self.key, "dropping a wake-up without a session");
                    if let Err(err) = self.ack_entry(&entry.id).await {
                        tracing::warn!(entry = %entry.id, error = %err, "cannot drop a bad wake-up");
                    }
                }
            }
        }
        out
    }

    /// Acknowledges a wake-up whose turn is done: it is removed from the queue for good.
    pub async fn ack(&self, wakeup: &Wakeup) -> Result<()> {
        self.ack_entry(&wakeup.entry).await
    }

    async fn ack_entry(&self, entry: &str) -> Result<()> {
        let mut conn = self.store.connection();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XACK")
            .arg(&self.key)
            .arg(WAKEUP_GROUP)
            .arg(entry)
            .ignore()
            .cmd("XDEL")
            .arg(&self.key)
            .arg(entry)
            .ignore();
        self.store
            .run(
                "ack wake-up",
                async move { pipe.query_async::<()>(&mut conn).await },
            )
            .await
    }

    /// Tells the queue this consumer is still working on `wakeup`, restarting its visibility timeout, so a long
    /// turn is not reclaimed by another consumer. Returns `false` when the entry is no longer this consumer's (it
    /// was reclaimed by another or acknowledged).
    pub async fn touch(&self, wakeup: &Wakeup) -> Result<bool> {
        let mut invocation = crate::scripts::TOUCH.key(&self.key);
        invocation
            .arg(WAKEUP_GROUP)
            .arg(&self.consumer)
            .arg(&wakeup.entry);
        let mut conn = self.store.connection();
        let touched: i64 = self
            .store
            .run("touch wake-up", invocation.invoke_async(&mut conn))
            .await?;
        Ok(touched == 1)
    }
}
