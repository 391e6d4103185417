//! Blocking follows of a session's log (for SSE), multiplexed over one Redis connection per process.
//!
//! A [`FollowHub`] (one per [`Store`](crate::Store), made on the first follow) runs one blocking `XREAD` over the
//! logs that have followers, on one connection of its own, and tells their followers when a log grew. A follower
//! then reads what came after its own cursor with a plain `XRANGE` on the store's shared connection. So a process
//! holds two Redis connections however many streams it follows, and every follower keeps its own position: order,
//! resume from a cursor, and no loss come from reading the log itself, not from the notification.
//!
//! A new log is taken into the hub's read at once: the follower rings the hub's doorbell in its namespace (a tiny
//! stream under the tenant's prefix, so a tenant's Redis user may ring and read it,
//! [`crate::keys::Tenant::follow_doorbell`]), which ends the blocking read so that the next one includes the new
//! log. A follower also re-reads the log now and then without a notification, so a hub that
//! failed costs latency, never events.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use futures::Stream;
use redis::{
    Client, RedisResult,
    aio::MultiplexedConnection,
    streams::{StreamRangeReply, StreamReadReply},
};
use tokio::sync::watch;

use crate::{Config, Cursor, Error, Result, SessionLog, StoredEvent, log::decode_lossy};

/// How much longer than a blocking read a follower waits for a notification before it re-reads the log anyway.
const FALLBACK_FACTOR: u32 = 6;

/// One process's shared follow of many session logs. Cheap to clone.
#[derive(Clone)]
pub struct FollowHub {
    inner: Arc<HubInner>,
}

impl std::fmt::Debug for FollowHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FollowHub")
            .field("id", &self.inner.id)
            .field("followed", &self.followed())
            .finish()
    }
}

struct HubInner {
    client: Client,
    config: Arc<Config>,
    /// The store's shared connection, for ringing the doorbells.
    conn: crate::Connection,
    /// This hub's name, part of its doorbells' keys.
    id: String,
    logs: Mutex<HashMap<String, Followed>>,
    /// Wakes the hub's task when it has nothing to read and a follower arrives.
    arrived: tokio::sync::Notify,
}

/// A log the hub reads: where it has read to, how to tell its followers, how many there are, and the doorbell of
/// its namespace.
struct Followed {
    position: String,
    notify: watch::Sender<u64>,
    followers: usize,
    bell: String,
}

impl FollowHub {
    /// A hub over `client` (its own connection for the blocking read) that rings through `conn`; starts its task.
    pub(crate) fn start(client: Client, config: Arc<Config>, conn: crate::Connection) -> Self {
        let inner = Arc::new(HubInner {
            client,
            config,
            conn,
            id: hub_id(),
            logs: Mutex::new(HashMap::new()),
            arrived: tokio::sync::Notify::new(),
        });
        tokio::spawn(read_loop(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// How many logs the hub reads (each has at least one follower).
    pub fn followed(&self) -> usize {
        self.inner.logs().len()
    }

    /// Registers a follower of stream `key` (of namespace `namespace`) that has read to `from`; rings the doorbell
    /// when the hub did not read that log yet.
    async fn subscribe(&self, namespace: &str, key: &str, from: Cursor) -> Subscription {
        let bell = crate::keys::Tenant::new(namespace).follow_doorbell(&self.inner.id);
        let (receiver, new) = {
            let mut logs = self.inner.logs();
            match logs.get_mut(key) {
                Some(followed) => {
                    followed.followers += 1;
                    (followed.notify.subscribe(), false)
                }
                None => {
                    let (notify, receiver) = watch::channel(0);
                    logs.insert(
                        key.to_owned(),
                        Followed {
                            position: from.to_string(),
                            notify,
                            followers: 1,
                            bell: bell.clone(),
                        },
                    );
                    (receiver, true)
                }
            }
        };
        if new {
            self.inner.arrived.notify_one();
            self.ring(&bell).await;
        }
        Subscription {
            hub: self.inner.clone(),
            key: key.to_owned(),
            receiver,
        }
    }

    /// Ends the hub's blocking read so that the next one includes the logs added since. A failed ring only delays
    /// the new follower until the read ends by itself (its fallback re-read covers it).
    async fn ring(&self, bell: &str) {
        let mut conn = self.inner.conn.clone();
        let ttl_ms = 60 * 60 * 1000;
        let mut pipe = redis::pipe();
        pipe.cmd("XADD")
            .arg(bell)
            .arg("MAXLEN")
            .arg(1)
            .arg("*")
            .arg("r")
            .arg(1)
            .ignore()
            .cmd("PEXPIRE")
            .arg(bell)
            .arg(ttl_ms)
            .ignore();
        let rung = tokio::time::timeout(
            self.inner.config.command_timeout,
            pipe.query_async::<()>(&mut conn),
        )
        .await;
        if !matches!(rung, Ok(Ok(()))) {
            tracing::debug!(bell, "cannot ring the follow hub's doorbell");
        }
    }
}

impl HubInner {
    fn logs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Followed>> {
        self.logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Wakes every follower (after the hub's read failed: they re-read their logs).
    fn notify_all(&self) {
        for followed in self.logs().values() {
            followed.notify.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// A follower's registration with the hub; leaving drops the log from the hub's read when it was the last one.
struct Subscription {
    hub: Arc<HubInner>,
    key: String,
    receiver: watch::Receiver<u64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut logs = self.hub.logs();
        if let Some(followed) = logs.get_mut(&self.key) {
            followed.followers = followed.followers.saturating_sub(1);
            if followed.followers == 0 {
                logs.remove(&self.key);
            }
        }
    }
}

/// A name for this process's hub, unique enough that two gateways never share a doorbell.
fn hub_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:016x}", hasher.finish())
}

/// The hub's task: blocking reads over every followed log and the doorbells of their namespaces, until the hub
/// is dropped.
async fn read_loop(hub: Weak<HubInner>) {
    let mut conn: Option<MultiplexedConnection> = None;
    // Where the hub has read each doorbell to (kept while a log of its namespace is followed).
    let mut bells: HashMap<String, String> = HashMap::new();
    let mut failures = 0u32;
    loop {
        let Some(inner) = hub.upgrade() else { return };
        let config = inner.config.clone();
        let mut keys = Vec::new();
        let mut positions = Vec::new();
        let mut followed_bells = std::collections::HashSet::new();
        for (key, followed) in inner.logs().iter() {
            keys.push(key.clone());
            positions.push(followed.position.clone());
            followed_bells.insert(followed.bell.clone());
        }
        if keys.is_empty() {
            // Nothing to read: wait for a follower (looking now and then whether the hub was dropped).
            let _ = tokio::time::timeout(config.block, inner.arrived.notified()).await;
            continue;
        }
        bells.retain(|bell, _| followed_bells.contains(bell));
        for bell in followed_bells {
            let position = bells.entry(bell.clone()).or_insert_with(|| "0-0".to_owned());
            keys.push(bell);
            positions.push(position.clone());
        }
        let connection = match &mut conn {
            Some(c) => c,
            None => match crate::store::dedicated(&inner.client, &config).await {
                Ok(c) => conn.insert(c),
                Err(err) => {
                    drop(inner);
                    failures += 1;
                    tracing::warn!(error = %err, "the follow hub cannot connect to Redis; retrying");
                    tokio::time::sleep(backoff(failures)).await;
                    continue;
                }
            },
        };
        drop(inner);
        let block_ms = u64::try_from(config.block.as_millis()).unwrap_or(u64::MAX).max(1);
        let reply: RedisResult<Option<StreamReadReply>> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(config.follow_batch.max(1))
            .arg("BLOCK")
            .arg(block_ms)
            .arg("STREAMS")
            .arg(&keys)
            .arg(&positions)
            .query_async(connection)
            .await;
        let Some(inner) = hub.upgrade() else { return };
        match reply {
            Ok(reply) => {
                failures = 0;
                let mut logs = inner.logs();
                for key in reply.map(|r| r.keys).unwrap_or_default() {
                    let Some(last) = key.ids.last() else { continue };
                    if let Some(position) = bells.get_mut(&key.key) {
                        position.clone_from(&last.id);
                    } else if let Some(followed) = logs.get_mut(&key.key) {
                        followed.position.clone_from(&last.id);
                        followed.notify.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
            }
            Err(err) => {
                conn = None;
                failures += 1;
                tracing::warn!(error = %err, "the follow hub's read failed; followers re-read their logs");
                inner.notify_all();
                drop(inner);
                tokio::time::sleep(backoff(failures)).await;
            }
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100 * u64::from(1u32 << failures.min(5))).min(Duration::from_secs(3))
}

/// Follows one session's log from a cursor: [`Follower::next`] returns every later event in order, waiting while
/// there is none.
///
/// Followers share their process's [`FollowHub`] and the store's connection. After an error the next call carries
/// on from the last event it returned, so nothing is missed or repeated; a new follower made with
/// [`Follower::cursor`] does the same. `next` is cancel-safe.
pub struct Follower {
    log: SessionLog,
    subscription: Subscription,
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
    pub(crate) async fn new(log: SessionLog, after: Cursor) -> Self {
        let subscription = log
            .store
            .follow_hub()
            .subscribe(log.keys.tenant().namespace(), &log.keys.events(), after)
            .await;
        Self {
            log,
            subscription,
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
            // Marked seen before reading: a notification of anything the read misses wakes the wait below.
            self.subscription.receiver.borrow_and_update();
            if self.fill().await? {
                continue;
            }
            let config = self.log.store.config();
            let fallback = config.block * FALLBACK_FACTOR;
            // A closed channel (the hub dropped the log) or a timeout: re-read either way.
            let _ = tokio::time::timeout(fallback, self.subscription.receiver.changed()).await;
        }
    }

    /// Reads what follows the last buffered or returned event; answers whether there was any.
    async fn fill(&mut self) -> Result<bool> {
        let config = self.log.store.config();
        let cmd = redis::cmd("XRANGE")
            .arg(self.log.keys.events())
            .arg(format!("({}", self.read_to))
            .arg("+")
            .arg("COUNT")
            .arg(config.follow_batch.max(1))
            .to_owned();
        let mut conn = self.log.store.connection();
        let reply: StreamRangeReply = self
            .log
            .store
            .run("follow", async move { cmd.query_async(&mut conn).await })
            .await?;
        let read = !reply.ids.is_empty();
        for entry in &reply.ids {
            let cursor: Cursor = entry
                .id
                .parse()
                .map_err(|_| Error::InvalidCursor(entry.id.clone()))?;
            self.read_to = cursor;
            self.buffer.extend(decode_lossy(entry));
        }
        Ok(read)
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
