//! The Sessions of the namespace a harness serves, read from one watch instead of the API server.
//!
//! A harness replica serves one namespace, so one watch of its Sessions feeds a cache ([`SessionCache`]) that every
//! call reads: waiting for a sandbox wakes on the status change the operator writes (no timer), and the file
//! resources before a tool call come from the cached spec. The API server is read only when the cache cannot
//! answer ([`Sessions`]): the watch is down (then a waiter re-reads every [`DOWN_POLL`], with a log line and the
//! `session_api_reads_total` metric), the session is not cached yet, or the cached spec is older than one the
//! gateway already answered for (the generation it recorded in Redis, see `docs/redis.md`).
//!
//! Memory: one copy of each Session of the namespace without its managed fields (a few KiB each), and one
//! `watch` channel per session being waited on, removed with its last waiter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use corral_api::Session;
use futures::StreamExt as _;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, ResourceExt as _};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, SessionReadLabels};

/// How often a waiter re-reads the Session from the API server while the watch is down.
pub const DOWN_POLL: Duration = Duration::from_secs(1);

/// How long a waiter trusts a live watch before it looks at the cache again without being woken (a safety net:
/// the watch wakes it on every change).
pub const LIVE_RECHECK: Duration = Duration::from_secs(5);

/// After this many [`LIVE_RECHECK`]s in a row without a change, a waiter reads the Session from the API server once
/// ([`ReadReason::WatchQuiet`]), in case the watch stalled without failing.
pub const QUIET_RECHECKS: u32 = 3;

/// Why the API server was read instead of the cache (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadReason {
    /// No watch feeds a cache (a harness built without one).
    NoWatch,
    /// The watch is down or has not listed the namespace yet.
    WatchDown,
    /// The session is not in the cache (created an instant ago).
    NotCached,
    /// The cached spec is older than a change the gateway already answered for.
    CacheBehind,
    /// A waiter heard nothing from a live watch for [`QUIET_RECHECKS`] rechecks: the watch may have stalled on a
    /// half-open connection while still counted as live.
    WatchQuiet,
}

impl ReadReason {
    fn label(self) -> &'static str {
        match self {
            Self::NoWatch => "no_watch",
            Self::WatchDown => "watch_down",
            Self::NotCached => "not_cached",
            Self::CacheBehind => "cache_behind",
            Self::WatchQuiet => "watch_quiet",
        }
    }
}

/// The Sessions of one namespace as its watch last reported them, with a wake-up per waited-on session.
pub struct SessionCache {
    namespace: String,
    reader: Store<Session>,
    writer: Mutex<Writer<Session>>,
    /// A counter per session somebody waits on, bumped on each change of that session.
    waiters: Mutex<HashMap<String, watch::Sender<u64>>>,
    /// Whether the watch has listed the namespace and has not failed since.
    live: AtomicBool,
    up: Gauge,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("namespace", &self.namespace)
            .field("live", &self.is_live())
            .finish_non_exhaustive()
    }
}

impl SessionCache {
    /// An empty cache of `namespace`'s Sessions, not live until fed an `InitDone` ([`Self::apply`]).
    pub fn new(namespace: &str, metrics: &Metrics) -> Arc<Self> {
        let (reader, writer) = reflector::store();
        Arc::new(Self {
            namespace: namespace.to_owned(),
            reader,
            writer: Mutex::new(writer),
            waiters: Mutex::default(),
            live: AtomicBool::new(false),
            up: metrics.session_watch_up.clone(),
        })
    }

    /// Watches the namespace's Sessions with `client` until `shutdown`, feeding the cache.
    pub fn spawn_watch(self: &Arc<Self>, client: Client, shutdown: CancellationToken) {
        let cache = self.clone();
        let api: Api<Session> = Api::namespaced(client, &self.namespace);
        tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(|session: &mut Session| {
                    // Never read here; most of an object's size.
                    session.managed_fields_mut().clear();
                    session
                        .annotations_mut()
                        .remove("kubectl.kubernetes.io/last-applied-configuration");
                })
                .boxed();
            loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => break,
                    event = events.next() => event,
                };
                match event {
                    Some(Ok(event)) => cache.apply(&event),
                    Some(Err(err)) => cache.failed(&err),
                    None => break,
                }
            }
            cache.set_live(false);
        });
    }

    /// Takes one event of the watch: the cache changes, and the waiters of the changed session (all waiters, after a
    /// new listing) are woken.
    pub fn apply(&self, event: &watcher::Event<Session>) {
        self.writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply_watcher_event(event);
        match event {
            watcher::Event::Apply(session) | watcher::Event::Delete(session) => {
                // After a transient failure the watcher resumes from the last resourceVersion it saw (a relist comes
                // only after a 410), so the next change it reports means the cache follows again.
                if !self.is_live() {
                    self.set_live(true);
                }
                self.wake(&session.name_any());
            }
            watcher::Event::InitDone => {
                if !self.is_live() {
                    tracing::info!(namespace = %self.namespace, "watching the namespace's Sessions");
                }
                self.set_live(true);
                self.wake_all();
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    /// The watch failed: until it lists the namespace again, readers go to the API server.
    pub fn failed(&self, err: &dyn std::fmt::Display) {
        if self.is_live() {
            tracing::warn!(namespace = %self.namespace, error = %err,
                "the Session watch failed; Sessions are read from the API server until it recovers");
        }
        self.set_live(false);
        self.wake_all();
    }

    /// Whether the cache follows the API server now.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
        self.up.set(i64::from(live));
    }

    /// The session as last reported, if the watch is live and has seen it.
    pub fn get(&self, session: &str) -> Option<Arc<Session>> {
        self.reader.get(&ObjectRef::new(session).within(&self.namespace))
    }

    /// A handle that wakes on each change of `session` from now on.
    pub fn subscribe(self: &Arc<Self>, session: &str) -> Changes {
        let receiver = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(session.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Changes {
            cache: Some(self.clone()),
            session: session.to_owned(),
            receiver: Some(receiver),
        }
    }

    /// How many sessions have waiters now.
    pub fn waited_on(&self) -> usize {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    fn wake(&self, session: &str) {
        if let Some(sender) = self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(session)
        {
            sender.send_modify(|n| *n += 1);
        }
    }

    fn wake_all(&self) {
        for sender in self
            .waiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            sender.send_modify(|n| *n += 1);
        }
    }

    /// Drops a waiter's `receiver`, and the session's channel with it when that was the last one. The receiver is
    /// dropped under the lock that subscribing takes too, so two waiters leaving at once cannot both count the other
    /// and leave the channel behind.
    fn leave(&self, session: &str, receiver: Option<watch::Receiver<u64>>) {
        let mut waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        drop(receiver);
        if waiters.get(session).is_some_and(|s| s.receiver_count() == 0) {
            waiters.remove(session);
        }
    }
}

/// Wakes its holder when a session changes (or, without a live watch, when it is time to read it again).
#[derive(Debug)]
pub struct Changes {
    cache: Option<Arc<SessionCache>>,
    session: String,
    receiver: Option<watch::Receiver<u64>>,
}

impl Changes {
    /// Returns after the session changed since the last call (at once if it already did), or when it is time to
    /// read it again anyway: [`DOWN_POLL`] while no watch is live, [`LIVE_RECHECK`] while one is. True when a change
    /// woke it.
    pub async fn next(&mut self) -> bool {
        let live = self.cache.as_ref().is_some_and(|c| c.is_live());
        let after = if live { LIVE_RECHECK } else { DOWN_POLL };
        match &mut self.receiver {
            Some(receiver) => {
                let changed = tokio::time::timeout(after, receiver.changed()).await.is_ok();
                receiver.borrow_and_update();
                changed
            }
            None => {
                tokio::time::sleep(after).await;
                false
            }
        }
    }
}

impl Drop for Changes {
    fn drop(&mut self) {
        if let Some(cache) = &self.cache {
            cache.leave(&self.session, self.receiver.take());
        }
    }
}

/// Reads Sessions from the cache when it can answer, else from the API server (counted by purpose and reason).
#[derive(Clone)]
pub struct Sessions {
    client: Client,
    cache: Option<Arc<SessionCache>>,
    reads: Family<SessionReadLabels, Counter>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Sessions {
    /// Reads through `cache` (of the namespace this harness serves), or always from the API server without one.
    pub fn new(client: Client, cache: Option<Arc<SessionCache>>, metrics: &Metrics) -> Self {
        Self {
            client,
            cache,
            reads: metrics.session_api_reads.clone(),
        }
    }

    /// The cache, if it serves `namespace`.
    fn cache_of(&self, namespace: &str) -> Option<&Arc<SessionCache>> {
        self.cache.as_ref().filter(|c| c.namespace == namespace)
    }

    /// The session: cached when the watch is live and has it, else read from the API server for `purpose`.
    pub async fn read(
        &self,
        namespace: &str,
        session: &str,
        purpose: &'static str,
    ) -> Result<Arc<Session>, String> {
        self.read_at_least(namespace, session, 0, purpose).await
    }

    /// The session with a spec at least as new as `generation`: cached when the cache holds one that new, else read
    /// from the API server for `purpose`.
    pub async fn read_at_least(
        &self,
        namespace: &str,
        session: &str,
        generation: i64,
        purpose: &'static str,
    ) -> Result<Arc<Session>, String> {
        match self.cached_at_least(namespace, session, generation) {
            Ok(cached) => Ok(cached),
            Err(reason) => self.read_from_api(namespace, session, purpose, reason).await,
        }
    }

    /// Like [`Self::read_at_least`], but `None` when the API server says the session does not exist (a missing
    /// session is never answered from the cache: it may have been created an instant ago).
    pub async fn find_at_least(
        &self,
        namespace: &str,
        session: &str,
        generation: i64,
        purpose: &'static str,
    ) -> Result<Option<Arc<Session>>, kube::Error> {
        match self.cached_at_least(namespace, session, generation) {
            Ok(cached) => Ok(Some(cached)),
            Err(reason) => {
                self.count(purpose, reason);
                let sessions: Api<Session> = Api::namespaced(self.client.clone(), namespace);
                Ok(sessions.get_opt(session).await?.map(Arc::new))
            }
        }
    }

    /// The cached session when the cache can answer with a spec at least as new as `generation`, else why not.
    fn cached_at_least(
        &self,
        namespace: &str,
        session: &str,
        generation: i64,
    ) -> Result<Arc<Session>, ReadReason> {
        let Some(cache) = self.cache_of(namespace) else {
            return Err(ReadReason::NoWatch);
        };
        if !cache.is_live() {
            return Err(ReadReason::WatchDown);
        }
        match cache.get(session) {
            None => Err(ReadReason::NotCached),
            Some(cached) if cached.metadata.generation.unwrap_or_default() < generation => {
                Err(ReadReason::CacheBehind)
            }
            Some(cached) => Ok(cached),
        }
    }

    fn count(&self, purpose: &'static str, reason: ReadReason) {
        self.reads
            .get_or_create(&SessionReadLabels {
                purpose,
                reason: reason.label(),
            })
            .inc();
    }

    /// The session from the API server, counted for `purpose` and `reason`.
    pub async fn read_from_api(
        &self,
        namespace: &str,
        session: &str,
        purpose: &'static str,
        reason: ReadReason,
    ) -> Result<Arc<Session>, String> {
        self.count(purpose, reason);
        let sessions: Api<Session> = Api::namespaced(self.client.clone(), namespace);
        sessions
            .get(session)
            .await
            .map(Arc::new)
            .map_err(|e| format!("cannot read the session: {e}"))
    }

    /// Wakes on each change of the session from now on (or polls, without a watch of its namespace).
    pub fn changes(&self, namespace: &str, session: &str) -> Changes {
        match self.cache_of(namespace) {
            Some(cache) => cache.subscribe(session),
            None => Changes {
                cache: None,
                session: session.to_owned(),
                receiver: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(name: &str, generation: i64, phase: &str) -> Session {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "corral.dev/v1alpha1", "kind": "Session",
            "metadata": { "name": name, "namespace": "team", "generation": generation },
            "spec": { "agent": { "name": "a" }, "environmentRef": { "name": "e" } },
            "status": { "sandbox": { "phase": phase } }
        }))
        .unwrap()
    }

    /// A client whose API server never answers: every read that reaches it fails (and is counted).
    fn unreachable_client() -> Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        Client::try_from(config).unwrap()
    }

    fn reads(metrics: &Metrics, reason: &'static str) -> u64 {
        metrics
            .session_api_reads
            .get_or_create(&SessionReadLabels {
                purpose: "test",
                reason,
            })
            .get()
    }

    fn listed(cache: &SessionCache, sessions: &[Session]) {
        cache.apply(&watcher::Event::Init);
        for s in sessions {
            cache.apply(&watcher::Event::InitApply(s.clone()));
        }
        cache.apply(&watcher::Event::InitDone);
    }

    #[tokio::test]
    async fn a_live_cache_answers_without_the_api_server() {
        let metrics = Metrics::default();
        let cache = SessionCache::new("team", &metrics);
        let sessions = Sessions::new(unreachable_client(), Some(cache.clone()), &metrics);
        listed(&cache, &[session("s1", 1, "Provisioning")]);
        let read = sessions.read("team", "s1", "test").await.unwrap();
        assert_eq!(read.metadata.generation, Some(1));
        assert_eq!(metrics.session_watch_up.get(), 1);
        for reason in ["no_watch", "watch_down", "not_cached", "cache_behind"] {
            assert_eq!(reads(&metrics, reason), 0, "{reason}");
        }
    }

    #[tokio::test]
    async fn the_api_server_is_read_when_the_cache_cannot_answer_and_each_read_is_counted() {
        let metrics = Metrics::default();
        let cache = SessionCache::new("team", &metrics);
        let sessions = Sessions::new(unreachable_client(), Some(cache.clone()), &metrics);
        // Not listed yet: the watch is not live.
        assert!(sessions.read("team", "s1", "test").await.is_err());
        assert_eq!(reads(&metrics, "watch_down"), 1);
        listed(&cache, &[session("s1", 1, "Provisioning")]);
        // A session the watch has not reported.
        assert!(sessions.read("team", "s2", "test").await.is_err());
        assert_eq!(reads(&metrics, "not_cached"), 1);
        // A spec older than the gateway answered for.
        assert!(sessions.read_at_least("team", "s1", 2, "test").await.is_err());
        assert_eq!(reads(&metrics, "cache_behind"), 1);
        cache.apply(&watcher::Event::Apply(session("s1", 2, "Provisioning")));
        assert!(sessions.read_at_least("team", "s1", 2, "test").await.is_ok());
        assert_eq!(reads(&metrics, "cache_behind"), 1, "the watch caught up");
        // Another namespace is not watched here.
        assert!(sessions.read("other", "s1", "test").await.is_err());
        assert_eq!(reads(&metrics, "no_watch"), 1);
        // A failed watch sends reads to the API server until it reports again (it resumes where it stopped).
        cache.failed(&"connection reset");
        assert_eq!(metrics.session_watch_up.get(), 0);
        assert!(sessions.read("team", "s1", "test").await.is_err());
        assert_eq!(reads(&metrics, "watch_down"), 2);
        cache.apply(&watcher::Event::Apply(session("s1", 3, "Ready")));
        assert_eq!(
            metrics.session_watch_up.get(),
            1,
            "the resumed watch is live again"
        );
        assert!(sessions.read_at_least("team", "s1", 3, "test").await.is_ok());
        assert_eq!(reads(&metrics, "watch_down"), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_wakes_on_its_sessions_change_not_on_a_timer_and_leaves_nothing_behind() {
        let metrics = Metrics::default();
        let cache = SessionCache::new("team", &metrics);
        listed(
            &cache,
            &[session("s1", 1, "Provisioning"), session("s2", 1, "Provisioning")],
        );
        let mut changes = cache.subscribe("s1");
        let started = tokio::time::Instant::now();
        let waiter = tokio::spawn(async move {
            changes.next().await;
            changes
        });
        // Another session's change does not wake it.
        cache.apply(&watcher::Event::Apply(session("s2", 1, "Ready")));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        cache.apply(&watcher::Event::Apply(session("s1", 1, "Ready")));
        let changes = waiter.await.unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(1),
            "woken by the change, not by a timer: {:?}",
            started.elapsed()
        );
        assert_eq!(
            cache
                .get("s1")
                .unwrap()
                .status
                .as_ref()
                .unwrap()
                .sandbox
                .as_ref()
                .unwrap()
                .phase,
            Some(corral_api::session::SandboxPhase::Ready)
        );
        assert_eq!(cache.waited_on(), 1);
        drop(changes);
        assert_eq!(cache.waited_on(), 0, "no channel left after the last waiter");
    }

    #[tokio::test(start_paused = true)]
    async fn a_change_between_reading_and_waiting_is_not_missed() {
        let metrics = Metrics::default();
        let cache = SessionCache::new("team", &metrics);
        listed(&cache, &[session("s1", 1, "Provisioning")]);
        let mut changes = cache.subscribe("s1");
        // The change lands after the subscriber read the cache and before it waits.
        cache.apply(&watcher::Event::Apply(session("s1", 1, "Ready")));
        let started = tokio::time::Instant::now();
        changes.next().await;
        assert!(started.elapsed() < Duration::from_millis(1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_tells_a_change_from_a_quiet_recheck() {
        let metrics = Metrics::default();
        let cache = SessionCache::new("team", &metrics);
        listed(&cache, &[session("s1", 1, "Provisioning")]);
        let mut changes = cache.subscribe("s1");
        let started = tokio::time::Instant::now();
        assert!(!changes.next().await, "nothing changed: a recheck");
        assert_eq!(started.elapsed(), LIVE_RECHECK);
        cache.apply(&watcher::Event::Apply(session("s1", 1, "Ready")));
        assert!(changes.next().await, "woken by the change");
    }

    #[tokio::test]
    async fn two_waiters_leaving_at_once_leave_no_channel_behind() {
        let metrics = Metrics::default();
        let cache = SessionCache::new("team", &metrics);
        for _ in 0..200 {
            let (a, b) = (cache.subscribe("s1"), cache.subscribe("s1"));
            let (one, two) = (
                std::thread::spawn(move || drop(a)),
                std::thread::spawn(move || drop(b)),
            );
            one.join().unwrap();
            two.join().unwrap();
            assert_eq!(cache.waited_on(), 0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_live_watch_a_waiter_polls_slowly() {
        let metrics = Metrics::default();
        let cache = SessionCache::new("team", &metrics);
        let mut changes = cache.subscribe("s1");
        let started = tokio::time::Instant::now();
        changes.next().await;
        assert_eq!(started.elapsed(), DOWN_POLL);
        listed(&cache, &[]);
        changes.next().await; // the listing woke it
        let started = tokio::time::Instant::now();
        changes.next().await;
        assert_eq!(started.elapsed(), LIVE_RECHECK);
    }
}
