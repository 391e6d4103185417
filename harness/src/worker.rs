//! The worker: takes wake-ups from the namespace's queue and works on their sessions, `concurrency` at a time.
//!
//! The replica registers and beats (see [`crate::liveness`]); its session leases point at it and are never renewed
//! one by one. For each wake-up: take the session's lease for this replica, which acknowledges the wake-up in the
//! same step (a session another replica holds, or this one, is marked to be woken again when its holder lets go,
//! and the task ends at once: no slot waits on a held lease), load the agent, run the engine until the session is
//! idle, release the lease (waking the session again if a wake-up came meanwhile). When the replica's beats fail
//! it fences itself: it takes no new lease and starts no tool until it beats again (model streams go on; their
//! appends are fenced if it was reaped meanwhile).
//!
//! Shutdown (SIGTERM): stop taking wake-ups, give running sessions `grace` to finish, then cancel them and hand them
//! back (release the lease and wake the session again in one step), so another replica continues at once; then the
//! replica reaps itself, which hands back anything it still held. A crashed replica is reaped by a live one within
//! about a second of its last beat: its sessions get new fencing tokens and fresh wake-ups.

use std::sync::Arc;
use std::time::Duration;

use corral_api::events::{RetryStatus, StopReason, error_types};
use corral_session::{
    Error as LogError, Lease, ReplicaAcquire, ReplicaRelease, SessionLog, Store, WakeConsumer, Wakeup,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentSource, LoadError};
use crate::engine::events;
use crate::engine::{Engine, Outcome};
use crate::liveness::{Liveness, Target, reap_one};
use crate::log::LogView;
use crate::metrics::Metrics;

/// How long shutdown waits for the session status writes still under way.
const STATUS_WRITES_GRACE: Duration = Duration::from_secs(10);

/// Settings of the worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The namespace whose queue this worker serves.
    pub namespace: String,
    /// This replica's id, never reused (`<pod>-<epoch>`, [`corral_session::liveness::new_replica_id`]): its
    /// consumer name and the holder of its leases.
    pub name: String,
    /// Sessions worked on at once.
    pub concurrency: usize,
    /// How long a taken wake-up may stay unacknowledged before another replica reclaims it: a backstop only, since
    /// taking a lease acknowledges its wake-up and a dead replica's pending wake-ups are handed back when it is
    /// reaped.
    pub visibility: Duration,
    /// How long running sessions may take to finish after shutdown begins.
    pub grace: Duration,
}

/// Serves one namespace's wake-up queue.
pub struct Worker {
    store: Store,
    engine: Arc<Engine>,
    agents: Arc<dyn AgentSource>,
    config: WorkerConfig,
    metrics: Metrics,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// A worker.
    pub fn new(
        store: Store,
        engine: Arc<Engine>,
        agents: Arc<dyn AgentSource>,
        config: WorkerConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            engine,
            agents,
            config,
            metrics,
        }
    }

    /// Takes and works on wake-ups until `shutdown` fires, then drains as described in the module docs. Fails when
    /// this replica was reaped by another (it must restart under a new id).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let liveness = Liveness::start(
            &self.store,
            &self.config.namespace,
            &self.config.name,
            self.metrics.clone(),
        )
        .await?;
        let mut consumer = self
            .store
            .wake_consumer(&self.config.namespace, &self.config.name, self.config.visibility)
            .await?;
        let consumer_ref = Arc::new(ConsumerHandle::new(&self.store, &self.config).await?);
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let abort = CancellationToken::new();
        let dead = liveness.dead();
        let mut tasks = tokio::task::JoinSet::new();
        tracing::info!(namespace = %self.config.namespace, replica = %self.config.name, "taking wake-ups");
        while !shutdown.is_cancelled() && !dead.is_cancelled() {
            if !liveness.is_fresh() {
                tokio::select! {
                    () = liveness.wait_fresh() => {}
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = tasks.join_next() => {}
                    () = shutdown.cancelled() => break,
                    () = dead.cancelled() => break,
                }
                continue;
            }
            let taken = tokio::select! {
                taken = consumer.take(free) => taken,
                () = shutdown.cancelled() => break,
                () = dead.cancelled() => break,
            };
            let wakeups = match taken {
                Ok(w) => w,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot take wake-ups; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            for wakeup in wakeups {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let this = self.clone();
                let consumer = consumer_ref.clone();
                let liveness = liveness.clone();
                let abort = abort.clone();
                tasks.spawn(async move {
                    this.handle(&consumer, &liveness, wakeup, permit, &abort).await;
                });
            }
            while tasks.try_join_next().is_some() {}
        }
        if dead.is_cancelled() {
            abort.cancel();
            while tasks.join_next().await.is_some() {}
            anyhow::bail!(
                "replica {} was reaped by another (its liveness lapsed): restarting under a new id",
                self.config.name
            );
        }
        tracing::info!(running = tasks.len(), grace = ?self.config.grace, "shutting down: finishing running sessions");
        let drained = tokio::time::timeout(self.config.grace, async {
            while tasks.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tracing::info!(
                running = tasks.len(),
                "grace period over: handing running sessions back"
            );
            abort.cancel();
            while tasks.join_next().await.is_some() {}
        }
        // Runs end without waiting for their last status write: those still under way get a few seconds.
        self.engine.finish_status_writes(STATUS_WRITES_GRACE).await;
        liveness.stop();
        // Whatever this replica still holds (a release that failed) and its pending wake-ups go back at once.
        let replicas = self.store.replicas(&self.config.namespace);
        reap_one(&replicas, Target::Now(&self.config.name), &self.metrics).await;
        Ok(())
    }

    /// Works on one wake-up to its end.
    async fn handle(
        &self,
        consumer: &Arc<ConsumerHandle>,
        liveness: &Liveness,
        wakeup: Wakeup,
        permit: OwnedSemaphorePermit,
        abort: &CancellationToken,
    ) {
        let session = wakeup.session.clone();
        let namespace = self.config.namespace.clone();
        let log = self.store.session(&namespace, &session);
        if !liveness.is_fresh() {
            // Not beating: take no lease; the wake-up goes back to the pool.
            consumer.hand_back(&wakeup).await;
            Metrics::count(&self.metrics.wakeups, "handed_back");
            return;
        }
        let lease = match self.acquire(&log, liveness, &wakeup).await {
            Some(ReplicaAcquire::Taken(lease)) => lease,
            Some(ReplicaAcquire::Marked { holder }) => {
                tracing::debug!(%session, %holder, "the session is held; its holder wakes it again when done");
                Metrics::count(&self.metrics.wakeups, "held");
                return;
            }
            Some(ReplicaAcquire::Expiring { holder, expires_in }) => {
                // An expiring lease (a replica of an older release): wait for it without a slot, then put the
                // wake-up back.
                tracing::debug!(%session, %holder, ?expires_in, "the session has an expiring lease; retrying after it");
                drop(permit);
                tokio::time::sleep(expires_in.min(Duration::from_secs(5)) + Duration::from_millis(50)).await;
                consumer.hand_back(&wakeup).await;
                Metrics::count(&self.metrics.wakeups, "held");
                return;
            }
            Some(ReplicaAcquire::Dead) => {
                // This replica was reaped while its ACQUIRE was on its way: its wake-ups were handed back.
                tracing::error!(%session, "this replica was reaped: taking nothing");
                liveness.dead().cancel();
                Metrics::count(&self.metrics.wakeups, "dead");
                return;
            }
            None => {
                consumer.hand_back(&wakeup).await;
                Metrics::count(&self.metrics.wakeups, "failed");
                return;
            }
        };
        self.metrics.active_sessions.inc();
        self.metrics.held_sessions.inc();
        let cancel = abort.child_token();
        let outcome = match self.agents.load(&namespace, &session).await {
            Ok(agent) => {
                self.engine
                    .run_gated(&namespace, &session, &agent, lease.token, &cancel, liveness)
                    .await
            }
            Err(LoadError::NoSession(_)) => {
                tracing::info!(%session, "the session no longer exists; dropping its wake-up");
                Outcome::Idle
            }
            Err(LoadError::Unavailable(message)) => Outcome::Failed(message),
            Err(LoadError::Invalid(message)) => {
                self.fail_session(&namespace, &session, &lease, &message).await
            }
        };
        let label = match &outcome {
            Outcome::Idle => {
                self.release(&log, liveness, &lease, false).await;
                "idle"
            }
            Outcome::Lost => {
                tracing::info!(%session, "another replica took the session over");
                "lost"
            }
            Outcome::Cancelled => {
                self.release(&log, liveness, &lease, true).await;
                "handed_back"
            }
            Outcome::Failed(message) => {
                tracing::warn!(%session, error = %message, "session run failed; handing it back");
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.release(&log, liveness, &lease, true).await;
                "failed"
            }
        };
        Metrics::count(&self.metrics.wakeups, label);
        self.metrics.held_sessions.dec();
        self.metrics.active_sessions.dec();
        drop(permit);
    }

    /// Takes the session's lease for this replica, retrying transient failures for a few seconds (a retry after a
    /// lost reply answers the lease the first try took). `None`: not taken; the wake-up is still pending.
    async fn acquire(
        &self,
        log: &SessionLog,
        liveness: &Liveness,
        wakeup: &Wakeup,
    ) -> Option<ReplicaAcquire> {
        let mut wait = Duration::from_millis(50);
        for _ in 0..8 {
            if !liveness.is_fresh() {
                return None;
            }
            match log
                .acquire_for_replica(liveness.replica(), Some(&wakeup.entry))
                .await
            {
                Ok(found) => return Some(found),
                Err(err) => {
                    tracing::warn!(session = %wakeup.session, error = %err, "cannot take the session lease; retrying")
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
        None
    }

    /// Releases the lease (waking the session again with `requeue`), retrying transient failures for up to 30 s.
    /// A lease that cannot be released stays this replica's until it is reaped (on shutdown, it reaps itself).
    async fn release(&self, log: &SessionLog, liveness: &Liveness, lease: &Lease, requeue: bool) {
        let mut wait = Duration::from_millis(50);
        let started = tokio::time::Instant::now();
        loop {
            match log.release_for_replica(lease, requeue).await {
                Ok(ReplicaRelease::Lost) => {
                    tracing::info!(session = %log.id(), "the lease was taken over before its release");
                    return;
                }
                Ok(_) => return,
                Err(err)
                    if started.elapsed() < Duration::from_secs(30) && !liveness.dead().is_cancelled() =>
                {
                    tracing::warn!(session = %log.id(), error = %err, "cannot release the session lease; retrying");
                }
                Err(err) => {
                    tracing::error!(session = %log.id(), error = %err,
                        "cannot release the session lease: it stays held until this replica is reaped");
                    return;
                }
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }

    /// Ends a turn that cannot run because the agent is unusable, if the session has work waiting.
    async fn fail_session(&self, namespace: &str, session: &str, lease: &Lease, message: &str) -> Outcome {
        tracing::warn!(session, error = message, "cannot load the session's agent");
        let mut view = LogView::new(&self.store, namespace, session);
        if let Err(err) = view.refresh().await {
            return Outcome::Failed(err.to_string());
        }
        let scan = crate::engine::scan::scan(view.entries(), &Default::default());
        let waiting = scan.pending_input || scan.followup || scan.retry_pending || scan.open_span.is_some();
        if !waiting {
            return Outcome::Idle;
        }
        let mut batch = Vec::new();
        if let Some(span) = &scan.open_span {
            batch.push(events::span_end(&span.id, Default::default(), true, None));
        }
        batch.push(events::error(
            error_types::UNKNOWN,
            format!("cannot load the agent: {message}"),
            RetryStatus::Exhausted,
        ));
        batch.push(events::idle(StopReason::RetriesExhausted));
        match self
            .store
            .session(namespace, session)
            .append(lease.token, batch)
            .await
        {
            Ok(_) => Outcome::Idle,
            Err(LogError::Fenced { .. }) => Outcome::Lost,
            Err(err) => Outcome::Failed(err.to_string()),
        }
    }
}

/// The queue operations a session task needs, shared by every task (`WakeConsumer::take` needs `&mut`, the rest
/// do not, but they are methods of the consumer; a second consumer handle of the same name serves them).
struct ConsumerHandle {
    store: Store,
    namespace: String,
    consumer: WakeConsumer,
}

impl ConsumerHandle {
    async fn new(store: &Store, config: &WorkerConfig) -> anyhow::Result<Self> {
        Ok(Self {
            store: store.clone(),
            namespace: config.namespace.clone(),
            consumer: store
                .wake_consumer(&config.namespace, &config.name, config.visibility)
                .await?,
        })
    }

    /// Gives a wake-up back to the pool at once: a fresh entry for the session, then the old one acknowledged.
    async fn hand_back(&self, wakeup: &Wakeup) {
        match self.store.enqueue(&self.namespace, &wakeup.session).await {
            Ok(_) => {
                if let Err(err) = self.consumer.ack(wakeup).await {
                    tracing::warn!(session = %wakeup.session, error = %err, "cannot acknowledge a handed-back wake-up");
                }
            }
            Err(err) => tracing::warn!(
                session = %wakeup.session, error = %err,
                "cannot hand the session back; another replica reclaims it after the visibility timeout"
            ),
        }
    }
}
