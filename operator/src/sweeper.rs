//! The sweeper: the leading operator looks for sessions whose client event went unanswered with nothing on its way
//! to answer it (no wake-up in the queue, no harness holding the lease, no harness event after it), for example
//! because a wake-up entry was lost with a Redis failover or deleted by hand, and enqueues the session's wake-up
//! again. Each check reads the wake-up queues of a namespace and a bounded tail of each session's log, never whole
//! logs. Only one replica sweeps (the leader), and a session is re-enqueued at most once per unanswered event, so an
//! event the harness deliberately leaves unanswered (an interrupt of an idle session) does not wake it forever.
//!
//! Before re-enqueueing, it takes over a replica-mode lease whose holder is neither registered nor being reaped
//! (see `corral_session::liveness`): a wake-up would only mark such a lease `again`, and its holder will never
//! release it. This costs two reads per unanswered session, none for the others.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use corral_api::{Session, session::SessionPhase};
use corral_session::{Cursor, Store};
use futures::{StreamExt, stream};
use kube::{ResourceExt, api::ListParams};

use crate::{context::Context, controllers::watched_api, metrics::Metrics};

/// Sessions checked at the same time.
const CONCURRENCY: usize = 16;

/// Remembers what was re-enqueued, so each unanswered event is re-enqueued once.
#[derive(Default)]
pub struct Sweeper {
    requeued: HashMap<(String, String), Cursor>,
}

impl Sweeper {
    /// Checks `sessions` (namespace → session names) and re-enqueues the wake-up of each whose newest unanswered
    /// event is older than `grace` (so an append whose wake-up is just being taken is left alone). Returns how many
    /// were re-enqueued.
    pub async fn sweep(
        &mut self,
        store: &Store,
        metrics: &Metrics,
        sessions: &BTreeMap<String, Vec<String>>,
        grace: Duration,
    ) -> corral_session::Result<usize> {
        let now = store.now_ms().await?;
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        let mut found = Vec::new();
        for (namespace, names) in sessions {
            // The queue first: a wake-up taken and finished after this read left harness events in the log.
            let queued = store.sessions_with_wakeups(namespace).await?;
            let unqueued: Vec<String> = names.iter().filter(|s| !queued.contains(*s)).cloned().collect();
            let mut results = stream::iter(unqueued)
                .map(|session| {
                    let log = store.session(namespace, &session);
                    async move { (session, log.unanswered_or_held().await) }
                })
                .buffer_unordered(CONCURRENCY);
            while let Some((session, unanswered)) = results.next().await {
                match unanswered {
                    Ok(Some((cursor, holder))) if cursor.millis().saturating_add(grace_ms) <= now => {
                        found.push((namespace.clone(), session, cursor, holder.is_some()));
                    }
                    Ok(_) => {}
                    Err(err) => {
                        tracing::debug!(%namespace, %session, error = %err, "cannot check the session's log")
                    }
                }
            }
        }
        self.requeued
            .retain(|(ns, s), _| sessions.get(ns).is_some_and(|names| names.contains(s)));
        let mut requeued = 0;
        for (namespace, session, cursor, held) in found {
            if held {
                // A replica's lease: take it over if its holder is gone; else its turn answers the event.
                match store.replicas(&namespace).reclaim_orphaned(&session).await {
                    Ok(Some(holder)) => {
                        metrics.sweeper_requeued();
                        tracing::warn!(
                            %namespace, %session, %holder,
                            "took over a lease held by a replica that is neither registered nor being reaped"
                        );
                        self.requeued.insert((namespace, session), cursor);
                        requeued += 1;
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::debug!(%namespace, %session, error = %err, "cannot check the session's lease")
                    }
                }
                continue;
            }
            let key = (namespace, session);
            if self.requeued.get(&key) == Some(&cursor) {
                continue;
            }
            let (namespace, session) = &key;
            store.enqueue(namespace, session).await?;
            metrics.sweeper_requeued();
            tracing::info!(
                %namespace,
                %session,
                event = %cursor,
                "re-enqueued the wake-up of a session with an unanswered event and none pending"
            );
            self.requeued.insert(key, cursor);
            requeued += 1;
        }
        Ok(requeued)
    }
}

/// The sessions to check: every Session not terminated and not being deleted, by namespace.
async fn live_sessions(ctx: &Context) -> Result<BTreeMap<String, Vec<String>>, kube::Error> {
    let sessions = watched_api::<Session>(&ctx.client, ctx.watch_namespace.as_deref())
        .list(&ListParams::default())
        .await?
        .items;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in sessions {
        let terminated = s.status.as_ref().and_then(|s| s.phase) == Some(SessionPhase::Terminated);
        if terminated || s.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(ns) = s.namespace() {
            out.entry(ns).or_default().push(s.name_any());
        }
    }
    Ok(out)
}

/// Sweeps every `every` until `stop` says so; an event must be unanswered for `every` before it counts.
pub async fn run(
    ctx: Arc<Context>,
    store: Store,
    every: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut sweeper = Sweeper::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let sessions = match live_sessions(&ctx).await {
            Ok(sessions) => sessions,
            Err(err) => {
                tracing::warn!(error = %err, "sweeper: cannot list Sessions");
                continue;
            }
        };
        if let Err(err) = sweeper.sweep(&store, &ctx.metrics, &sessions, every).await {
            tracing::warn!(error = %err, "sweeper: cannot read the session log");
        }
    }
}

#[cfg(test)]
mod tests {
    use corral_api::events::{ContentBlock, EventBody, UserMessage};
    use corral_session::{Config, testing::RedisServer};

    use super::*;

    fn message(text: &str) -> EventBody {
        EventBody::UserMessage(UserMessage {
            content: vec![ContentBlock::text(text)],
        })
    }

    #[tokio::test]
    async fn a_session_whose_wakeup_was_lost_is_woken_once() {
        let redis = RedisServer::start().expect("redis-server");
        let store = Store::connect(&redis.url(), Config::default()).await.unwrap();
        let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
        let sessions = BTreeMap::from([("team-a".to_owned(), vec!["lost".to_owned(), "fine".to_owned()])]);
        let lost = store.session("team-a", "lost");
        lost.append_user_events([message("hello?")], None).await.unwrap();
        store
            .session("team-a", "fine")
            .append_user_events([message("hi")], None)
            .await
            .unwrap();

        // Both wake-ups wait: nothing to do.
        let mut sweeper = Sweeper::default();
        assert_eq!(
            sweeper
                .sweep(&store, &metrics, &sessions, Duration::ZERO)
                .await
                .unwrap(),
            0
        );

        // The lost session's wake-up entry disappears.
        let mut consumer = store
            .wake_consumer("team-a", "test", Duration::from_secs(60))
            .await
            .unwrap();
        let taken = consumer.take(10).await.unwrap();
        for w in taken.iter().filter(|w| w.session == "lost") {
            consumer.ack(w).await.unwrap();
        }
        // Within the grace period it is left alone (its wake-up may be being taken).
        assert_eq!(
            sweeper
                .sweep(&store, &metrics, &sessions, Duration::from_secs(3600))
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            sweeper
                .sweep(&store, &metrics, &sessions, Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        let again = consumer.take(10).await.unwrap();
        assert_eq!(
            again.iter().map(|w| w.session.as_str()).collect::<Vec<_>>(),
            ["lost"]
        );

        // The harness took it and left the event unanswered (or the wake-up was lost again): not re-enqueued for the
        // same event twice.
        consumer.ack(&again[0]).await.unwrap();
        assert_eq!(
            sweeper
                .sweep(&store, &metrics, &sessions, Duration::ZERO)
                .await
                .unwrap(),
            0
        );
        // A newer event counts again.
        lost.append_user_events([message("still there?")], None)
            .await
            .unwrap();
        let newest = consumer.take(10).await.unwrap();
        consumer.ack(&newest[0]).await.unwrap();
        assert_eq!(
            sweeper
                .sweep(&store, &metrics, &sessions, Duration::ZERO)
                .await
                .unwrap(),
            1
        );
    }

    /// Review bug 1's backstop: a session whose lease is held, without expiry, by a replica that was reaped (its
    /// late `ACQUIRE` landed after the reap) or never registered. Its wake-ups only mark the lease `again`, so
    /// re-enqueueing alone (the old sweeper) left it wedged.
    #[tokio::test]
    async fn a_session_wedged_by_a_dead_replicas_lease_is_taken_over() {
        let redis = RedisServer::start().expect("redis-server");
        let store = Store::connect(&redis.url(), Config::default()).await.unwrap();
        let metrics = Metrics::register(&mut prometheus_client::registry::Registry::default());
        let sessions = BTreeMap::from([("team-a".to_owned(), vec!["wedged".to_owned()])]);
        let wedged = store.session("team-a", "wedged");
        let ghost = corral_session::liveness::new_replica_id("harness-gone");
        let corral_session::ReplicaAcquire::Taken(lease) =
            wedged.acquire_for_replica(&ghost, None).await.unwrap()
        else {
            panic!("taken");
        };
        wedged
            .append_user_events([message("hello?")], None)
            .await
            .unwrap();
        let mut consumer = store
            .wake_consumer("team-a", "live", Duration::from_secs(60))
            .await
            .unwrap();
        // A live replica takes the wake-up: the lease is held, so it only marks it and acknowledges the wake-up.
        let taken = consumer.take(10).await.unwrap();
        assert!(matches!(
            wedged
                .acquire_for_replica("live-0", Some(&taken[0].entry))
                .await
                .unwrap(),
            corral_session::ReplicaAcquire::Marked { .. }
        ));
        let mut sweeper = Sweeper::default();
        assert_eq!(
            sweeper
                .sweep(&store, &metrics, &sessions, Duration::ZERO)
                .await
                .unwrap(),
            1
        );
        // The lease is gone (the dead holder fenced) and the session woken: a live replica takes it now.
        assert!(matches!(
            wedged.append(lease.token, [message("late")]).await,
            Err(corral_session::Error::Fenced { .. })
        ));
        let again = consumer.take(10).await.unwrap();
        assert_eq!(again.len(), 1);
        assert!(matches!(
            wedged
                .acquire_for_replica("live-0", Some(&again[0].entry))
                .await
                .unwrap(),
            corral_session::ReplicaAcquire::Taken(_)
        ));
    }
}
