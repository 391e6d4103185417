//! Sessions' logs kept between their turns on this replica, so a wake-up reads only what was appended since the
//! last turn instead of the whole log (which grows with every turn). The cache holds at most a byte budget, the
//! least recently used views going first; a view is taken out while a run uses it (the session's lease means one
//! run at a time) and put back when the run ends well.
//!
//! A log is append-only while its session lives, but a session deleted and created again under the same name (a
//! custom resource) starts a new log under the same key: a taken view is checked against the log's first entry
//! before it is trusted ([`LogView::refresh`] drops it otherwise).

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use super::LogView;

/// The default budget: 32 MiB of event JSON (two to three times that once decoded, well inside the harness's
/// 512 MiB memory limit).
pub const DEFAULT_BUDGET: usize = 32 << 20;

/// Views of recently run sessions' logs, by (namespace, session).
#[derive(Debug)]
pub struct LogCache {
    budget: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    views: HashMap<(String, String), (u64, LogView)>,
    bytes: usize,
    clock: u64,
}

impl Default for LogCache {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET)
    }
}

impl LogCache {
    /// An empty cache holding at most `budget` bytes of event JSON (0: keeps nothing).
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            inner: Mutex::default(),
        }
    }

    /// The view of `session` kept from its last run here, taken out of the cache.
    pub fn take(&self, namespace: &str, session: &str) -> Option<LogView> {
        let mut inner = self.lock();
        let (_, view) = inner.views.remove(&(namespace.to_owned(), session.to_owned()))?;
        inner.bytes -= view.approx_bytes();
        let mut view = view;
        view.kept = true;
        Some(view)
    }

    /// Keeps `view` for the session's next run, dropping the least recently kept views over the budget.
    pub fn put(&self, namespace: &str, session: &str, view: LogView) {
        let size = view.approx_bytes();
        if size > self.budget {
            return;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let stamp = inner.clock;
        inner.bytes += size;
        if let Some((_, old)) = inner
            .views
            .insert((namespace.to_owned(), session.to_owned()), (stamp, view))
        {
            inner.bytes -= old.approx_bytes();
        }
        while inner.bytes > self.budget {
            let Some(oldest) = inner
                .views
                .iter()
                .min_by_key(|(_, (stamp, _))| *stamp)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            if let Some((_, gone)) = inner.views.remove(&oldest) {
                inner.bytes -= gone.approx_bytes();
            }
        }
    }

    /// Bytes of event JSON held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.lock().views.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use corral_api::events::{ContentBlock, EventBody, UserMessage};
    use corral_session::{Config, Store, testing::RedisServer};

    use super::*;

    fn message(text: &str) -> EventBody {
        EventBody::UserMessage(UserMessage {
            content: vec![ContentBlock::text(text.to_owned())],
        })
    }

    async fn store() -> (RedisServer, Store) {
        let server = tokio::task::spawn_blocking(RedisServer::start)
            .await
            .unwrap()
            .unwrap();
        let store = Store::connect(&server.url(), Config::default()).await.unwrap();
        (server, store)
    }

    #[tokio::test]
    async fn a_kept_view_reads_only_what_was_appended_and_a_new_log_under_the_same_name_whole() {
        let (_server, store) = store().await;
        let cache = LogCache::default();
        let log = store.session("team", "s1");
        log.append_user([message("one"), message("two")]).await.unwrap();
        let mut view = LogView::new(&store, "team", "s1");
        assert_eq!(view.refresh().await.unwrap(), 2);
        cache.put("team", "s1", view);
        assert!(cache.bytes() > 0);

        log.append_user([message("three")]).await.unwrap();
        let mut view = cache.take("team", "s1").expect("kept");
        assert_eq!(cache.bytes(), 0, "taken out while a run uses it");
        assert_eq!(view.refresh().await.unwrap(), 1, "only the new entry is read");
        assert_eq!(view.entries().len(), 3);
        cache.put("team", "s1", view);

        // The session deleted and created again under its name: a new log, read whole.
        log.delete().await.unwrap();
        log.append_user([message("fresh")]).await.unwrap();
        let mut view = cache.take("team", "s1").expect("kept");
        assert_eq!(view.refresh().await.unwrap(), 1);
        let texts: Vec<String> = view
            .entries()
            .iter()
            .map(|e| serde_json::to_string(&e.body).unwrap())
            .collect();
        assert_eq!(texts.len(), 1);
        assert!(texts[0].contains("fresh"), "{texts:?}");
    }

    #[tokio::test]
    async fn the_least_recently_kept_views_go_first_over_the_budget() {
        let (_server, store) = store().await;
        let mut sizes = Vec::new();
        for name in ["a", "b", "c"] {
            store
                .session("team", name)
                .append_user([message(&"x".repeat(1000))])
                .await
                .unwrap();
            let mut view = LogView::new(&store, "team", name);
            view.refresh().await.unwrap();
            sizes.push(view.approx_bytes());
        }
        let cache = LogCache::new(sizes[0] * 2 + sizes[0] / 2);
        for name in ["a", "b", "c"] {
            let mut view = LogView::new(&store, "team", name);
            view.refresh().await.unwrap();
            cache.put("team", name, view);
        }
        assert_eq!(cache.len(), 2);
        assert!(cache.take("team", "a").is_none(), "the oldest went");
        assert!(cache.take("team", "c").is_some());
        assert!(LogCache::new(0).is_empty());
    }
}
