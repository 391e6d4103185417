//! The worker: takes wake-ups from the namespace's queue and works on their sessions, `concurrency` at a time.
//!
//! For each wake-up: take the session's lease (waiting while another holder has it, since that holder may be
//! finishing and a new event may have come after its last read), load the agent, run the engine until the session
//! is idle, release the lease, acknowledge the wake-up. While it works, a keeper renews the lease and touches the
//! wake-up every third of their time limits; losing the lease cancels the run at once (nothing more is appended:
//! every append is fenced anyway).
//!
//! Shutdown (SIGTERM): stop taking wake-ups, give running sessions `grace` to finish, then cancel them and hand them
//! back: release the lease, enqueue a fresh wake-up and acknowledge the old one, so another replica continues at
//! once. A crashed replica's wake-ups are reclaimed by another after the visibility timeout, and its lease expires
//! after the lease time: the log tells the new holder where the turn stands.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use corral_api::events::{RetryStatus, StopReason, error_types};
use corral_session::{Error as LogError, Lease, Store, WakeConsumer, Wakeup};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::agent::{AgentSource, LoadError};
use crate::engine::events;
use crate::engine::{Engine, Outcome};
use crate::log::LogView;
use crate::metrics::Metrics;

/// Settings of the worker.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The namespace whose queue this worker serves.
    pub namespace: String,
    /// This process's unique name (consumer name and lease holder prefix).
    pub name: String,
    /// Sessions worked on at once.
    pub concurrency: usize,
    /// How long a taken wake-up may go untouched before another replica reclaims it.
    pub visibility: Duration,
    /// How long a session lease lasts without renewal.
    pub lease_ttl: Duration,
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
    seq: AtomicU64,
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
            seq: AtomicU64::new(0),
        }
    }

    /// Takes and works on wake-ups until `shutdown` fires, then drains as described in the module docs.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut consumer = self
            .store
            .wake_consumer(&self.config.namespace, &self.config.name, self.config.visibility)
            .await?;
        let consumer_ref = Arc::new(ConsumerHandle::new(&self.store, &self.config).await?);
        let slots = Arc::new(Semaphore::new(self.config.concurrency.max(1)));
        let abort = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        tracing::info!(namespace = %self.config.namespace, name = %self.config.name, "taking wake-ups");
        while !shutdown.is_cancelled() {
            let free = slots.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = tasks.join_next() => {}
                    () = shutdown.cancelled() => break,
                }
                continue;
            }
            let taken = tokio::select! {
                taken = consumer.take(free) => taken,
                () = shutdown.cancelled() => break,
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
                let abort = abort.clone();
                let shutdown = shutdown.clone();
                tasks.spawn(async move {
                    this.handle(&consumer, wakeup, &shutdown, &abort).await;
                    drop(permit);
                });
            }
            while tasks.try_join_next().is_some() {}
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
        Ok(())
    }

    /// Works on one wake-up to its end.
    async fn handle(
        &self,
        consumer: &Arc<ConsumerHandle>,
        wakeup: Wakeup,
        shutdown: &CancellationToken,
        abort: &CancellationToken,
    ) {
        let session = wakeup.session.clone();
        let namespace = self.config.namespace.clone();
        let holder = format!(
            "{}-{}",
            self.config.name,
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let log = self.store.session(&namespace, &session);
        self.metrics.active_sessions.inc();
        // Take the lease, waiting while another holder has it. The usual holder is the run of the previous turn
        // writing its last status (an API server round trip), so the first second is polled every 20 ms; a holder
        // still there after that is running a turn, and the wait grows to a second.
        let started = tokio::time::Instant::now();
        let mut wait = Duration::from_millis(5);
        let lease = loop {
            if abort.is_cancelled() {
                self.metrics.active_sessions.dec();
                consumer.hand_back(&wakeup).await;
                return;
            }
            match log.acquire_lease(&holder, self.config.lease_ttl).await {
                Ok(lease) => break lease,
                Err(LogError::LeaseHeld { .. }) => {}
                Err(err) => tracing::warn!(%session, error = %err, "cannot take the session lease; retrying"),
            }
            let _ = consumer.touch(&wakeup).await;
            tokio::time::sleep(wait).await;
            wait = if started.elapsed() < Duration::from_secs(1) {
                (wait * 2).min(Duration::from_millis(20))
            } else {
                (wait * 2).min(Duration::from_secs(1))
            };
        };
        let cancel = abort.child_token();
        let keeper = tokio::spawn(keep(
            log.clone(),
            lease.clone(),
            consumer.clone(),
            wakeup.clone(),
            cancel.clone(),
            self.config.lease_ttl.min(self.config.visibility) / 3,
        ));
        let outcome = match self.agents.load(&namespace, &session).await {
            Ok(agent) => {
                self.engine
                    .run(&namespace, &session, &agent, lease.token, &cancel)
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
        keeper.abort();
        let lost = cancel.is_cancelled() && !abort.is_cancelled() && !shutdown.is_cancelled();
        let outcome = if lost && outcome == Outcome::Cancelled {
            Outcome::Lost
        } else {
            outcome
        };
        if outcome != Outcome::Lost
            && let Err(err) = log.release(&lease).await
        {
            tracing::warn!(%session, error = %err, "cannot release the session lease (it will expire)");
        }
        match &outcome {
            Outcome::Idle => {
                if let Err(err) = consumer.ack(&wakeup).await {
                    tracing::warn!(%session, error = %err, "cannot acknowledge the wake-up");
                }
            }
            Outcome::Lost => tracing::info!(%session, "another replica took the session over"),
            Outcome::Cancelled => consumer.hand_back(&wakeup).await,
            Outcome::Failed(message) => {
                tracing::warn!(%session, error = %message, "session run failed; handing it back");
                tokio::time::sleep(Duration::from_secs(1)).await;
                consumer.hand_back(&wakeup).await;
            }
        }
        let label = match outcome {
            Outcome::Idle => "idle",
            Outcome::Lost => "lost",
            Outcome::Cancelled => "handed_back",
            Outcome::Failed(_) => "failed",
        };
        Metrics::count(&self.metrics.wakeups, label);
        self.metrics.active_sessions.dec();
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

    async fn ack(&self, wakeup: &Wakeup) -> Result<(), LogError> {
        self.consumer.ack(wakeup).await
    }

    async fn touch(&self, wakeup: &Wakeup) -> Result<bool, LogError> {
        self.consumer.touch(wakeup).await
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

/// Renews the lease and touches the wake-up every `every`; cancels the run when the lease is lost.
async fn keep(
    log: corral_session::SessionLog,
    lease: Lease,
    consumer: Arc<ConsumerHandle>,
    wakeup: Wakeup,
    cancel: CancellationToken,
    every: Duration,
) {
    let every = every.max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        match log.renew(&lease).await {
            Ok(()) => {}
            Err(LogError::LeaseLost { .. }) => {
                tracing::warn!(session = %wakeup.session, "lost the session lease; stopping at once");
                cancel.cancel();
                return;
            }
            Err(err) => {
                tracing::warn!(session = %wakeup.session, error = %err, "cannot renew the session lease")
            }
        }
        if let Err(err) = consumer.touch(&wakeup).await {
            tracing::debug!(session = %wakeup.session, error = %err, "cannot touch the wake-up");
        }
    }
}
