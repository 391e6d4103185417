//! The wake-up queue of a namespace: [`WAKEUP_SHARDS`] streams of sessions that have new client events, read by
//! the harness pool through one consumer group per shard, with entries of dead consumers reclaimed after a
//! visibility timeout. A session's wake-ups always go to its own shard, which shares the session's hash tag (see
//! [`crate::keys`]), so an append and its wake-up can be one script; a consumer reads every shard.

use std::time::Duration;

use redis::{
    aio::MultiplexedConnection,
    streams::{StreamAutoClaimReply, StreamId, StreamRangeReply, StreamReadReply},
};

use crate::{
    Error, Result, Store,
    keys::{SessionKeys, Tenant, WAKEUP_GROUP, WAKEUP_SHARDS},
};

/// One wake-up taken from the queue: work on `session` until the turn ends, then [`WakeConsumer::ack`] it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wakeup {
    /// The queue entry's id (within its shard).
    pub entry: String,
    /// The session to wake.
    pub session: String,
    /// Whether this entry was reclaimed from a consumer that held it past the visibility timeout.
    pub reclaimed: bool,
    /// The wake-up shard the entry is in (the session's).
    pub shard: u16,
}

pub(crate) async fn enqueue(store: &Store, namespace: &str, session: &str) -> Result<String> {
    if session.is_empty() {
        return Err(Error::InvalidArgument("session must not be empty".into()));
    }
    let mut conn = store.connection();
    let cmd = redis::cmd("XADD")
        .arg(SessionKeys::new(namespace, session).wakeups())
        .arg("*")
        .arg("session")
        .arg(session)
        .to_owned();
    store
        .run("enqueue wake-up", async move { cmd.query_async(&mut conn).await })
        .await
}

/// The size and age of a namespace's wake-up queue, over all its shards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueStats {
    /// Wake-ups not yet acknowledged: waiting, or taken by a harness that works on their session.
    pub depth: u64,
    /// When the oldest of them was enqueued (Unix milliseconds, the Redis server's clock).
    pub oldest_ms: Option<u64>,
}

pub(crate) async fn queue_stats(store: &Store, namespace: &str) -> Result<QueueStats> {
    let queues = Tenant::new(namespace).wakeup_queues();
    let mut conn = store.connection();
    let mut pipe = redis::pipe();
    for key in &queues {
        pipe.cmd("XLEN")
            .arg(key)
            .cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1);
    }
    let replies: Vec<(u64, StreamRangeReply)> = store
        .run("read the wake-up queue's size", async move {
            pipe.query_async(&mut conn).await
        })
        .await?;
    let depth = replies.iter().map(|(len, _)| len).sum();
    let oldest_ms = replies
        .iter()
        .filter_map(|(_, first)| first.ids.first())
        .filter_map(|e| e.id.split_once('-'))
        .filter_map(|(ms, _)| ms.parse().ok())
        .min();
    Ok(QueueStats { depth, oldest_ms })
}

/// A consumer of one namespace's wake-up queue (every shard). Each harness process has one, with a unique name.
pub struct WakeConsumer {
    store: Store,
    tenant: Tenant,
    queues: Vec<String>,
    consumer: String,
    visibility: Duration,
    claim_from: Vec<String>,
    rotation: usize,
    conn: Option<MultiplexedConnection>,
    last_prune: Option<std::time::Instant>,
}

/// How many times a wake-up may be handed to a consumer before it is dropped as a poison pill: a session whose
/// turn kills every replica that takes it must not take the whole pool down, one replica after another.
pub const MAX_DELIVERIES: u64 = 5;

/// How long a consumer with no pending wake-ups may stay silent before it is deleted from the group (a live
/// consumer reads at least every blocking-read time; a dead one would otherwise stay listed forever).
const PRUNE_IDLE: Duration = Duration::from_secs(10 * 60);

impl std::fmt::Debug for WakeConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WakeConsumer")
            .field("namespace", &self.tenant.namespace())
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
        let tenant = Tenant::new(namespace);
        let queues = tenant.wakeup_queues();
        let this = Self {
            store,
            tenant,
            claim_from: vec!["0-0".into(); queues.len()],
            queues,
            consumer: consumer.to_owned(),
            visibility,
            rotation: 0,
            conn: None,
            last_prune: None,
        };
        this.ensure_groups().await?;
        Ok(this)
    }

    /// Creates each shard's consumer group (reading from the shard's start) unless it exists.
    async fn ensure_groups(&self) -> Result<()> {
        for key in &self.queues {
            let mut conn = self.store.connection();
            let cmd = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(key)
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
                Err(Error::Redis(err)) if err.code() == Some("BUSYGROUP") => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Takes up to `max` wake-ups: first entries other consumers held past the visibility timeout, otherwise new
    /// ones from any shard, waiting up to the configured block time for them. An empty list means nothing came.
    ///
    /// Dropping the future (on shutdown) loses nothing: an entry Redis handed over meanwhile stays pending and is
    /// reclaimed by another consumer after the visibility timeout. A wake-up means "look at this session";
    /// duplicates are harmless, since the session's lease lets one replica at a time work on it.
    pub async fn take(&mut self, max: usize) -> Result<Vec<Wakeup>> {
        let max = max.max(1);
        self.rotation = (self.rotation + 1) % self.queues.len().max(1);
        let reclaimed = self.reclaim(max).await?;
        let taken = if reclaimed.is_empty() {
            match self.read_new(max).await {
                Err(Error::Redis(err)) if err.code() == Some("NOGROUP") => {
                    self.ensure_groups().await?;
                    self.read_new(max).await?
                }
                other => other?,
            }
        } else {
            reclaimed
        };
        Ok(self.keep(taken, max).await)
    }

    /// Keeps `max` of `taken`, fairly across shards, and gives the rest back to the pool at once.
    async fn keep(&self, mut taken: Vec<Wakeup>, max: usize) -> Vec<Wakeup> {
        if taken.len() <= max {
            return taken;
        }
        let shards = usize::from(WAKEUP_SHARDS);
        let rotation = self.rotation;
        taken.sort_by_key(|w| (usize::from(w.shard) + shards - rotation) % shards);
        let surplus = taken.split_off(max);
        for wakeup in &surplus {
            self.give_back(wakeup).await;
        }
        taken
    }

    /// Puts a taken wake-up back at the end of its shard, in one step (its new entry, then the old one
    /// acknowledged). On failure the old entry stays pending and is reclaimed after the visibility timeout.
    async fn give_back(&self, wakeup: &Wakeup) {
        let key = self.tenant.wakeups(wakeup.shard);
        let mut conn = self.store.connection();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("session")
            .arg(&wakeup.session)
            .ignore()
            .cmd("XACK")
            .arg(&key)
            .arg(WAKEUP_GROUP)
            .arg(&wakeup.entry)
            .ignore()
            .cmd("XDEL")
            .arg(&key)
            .arg(&wakeup.entry)
            .ignore();
        if let Err(err) = self
            .store
            .run("give a wake-up back", async move {
                pipe.query_async::<()>(&mut conn).await
            })
            .await
        {
            tracing::debug!(session = %wakeup.session, error = %err, "cannot give a wake-up back; it is reclaimed later");
        }
    }

    /// Claims, on every shard, entries held past the visibility timeout (one round trip).
    async fn reclaim(&mut self, max: usize) -> Result<Vec<Wakeup>> {
        let mut conn = self.store.connection();
        let idle = u64::try_from(self.visibility.as_millis()).unwrap_or(u64::MAX);
        let mut pipe = redis::pipe();
        for (key, from) in self.queues.iter().zip(&self.claim_from) {
            pipe.cmd("XAUTOCLAIM")
                .arg(key)
                .arg(WAKEUP_GROUP)
                .arg(&self.consumer)
                .arg(idle)
                .arg(from)
                .arg("COUNT")
                .arg(max);
        }
        let replies: Vec<StreamAutoClaimReply> = match self
            .store
            .run(
                "reclaim wake-ups",
                async move { pipe.query_async(&mut conn).await },
            )
            .await
        {
            Err(Error::Redis(err)) if err.code() == Some("NOGROUP") => {
                self.ensure_groups().await?;
                return Ok(Vec::new());
            }
            other => other?,
        };
        let mut out = Vec::new();
        for (shard, reply) in (0u16..).zip(replies) {
            if let Some(from) = self.claim_from.get_mut(usize::from(shard)) {
                *from = reply.next_stream_id;
            }
            let claimed = self.drop_poison(shard, reply.claimed).await;
            out.extend(self.wakeups(&claimed, true, shard).await);
        }
        self.prune_consumers().await;
        Ok(out)
    }

    /// Drops (acknowledges and deletes, with an error log) the reclaimed entries delivered more than
    /// [`MAX_DELIVERIES`] times, and returns the others.
    async fn drop_poison(&self, shard: u16, claimed: Vec<StreamId>) -> Vec<StreamId> {
        if claimed.is_empty() {
            return claimed;
        }
        let key = self.tenant.wakeups(shard);
        let mut conn = self.store.connection();
        let mut pipe = redis::pipe();
        for entry in &claimed {
            pipe.cmd("XPENDING")
                .arg(&key)
                .arg(WAKEUP_GROUP)
                .arg(&entry.id)
                .arg(&entry.id)
                .arg(1);
        }
        let counts: Vec<Vec<(String, String, u64, u64)>> = match self
            .store
            .run("count wake-up deliveries", async move {
                pipe.query_async(&mut conn).await
            })
            .await
        {
            Ok(counts) => counts,
            Err(err) => {
                tracing::debug!(error = %err, "cannot count wake-up deliveries");
                return claimed;
            }
        };
        let mut kept = Vec::with_capacity(claimed.len());
        for (entry, pending) in claimed.into_iter().zip(counts) {
            let deliveries = pending.first().map_or(0, |p| p.3);
            if deliveries > MAX_DELIVERIES {
                let session = entry.get::<String>("session").unwrap_or_default();
                tracing::error!(%session, entry = %entry.id, deliveries, namespace = %self.tenant.namespace(),
                    "dropping a wake-up that was taken too many times without an answer (its replicas died)");
                if let Err(err) = self.ack_entry(shard, &entry.id).await {
                    tracing::warn!(entry = %entry.id, error = %err, "cannot drop a poison wake-up");
                }
            } else {
                kept.push(entry);
            }
        }
        kept
    }

    /// Deletes, at most once per [`PRUNE_IDLE`], the consumers of every shard that hold nothing and have been
    /// silent that long (replicas that died without being reaped: those of an older release).
    async fn prune_consumers(&mut self) {
        if self.last_prune.is_some_and(|at| at.elapsed() < PRUNE_IDLE) {
            return;
        }
        self.last_prune = Some(std::time::Instant::now());
        let idle_ms = u64::try_from(PRUNE_IDLE.max(self.visibility).as_millis()).unwrap_or(u64::MAX);
        for key in &self.queues {
            let mut conn = self.store.connection();
            let cmd = redis::cmd("XINFO")
                .arg("CONSUMERS")
                .arg(key)
                .arg(WAKEUP_GROUP)
                .to_owned();
            let consumers: Vec<std::collections::HashMap<String, redis::Value>> = match self
                .store
                .run("list wake-up consumers", async move {
                    cmd.query_async(&mut conn).await
                })
                .await
            {
                Ok(c) => c,
                Err(err) => {
                    tracing::debug!(error = %err, "cannot list wake-up consumers");
                    continue;
                }
            };
            for consumer in consumers {
                let number = |field: &str| match consumer.get(field) {
                    Some(redis::Value::Int(n)) => u64::try_from(*n).unwrap_or(0),
                    _ => 0,
                };
                let name = match consumer.get("name") {
                    Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                    _ => continue,
                };
                if number("pending") > 0 || number("idle") < idle_ms || name == self.consumer {
                    continue;
                }
                let mut conn = self.store.connection();
                let cmd = redis::cmd("XGROUP")
                    .arg("DELCONSUMER")
                    .arg(key)
                    .arg(WAKEUP_GROUP)
                    .arg(&name)
                    .to_owned();
                match self
                    .store
                    .run("delete a dead consumer", async move {
                        cmd.query_async::<i64>(&mut conn).await
                    })
                    .await
                {
                    Ok(_) => tracing::info!(consumer = %name, "deleted a silent wake-up consumer"),
                    Err(err) => tracing::debug!(consumer = %name, error = %err, "cannot delete a consumer"),
                }
            }
        }
    }

    /// One blocking read of new entries over every shard.
    ///
    /// One command over all shards suits a single Redis. On Redis Cluster the shards are on several nodes and a
    /// multi-key read is refused (`CROSSSLOT`): the under-fire issue reads per node there.
    async fn read_new(&mut self, max: usize) -> Result<Vec<Wakeup>> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.store.dedicated().await?),
        };
        let config = self.store.config();
        let block_ms = u64::try_from(config.block.as_millis()).unwrap_or(u64::MAX).max(1);
        let per_shard = max.div_ceil(self.queues.len().max(1)).max(1);
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(WAKEUP_GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(per_shard)
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&self.queues);
        for _ in &self.queues {
            cmd.arg(">");
        }
        let reply: redis::RedisResult<Option<StreamReadReply>> = cmd.query_async(conn).await;
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
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(shard) = self.shard_of_queue(&key.key) else {
                continue;
            };
            out.extend(self.wakeups(&key.ids, false, shard).await);
        }
        Ok(out)
    }

    fn shard_of_queue(&self, key: &str) -> Option<u16> {
        (0u16..)
            .zip(&self.queues)
            .find(|(_, q)| *q == key)
            .map(|(shard, _)| shard)
    }

    /// Turns entries into wake-ups; entries without a session (not written by [`Store::enqueue`]) are acknowledged
    /// and dropped.
    async fn wakeups(&self, entries: &[StreamId], reclaimed: bool, shard: u16) -> Vec<Wakeup> {
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            match entry.get::<String>("session") {
                Some(session) if !session.is_empty() => out.push(Wakeup {
                    entry: entry.id.clone(),
                    session,
                    reclaimed,
                    shard,
                }),
                _ => {
                    tracing::warn!(entry = %entry.id, shard, namespace = %self.tenant.namespace(), "dropping a wake-up without a session");
                    if let Err(err) = self.ack_entry(shard, &entry.id).await {
                        tracing::warn!(entry = %entry.id, error = %err, "cannot drop a bad wake-up");
                    }
                }
            }
        }
        out
    }

    /// Acknowledges a wake-up whose turn is done: it is removed from the queue for good.
    pub async fn ack(&self, wakeup: &Wakeup) -> Result<()> {
        self.ack_entry(wakeup.shard, &wakeup.entry).await
    }

    async fn ack_entry(&self, shard: u16, entry: &str) -> Result<()> {
        let key = self.tenant.wakeups(shard);
        let mut conn = self.store.connection();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XACK")
            .arg(&key)
            .arg(WAKEUP_GROUP)
            .arg(entry)
            .ignore()
            .cmd("XDEL")
            .arg(&key)
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
        let mut invocation = crate::keys::scripts::TOUCH.key(self.tenant.wakeups(wakeup.shard));
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
