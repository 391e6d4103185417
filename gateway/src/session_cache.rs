//! Which Sessions exist, from one watch instead of the API server: the hot path (a send, an event list) checks a
//! session here without a round trip to the API server.
//!
//! One metadata-only watch of every namespace's Sessions feeds a reflector store (names, uids, deletion
//! timestamps: no specs, no status). A lookup answers from it when the watch is live and has seen the session; the
//! API server is read instead (counted in `corral_gateway_session_api_reads_total` by reason) when the watch has
//! not listed yet or failed since ([`ReadReason::WatchDown`]), the session is not cached (created an instant ago,
//! or already gone: [`ReadReason::NotCached`]), or this replica deleted it and its watch has not said so yet
//! ([`ReadReason::Forgotten`]). A session being deleted (a finalizer still runs) is gone for the API, as in
//! [`crate::routes::objects::find`].
//!
//! Another replica's delete reaches this cache with the watch's lag (milliseconds): a send in that window is
//! accepted, as it would be had it arrived just before the delete.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use corral_api::Session;
use futures::StreamExt as _;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::error::ApiError;
use crate::routes::objects;

/// How long a session this replica deleted is looked up on the API server, at most (its watch says so sooner).
const FORGET_FOR: Duration = Duration::from_secs(300);

/// What the watch keeps of a Session.
type Meta = PartialObjectMeta<Session>;

/// Why the API server was read instead of the cache (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadReason {
    /// The watch has not listed the Sessions yet, or failed and has not reported anything since.
    WatchDown,
    /// The watch has not reported the session (created an instant ago, or never existed).
    NotCached,
    /// This replica deleted the session and its watch has not reported it yet.
    Forgotten,
}

impl ReadReason {
    fn label(self) -> &'static str {
        match self {
            Self::WatchDown => "watch_down",
            Self::NotCached => "not_cached",
            Self::Forgotten => "forgotten",
        }
    }
}

/// Labels of a read of the API server in place of the cache.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionReadLabels {
    /// A [`ReadReason`]'s label.
    pub reason: &'static str,
}

/// What the cache says about a session.
#[derive(Debug, PartialEq, Eq)]
enum Cached {
    /// It exists and is not being deleted.
    Present,
    /// It is being deleted: gone for the API.
    Deleting,
    /// The cache cannot tell: ask the API server.
    Ask(ReadReason),
}

struct Inner {
    reader: Store<Meta>,
    writer: Mutex<Writer<Meta>>,
    /// Whether the watch has listed the Sessions and reported something since its last failure.
    live: AtomicBool,
    /// Sessions this replica deleted, with when, until the watch reports them deleted.
    forgotten: Mutex<HashMap<(String, String), Instant>>,
    reads: Family<SessionReadLabels, Counter>,
}

/// The watched set of Sessions. Cheap to clone.
#[derive(Clone)]
pub struct SessionCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("live", &self.is_live())
            .finish_non_exhaustive()
    }
}

impl SessionCache {
    /// An empty cache, not live until fed an `InitDone` ([`Self::apply`]); its API reads are counted in `reads`.
    pub fn new(reads: Family<SessionReadLabels, Counter>) -> Self {
        let (reader, writer) = reflector::store();
        Self {
            inner: Arc::new(Inner {
                reader,
                writer: Mutex::new(writer),
                live: AtomicBool::new(false),
                forgotten: Mutex::default(),
                reads,
            }),
        }
    }

    /// The future that keeps the cache current from a metadata-only watch of every namespace's Sessions (spawn it;
    /// it retries with backoff on errors and never ends).
    pub fn watch(&self, client: Client) -> impl Future<Output = ()> + Send + 'static {
        let cache = self.clone();
        let api: Api<Meta> = Api::all(client);
        async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .modify(|meta: &mut Meta| {
                    // Never read here; most of what is left of a metadata object.
                    meta.metadata.managed_fields = None;
                    meta.metadata.annotations = None;
                    meta.metadata.labels = None;
                })
                .boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => cache.apply(&event),
                    Err(err) => cache.failed(&err),
                }
            }
        }
    }

    /// Takes one event of the watch.
    pub fn apply(&self, event: &watcher::Event<Meta>) {
        self.inner
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .apply_watcher_event(event);
        match event {
            watcher::Event::Delete(meta) => {
                let key = (
                    meta.metadata.namespace.clone().unwrap_or_default(),
                    meta.metadata.name.clone().unwrap_or_default(),
                );
                self.inner
                    .forgotten
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&key);
                self.set_live();
            }
            watcher::Event::InitDone | watcher::Event::Apply(_) => self.set_live(),
            // A relist is under way; the store keeps the previous listing until InitDone.
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    /// The watch failed: until it lists or reports again, lookups go to the API server. (The watch resumes from
    /// where it was, so nothing it missed meanwhile is lost once it reports again.)
    pub fn failed(&self, err: &dyn std::fmt::Display) {
        if self.inner.live.swap(false, Ordering::AcqRel) {
            tracing::warn!(error = %err,
                "the Session watch failed; sessions are looked up on the API server until it recovers");
        }
    }

    fn set_live(&self) {
        if !self.inner.live.swap(true, Ordering::AcqRel) {
            tracing::info!("watching Sessions: sends look them up in the cache");
        }
    }

    /// Whether lookups answer from the cache now.
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Makes lookups of a session this replica deleted go to the API server until the watch reports the delete.
    pub fn forget(&self, namespace: &str, id: &str) {
        let mut forgotten = self
            .inner
            .forgotten
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        forgotten.retain(|_, at| at.elapsed() < FORGET_FOR);
        forgotten.insert((namespace.to_owned(), id.to_owned()), Instant::now());
    }

    fn cached(&self, namespace: &str, id: &str) -> Cached {
        if !self.is_live() {
            return Cached::Ask(ReadReason::WatchDown);
        }
        if self
            .inner
            .forgotten
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(namespace.to_owned(), id.to_owned()))
            .is_some_and(|at| at.elapsed() < FORGET_FOR)
        {
            return Cached::Ask(ReadReason::Forgotten);
        }
        match self.inner.reader.get(&ObjectRef::new(id).within(namespace)) {
            Some(meta) if meta.metadata.deletion_timestamp.is_some() => Cached::Deleting,
            Some(_) => Cached::Present,
            None => Cached::Ask(ReadReason::NotCached),
        }
    }

    /// Ok when session `id` of `namespace` exists (and is not being deleted), else 404 `not_found_error`: from the
    /// cache when it can tell, else from the API server with `client`.
    pub async fn check(&self, client: &Client, namespace: &str, id: &str) -> Result<(), ApiError> {
        if !objects::plausible(id) {
            return Err(ApiError::not_found("session", id));
        }
        match self.cached(namespace, id) {
            Cached::Present => Ok(()),
            Cached::Deleting => Err(ApiError::not_found("session", id)),
            Cached::Ask(reason) => {
                self.inner
                    .reads
                    .get_or_create(&SessionReadLabels {
                        reason: reason.label(),
                    })
                    .inc();
                let api: Api<Session> = Api::namespaced(client.clone(), namespace);
                objects::get(&api, "session", id).await.map(drop)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(namespace: &str, name: &str, deleting: bool) -> Meta {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "corral.dev/v1alpha1", "kind": "Session",
            "metadata": {
                "name": name, "namespace": namespace, "uid": format!("uid-{name}"), "resourceVersion": "1",
                "deletionTimestamp": deleting.then_some("2026-01-01T00:00:00Z"),
            },
        }))
        .unwrap()
    }

    fn listed(cache: &SessionCache, sessions: &[Meta]) {
        cache.apply(&watcher::Event::Init);
        for s in sessions {
            cache.apply(&watcher::Event::InitApply(s.clone()));
        }
        cache.apply(&watcher::Event::InitDone);
    }

    /// A client whose API server never answers: every lookup that reaches it fails with a 5xx.
    fn unreachable_client() -> Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        Client::try_from(config).unwrap()
    }

    fn reads(reads: &Family<SessionReadLabels, Counter>, reason: ReadReason) -> u64 {
        reads
            .get_or_create(&SessionReadLabels {
                reason: reason.label(),
            })
            .get()
    }

    #[tokio::test]
    async fn a_live_cache_answers_without_the_api_server() {
        let counted = Family::default();
        let cache = SessionCache::new(counted.clone());
        let client = unreachable_client();
        listed(
            &cache,
            &[meta("team", "sesn-1", false), meta("team", "sesn-2", true)],
        );
        cache.check(&client, "team", "sesn-1").await.unwrap();
        let err = cache.check(&client, "team", "sesn-2").await.unwrap_err();
        assert_eq!(err.status, 404, "a session being deleted is gone");
        let err = cache.check(&client, "other", "sesn-1").await.unwrap_err();
        assert_ne!(
            err.status, 404,
            "another namespace's session is not this one: asked the API server"
        );
        assert_eq!(reads(&counted, ReadReason::NotCached), 1);
        assert_eq!(reads(&counted, ReadReason::WatchDown), 0);
        let err = cache.check(&client, "team", "..").await.unwrap_err();
        assert_eq!(err.status, 404, "an id that names no object is never looked up");
        assert_eq!(reads(&counted, ReadReason::NotCached), 1);
    }

    #[tokio::test]
    async fn the_api_server_is_asked_when_the_cache_cannot_tell() {
        let counted = Family::default();
        let cache = SessionCache::new(counted.clone());
        let client = unreachable_client();
        // Not listed yet.
        assert!(cache.check(&client, "team", "sesn-1").await.is_err());
        assert_eq!(reads(&counted, ReadReason::WatchDown), 1);
        listed(&cache, &[meta("team", "sesn-1", false)]);
        cache.check(&client, "team", "sesn-1").await.unwrap();
        // A failed watch sends lookups to the API server until it reports again.
        cache.failed(&"connection reset");
        assert!(cache.check(&client, "team", "sesn-1").await.is_err());
        assert_eq!(reads(&counted, ReadReason::WatchDown), 2);
        cache.apply(&watcher::Event::Apply(meta("team", "sesn-3", false)));
        cache.check(&client, "team", "sesn-1").await.unwrap();
        // Deleted: not cached any more, so asked (and the API server would say 404).
        cache.apply(&watcher::Event::Delete(meta("team", "sesn-1", false)));
        assert!(cache.check(&client, "team", "sesn-1").await.is_err());
        assert_eq!(reads(&counted, ReadReason::NotCached), 1);
    }

    #[tokio::test]
    async fn a_session_this_replica_deleted_is_asked_for_until_the_watch_reports_it() {
        let counted = Family::default();
        let cache = SessionCache::new(counted.clone());
        let client = unreachable_client();
        listed(&cache, &[meta("team", "sesn-1", false)]);
        cache.forget("team", "sesn-1");
        assert!(cache.check(&client, "team", "sesn-1").await.is_err());
        assert_eq!(reads(&counted, ReadReason::Forgotten), 1);
        cache.apply(&watcher::Event::Delete(meta("team", "sesn-1", false)));
        assert!(cache.check(&client, "team", "sesn-1").await.is_err());
        assert_eq!(
            reads(&counted, ReadReason::Forgotten),
            1,
            "the tombstone went with the delete"
        );
        assert_eq!(reads(&counted, ReadReason::NotCached), 1);
        assert!(cache.inner.forgotten.lock().unwrap().is_empty());
    }
}
