//! Blocking follows of a session's log (for SSE), multiplexed over one Redis connection per process.
//!
//! A [`FollowHub`] (one per [`Store`](crate::Store), made on the first follow) runs one blocking `XREAD` over the
//! logs that have followers, on one connection of its own. It decodes each new entry once, keeps the latest ones of
//! each log in a small window ([`SharedEvent`]s, serialised once for every stream that sends them) and tells the
//! log's followers. A follower whose cursor lies in that window takes the events from it without asking Redis; one
//! behind it (a resume from an old cursor, a slow reader) reads what came after its own cursor with a plain `XRANGE`
//! on the store's shared connection until it catches up. So a process holds two Redis connections however many
//! streams it follows, a large event is read and decoded once however many streams follow its log, and every
//! follower keeps its own position: the window holds every entry between two positions of the log, so order,
//! resume from a cursor and no loss hold whichever way a follower reads.
//!
//! A new log is taken into the hub's read at once: the follower rings the hub's doorbell in its namespace (a tiny
//! stream under the tenant's prefix, so a tenant's Redis user may ring and read it,
//! [`crate::keys::Tenant::follow_doorbell`]), which ends the blocking read so that the next one includes the new
//! log. The hub reads a new log from its end, never from an old cursor: a first follower that starts at the end
//! (a stream without a cursor) gives the hub that position; one resuming from a cursor has the hub start at Redis's
//! clock when it takes the log up, and catches up itself, in bounded reads. A follower also
//! re-reads the log now and then without a notification, so a hub that failed costs latency, never events.
//!
//! What the windows hold is capped for the whole process ([`crate::Config::follow_hub_bytes`]) and, optionally, per
//! tenant ([`crate::Config::follow_hub_tenant_bytes`]); the process's budget is shared fairly: past it the hub
//! forgets the oldest events of the tenant that holds the most, largest window first ([`budget`]), so one tenant's
//! many large windows never trim another's. A follower that still needed forgotten events reads them from the log,
//! at most [`crate::Config::follow_catch_up_reads`] reads at once per tenant ([`catch_up`]).

mod budget;
mod catch_up;

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, OnceLock, Weak},
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

/// The most bytes of recent entries the hub keeps per followed log (at least the newest entry is kept).
const WINDOW_BYTES: usize = 16 << 20;

/// About how many bytes of entries a follower behind the window reads at once (at least one entry).
const CATCH_UP_BYTES: usize = 4 << 20;

/// How many entries a follower's first read of the log asks for at most, before it knows how large they are (fewer
/// when [`CATCH_UP_BYTES`] holds fewer of the largest events: see [`first_catch_up`]).
const FIRST_CATCH_UP: usize = 16;

/// How many bytes of memory the hub counts per byte of an entry it keeps: the decoded event, and its JSON once a
/// stream has made it.
const HELD_PER_ENTRY_BYTE: usize = 2;

/// An event of a followed log, decoded once and serialised at most once, however many followers send it.
#[derive(Debug)]
pub struct SharedEvent {
    stored: StoredEvent,
    json: OnceLock<String>,
}

impl SharedEvent {
    fn new(stored: StoredEvent) -> Arc<Self> {
        Arc::new(Self {
            stored,
            json: OnceLock::new(),
        })
    }

    /// The event and its cursor.
    pub fn stored(&self) -> &StoredEvent {
        &self.stored
    }

    /// The event as the API shows it, in JSON (made on first use, then shared).
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(&self.stored.event).unwrap_or_else(|_| "{}".to_owned()))
    }
}

/// What a [`FollowHub`] holds and has done since it started (for metrics and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FollowHubStats {
    /// About how many bytes of memory the windows hold ([`FollowHub::held_bytes`]).
    pub held_bytes: usize,
    /// Bytes of entries forgotten because their tenant held more than [`crate::Config::follow_hub_tenant_bytes`].
    pub forgotten_tenant_cap_bytes: u64,
    /// Bytes of entries forgotten because all tenants together held more than [`crate::Config::follow_hub_bytes`]
    /// (always from the tenant holding the most).
    pub forgotten_process_budget_bytes: u64,
    /// Reads followers made of their logs themselves, behind the hub's windows.
    pub catch_up_reads: u64,
    /// Such reads in flight now, all tenants together.
    pub catch_up_in_flight: usize,
    /// The most such reads one tenant had in flight at once (at most [`crate::Config::follow_catch_up_reads`]).
    pub catch_up_peak_per_tenant: usize,
}

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
    /// About how many bytes the windows of every log hold together (see [`HELD_PER_ENTRY_BYTE`]).
    held: std::sync::atomic::AtomicUsize,
    /// Bytes of entries forgotten to keep within a tenant's cap.
    forgotten_tenant_cap: std::sync::atomic::AtomicU64,
    /// Bytes of entries forgotten to keep within the process's budget.
    forgotten_process_budget: std::sync::atomic::AtomicU64,
    /// Followers' own reads of the log, per tenant.
    catch_ups: catch_up::CatchUps,
    /// A connection of its own for followers behind the window, so that their reads (possibly large) never queue
    /// ahead of the shared connection's commands (another tenant's appends, say). Made on first use.
    catch_up: tokio::sync::Mutex<Option<MultiplexedConnection>>,
    /// Wakes the hub's task when it has nothing to read and a follower arrives.
    arrived: tokio::sync::Notify,
}

/// A log the hub reads: where it has read to, its window of recent events, how to tell its followers, how many
/// there are, and the doorbell of its namespace.
struct Followed {
    /// Where the hub has read to; `None` until the hub takes the log up at Redis's clock (or the first follower's
    /// cursor when that is later).
    position: Option<String>,
    /// The first follower's cursor.
    first: Cursor,
    window: Window,
    notify: watch::Sender<u64>,
    followers: usize,
    /// The namespace of the log: whose share of the budget its window takes.
    tenant: String,
    bell: String,
}

/// Every event of a log after `from` through `to` (an entry that is not an event is left out, as a read of the log
/// would), newest last.
struct Window {
    from: Cursor,
    to: Cursor,
    /// Each event with its entry's size.
    events: VecDeque<(Arc<SharedEvent>, usize)>,
    bytes: usize,
    /// Set while the hub cannot read: followers then read the log themselves (and see why it fails).
    stale: bool,
}

impl Window {
    fn new(at: Cursor) -> Self {
        Self {
            from: at,
            to: at,
            events: VecDeque::new(),
            bytes: 0,
            stale: false,
        }
    }

    /// Forgets the events and serves no follower until the hub reads the log again.
    fn spoil(&mut self) {
        *self = Self::new(self.to);
        self.stale = true;
    }

    /// Adds the entries that follow `to` in the log, then drops the oldest beyond the window's size.
    fn extend(&mut self, entries: Vec<Decoded>, max_events: usize) {
        for (cursor, event) in entries {
            self.to = cursor;
            if let Some((event, size)) = event {
                self.bytes += size;
                self.events.push_back((event, size));
            }
        }
        while self.events.len() > max_events.max(1) || (self.bytes > WINDOW_BYTES && self.events.len() > 1) {
            if self.forget_oldest().is_none() {
                break;
            }
        }
    }

    /// Drops the oldest event (a follower that still needs it reads it from the log); answers its size.
    fn forget_oldest(&mut self) -> Option<usize> {
        let (old, size) = self.events.pop_front()?;
        self.from = old.stored.cursor;
        self.bytes = self.bytes.saturating_sub(size);
        Some(size)
    }

    /// The events after `after`, and the position they reach, when the window covers `after`.
    fn after(&self, after: Cursor) -> Option<(Vec<Arc<SharedEvent>>, Cursor)> {
        if self.stale || after < self.from || after > self.to {
            return None;
        }
        let start = self.events.partition_point(|(e, _)| e.stored.cursor <= after);
        let events = self.events.range(start..).map(|(e, _)| e.clone()).collect();
        Some((events, self.to))
    }
}

/// An entry as the hub read it: its position, and the event with its size (none when it is not an event).
type Decoded = (Cursor, Option<(Arc<SharedEvent>, usize)>);

/// Decodes the entries of a log's read (done before the hub takes its lock, so followers are not held up).
fn decode_entries(entries: &[redis::streams::StreamId]) -> Vec<Decoded> {
    entries
        .iter()
        // An id that is no cursor is no event either (a read of the log skips it too).
        .filter_map(|entry| {
            let cursor = entry.id.parse::<Cursor>().ok()?;
            let event = decode_lossy(entry).map(|e| (SharedEvent::new(e), entry_bytes(entry)));
            Some((cursor, event))
        })
        .collect()
}

/// The size of an entry's fields, as the window counts it.
fn entry_bytes(entry: &redis::streams::StreamId) -> usize {
    entry
        .map
        .values()
        .map(|v| match v {
            redis::Value::BulkString(b) => b.len(),
            _ => 0,
        })
        .sum()
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
            held: std::sync::atomic::AtomicUsize::new(0),
            forgotten_tenant_cap: Default::default(),
            forgotten_process_budget: Default::default(),
            catch_ups: catch_up::CatchUps::default(),
            catch_up: tokio::sync::Mutex::new(None),
            arrived: tokio::sync::Notify::new(),
        });
        tokio::spawn(read_loop(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// How many logs the hub reads (each has at least one follower).
    pub fn followed(&self) -> usize {
        self.inner.logs().len()
    }

    /// About how many bytes of memory the hub's windows hold, all logs together: at most
    /// [`crate::Config::follow_hub_bytes`] once the hub has taken in its latest read.
    pub fn held_bytes(&self) -> usize {
        self.inner.held.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the hub holds and has done so far.
    pub fn stats(&self) -> FollowHubStats {
        use std::sync::atomic::Ordering::Relaxed;
        let inner = &self.inner;
        FollowHubStats {
            held_bytes: self.held_bytes(),
            forgotten_tenant_cap_bytes: inner.forgotten_tenant_cap.load(Relaxed),
            forgotten_process_budget_bytes: inner.forgotten_process_budget.load(Relaxed),
            catch_up_reads: inner.catch_ups.reads.load(Relaxed),
            catch_up_in_flight: inner.catch_ups.in_flight.load(Relaxed),
            catch_up_peak_per_tenant: inner.catch_ups.peak.load(Relaxed),
        }
    }

    /// Registers a follower of stream `key` (of namespace `namespace`) that has read to `from` (the log's end when
    /// `at_end`); rings the doorbell when the hub did not read that log yet.
    async fn subscribe(&self, namespace: &str, key: &str, from: Cursor, at_end: bool) -> Subscription {
        let bell = crate::keys::Tenant::new(namespace).follow_doorbell(&self.inner.id);
        let reads = self
            .inner
            .catch_ups
            .join(namespace, self.inner.config.follow_catch_up_reads);
        let (receiver, new) = {
            let mut logs = self.inner.logs();
            match logs.get_mut(key) {
                Some(followed) => {
                    followed.followers += 1;
                    (followed.notify.subscribe(), false)
                }
                None => {
                    let (notify, receiver) = watch::channel(0);
                    // From the log's end the hub reads at once; from a cursor, the window serves no one until the
                    // hub takes the log up.
                    let mut window = Window::new(from);
                    window.stale = !at_end;
                    logs.insert(
                        key.to_owned(),
                        Followed {
                            position: at_end.then(|| from.to_string()),
                            first: from,
                            window,
                            notify,
                            followers: 1,
                            tenant: namespace.to_owned(),
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
            tenant: namespace.to_owned(),
            reads,
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

    /// The catch-up connection, connecting when there is none.
    async fn catch_up(&self) -> Result<MultiplexedConnection> {
        let mut conn = self.catch_up.lock().await;
        if let Some(conn) = &*conn {
            return Ok(conn.clone());
        }
        let made = crate::store::dedicated(&self.client, &self.config).await?;
        Ok(conn.insert(made).clone())
    }

    /// Wakes every follower after the hub's read failed: they read their logs themselves until it reads again.
    fn notify_all(&self) {
        for followed in self.logs().values_mut() {
            followed.window.spoil();
            followed.notify.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// A follower's registration with the hub; leaving drops the log from the hub's read when it was the last one.
struct Subscription {
    hub: Arc<HubInner>,
    key: String,
    tenant: String,
    /// The tenant's catch-up permits.
    reads: Arc<catch_up::TenantReads>,
    receiver: watch::Receiver<u64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.hub.catch_ups.leave(&self.tenant);
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
        if let Err(err) = take_up_new_logs(&inner, connection).await {
            conn = None;
            failures += 1;
            tracing::warn!(error = %err, "the follow hub cannot read Redis's clock; retrying");
            drop(inner);
            tokio::time::sleep(backoff(failures)).await;
            continue;
        }
        let mut keys = Vec::new();
        let mut positions = Vec::new();
        let mut followed_bells = std::collections::HashSet::new();
        let mut arrived_meanwhile = false;
        for (key, followed) in inner.logs().iter() {
            let Some(position) = &followed.position else {
                arrived_meanwhile = true;
                continue;
            };
            keys.push(key.clone());
            positions.push(position.clone());
            followed_bells.insert(followed.bell.clone());
        }
        if arrived_meanwhile {
            continue;
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
                let read_from: HashMap<&String, &String> = keys.iter().zip(&positions).collect();
                let read: Vec<_> = reply
                    .map(|r| r.keys)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|key| {
                        let last = key.ids.last()?.id.clone();
                        let decoded = (!bells.contains_key(&key.key)).then(|| decode_entries(&key.ids));
                        Some((key.key, last, decoded))
                    })
                    .collect();
                let mut logs = inner.logs();
                for (key, from) in &read_from {
                    if let Some(followed) = logs.get_mut(*key)
                        && followed.position.as_ref() == Some(*from)
                    {
                        followed.window.stale = false;
                    }
                }
                for (key, last, decoded) in read {
                    if let Some(position) = bells.get_mut(&key) {
                        position.clone_from(&last);
                    } else if let Some(followed) = logs.get_mut(&key) {
                        // A log left and followed again meanwhile may start elsewhere: its window takes only
                        // entries that follow its own position (the next read brings them).
                        if followed.position.is_some()
                            && read_from.get(&key).copied() == followed.position.as_ref()
                        {
                            followed
                                .window
                                .extend(decoded.unwrap_or_default(), config.follow_batch);
                            followed.position = Some(last);
                        }
                        followed.notify.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
                let (held, forgotten) = budget::keep_within(&mut logs, budget(&config));
                drop(logs);
                inner.held.store(held, std::sync::atomic::Ordering::Relaxed);
                let add = |total: &std::sync::atomic::AtomicU64, bytes: usize| {
                    total.fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
                };
                add(&inner.forgotten_tenant_cap, forgotten.tenant_cap);
                add(&inner.forgotten_process_budget, forgotten.process_budget);
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

/// Takes up the logs followed since the last read at their end: Redis's clock now (less a millisecond, so that
/// nothing appended from now on is missed), or their first follower's cursor when that is later. Their followers
/// are told, so that they read what came before that point from the log themselves.
async fn take_up_new_logs(hub: &HubInner, conn: &mut MultiplexedConnection) -> RedisResult<()> {
    if hub.logs().values().all(|f| f.position.is_some()) {
        return Ok(());
    }
    let (seconds, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await?;
    let now_ms = seconds.saturating_mul(1000).saturating_add(micros / 1000);
    let end = Cursor::new(now_ms.saturating_sub(1), u64::MAX);
    for followed in hub.logs().values_mut() {
        if followed.position.is_none() {
            let at = end.max(followed.first);
            followed.position = Some(at.to_string());
            followed.window = Window::new(at);
            followed.notify.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
    Ok(())
}

/// The hub's budgets as `config` sets them.
fn budget(config: &Config) -> budget::Budget {
    budget::Budget {
        process: config.follow_hub_bytes,
        tenant: match config.follow_hub_tenant_bytes {
            0 => usize::MAX,
            bytes => bytes,
        },
    }
}

/// How many entries a follower's first read asks for: [`FIRST_CATCH_UP`], or fewer when that many of the largest
/// events the log takes would pass [`CATCH_UP_BYTES`] (at least one).
fn first_catch_up(config: &Config) -> usize {
    (CATCH_UP_BYTES / config.max_event_bytes.max(1)).clamp(1, FIRST_CATCH_UP)
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
    buffer: VecDeque<Arc<SharedEvent>>,
    /// How many entries the next read of the log asks for.
    batch: usize,
    /// How many times this follower read the log itself (behind the hub's window).
    catch_up_reads: u64,
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
    /// A follower of `log` after `after`, which is the log's end when `at_end` (a follow from now).
    pub(crate) async fn new(log: SessionLog, after: Cursor, at_end: bool) -> Self {
        let subscription = log
            .store
            .follow_hub()
            .subscribe(log.keys.tenant().namespace(), &log.keys.events(), after, at_end)
            .await;
        Self {
            subscription,
            cursor: after,
            read_to: after,
            buffer: VecDeque::new(),
            batch: first_catch_up(log.store.config()),
            log,
            catch_up_reads: 0,
        }
    }

    /// How many times this follower read its log itself because the hub's window did not hold what it needed
    /// (each such read waited for one of its tenant's catch-up permits).
    pub fn catch_up_reads(&self) -> u64 {
        self.catch_up_reads
    }

    /// The cursor of the last event returned (or the starting point): resume from here.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// The next event, waiting for it as long as it takes.
    pub async fn next(&mut self) -> Result<StoredEvent> {
        self.next_shared().await.map(|e| e.stored.clone())
    }

    /// The next event as the hub shares it with every follower of the log (no copy), waiting as long as it takes.
    pub async fn next_shared(&mut self) -> Result<Arc<SharedEvent>> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.cursor = event.stored.cursor;
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

    /// Reads what follows the last buffered or returned event (from the hub's window when it covers the cursor,
    /// else from the log); answers whether there was any.
    async fn fill(&mut self) -> Result<bool> {
        if let Some(read) = self.fill_from_window() {
            return Ok(read);
        }
        let hub = self.subscription.hub.clone();
        let reads = self.subscription.reads.clone();
        let _permit = hub.catch_ups.permit(&reads).await;
        // The hub may have read this far while the follower waited for its permit.
        if let Some(read) = self.fill_from_window() {
            return Ok(read);
        }
        self.catch_up_reads += 1;
        let config = self.log.store.config();
        let count = self.batch.clamp(1, config.follow_batch.max(1));
        let cmd = redis::cmd("XRANGE")
            .arg(self.log.keys.events())
            .arg(format!("({}", self.read_to))
            .arg("+")
            .arg("COUNT")
            .arg(count)
            .to_owned();
        let mut conn = hub.catch_up().await?;
        let reply: Result<StreamRangeReply> = self
            .log
            .store
            .run("follow", async move { cmd.query_async(&mut conn).await })
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(err) => {
                // Connect afresh next time (a command timed out on it, or the connection broke).
                *hub.catch_up.lock().await = None;
                return Err(err);
            }
        };
        let read = !reply.ids.is_empty();
        // The next read's size: about CATCH_UP_BYTES of entries as large as the largest of these, so that a
        // follower behind a log of large events holds a few of them, not a batch.
        if let Some(largest) = reply.ids.iter().map(entry_bytes).max() {
            self.batch = (CATCH_UP_BYTES / largest.max(1)).clamp(1, config.follow_batch.max(1));
        }
        for entry in &reply.ids {
            let cursor: Cursor = entry
                .id
                .parse()
                .map_err(|_| Error::InvalidCursor(entry.id.clone()))?;
            self.read_to = cursor;
            self.buffer.extend(decode_lossy(entry).map(SharedEvent::new));
        }
        Ok(read)
    }

    /// Takes what follows the follower's position from the hub's window when the window covers it; answers whether
    /// there was anything, or none when the follower must read the log itself.
    fn fill_from_window(&mut self) -> Option<bool> {
        let (events, to) = {
            let logs = self.subscription.hub.logs();
            logs.get(&self.subscription.key)
                .and_then(|followed| followed.window.after(self.read_to))
        }?;
        self.read_to = to;
        let read = !events.is_empty();
        self.buffer.extend(events);
        Some(read)
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
