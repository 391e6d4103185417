//! This replica's liveness: the beat that keeps every session lease it holds (one `BEAT` every 200 ms, whatever
//! the number of sessions), the self-fence that stops its work when beats fail, and the reaper that takes a dead
//! replica's sessions over. See [`corral_session::liveness`] for the protocol.
//!
//! The beat runs on an OS thread of its own, with its own Tokio runtime and Redis connection: a saturated worker
//! runtime must not make a live replica look dead. Each successful beat records when it was *sent*; once the last
//! one was sent more than [`SELF_FENCE_AFTER`] ago the replica fences itself: it takes no new lease and starts no
//! tool (each tool call waits for [`Liveness::is_fresh`]) before its liveness key, which outlives a beat by
//! `LIVENESS_TTL`, lets anybody reap it. Model streams go on: what they append is fenced by the session's token
//! if the replica is reaped meanwhile, and a Redis stall of a second (an fsync, an AOF rewrite's fork) then costs
//! no model call. A tool the reaped replica started is not run again: the new holder recovers that run's result
//! from the sandbox (`crate::tools::ToolRunner::recover`), whose daemon from then on refuses the old fencing token.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use corral_session::liveness::{
    self, BEAT_EVERY, Beat, REAP_AFTER_GOOD_BEATS, REREGISTER_WITHIN, SELF_FENCE_AFTER, Suspect, SuspectWatch,
};

use corral_session::Store;
use corral_session::liveness::Replicas;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// The longest one beat (connecting included) may take before it counts as failed.
const BEAT_TIMEOUT: Duration = Duration::from_millis(300);
/// How often the self-fence deadline is checked.
const FENCE_CHECK: Duration = Duration::from_millis(20);

/// This replica's liveness. Cheap to share.
pub struct Liveness {
    replica: String,
    base: Instant,
    /// When the last successful beat was sent, in ms since `base` (+1, so 0 means never).
    last_ok: AtomicU64,
    /// Whether the replica has fenced itself (its beats failing) and not beaten since.
    fenced: AtomicBool,
    /// Fired when this replica was reaped: it must stop for good.
    dead: CancellationToken,
    stop: CancellationToken,
    metrics: Metrics,
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Liveness {
    /// Registers `replica` in `namespace`'s registry, starts its beat thread and, on the calling runtime, the
    /// reaper of the suspects its beats report.
    pub async fn start(
        store: &Store,
        namespace: &str,
        replica: &str,
        metrics: Metrics,
    ) -> anyhow::Result<Arc<Self>> {
        let replicas = store.replicas(namespace);
        replicas.register(replica).await?;
        let this = Arc::new(Self {
            replica: replica.to_owned(),
            base: Instant::now(),
            last_ok: AtomicU64::new(0),
            fenced: AtomicBool::new(false),
            dead: CancellationToken::new(),
            stop: CancellationToken::new(),
            metrics: metrics.clone(),
        });
        this.beat_ok(Instant::now());
        let (suspects_tx, suspects_rx) = mpsc::unbounded_channel();
        let beating = this.clone();
        let beat_store = store.clone();
        let beat_namespace = namespace.to_owned();
        std::thread::Builder::new()
            .name("liveness".into())
            .spawn(
                move || match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => {
                        runtime.block_on(beating.run_beats(beat_store, beat_namespace, suspects_tx))
                    }
                    Err(err) => {
                        tracing::error!(error = %err, "cannot start the liveness thread");
                        beating.dead.cancel();
                    }
                },
            )?;
        tokio::spawn(reap_suspects(replicas, this.clone(), suspects_rx, metrics));
        Ok(this)
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Whether the last successful beat was sent less than [`SELF_FENCE_AFTER`] ago: only then may this replica
    /// take a lease, call a model or run a tool.
    pub fn is_fresh(&self) -> bool {
        let last = self.last_ok.load(Ordering::Acquire);
        last > 0 && self.now_ms().saturating_sub(last - 1) < millis(SELF_FENCE_AFTER)
    }

    /// Waits until this replica is fresh again (or dead, or stopped).
    pub async fn wait_fresh(&self) {
        while !self.is_fresh() && !self.dead.is_cancelled() && !self.stop.is_cancelled() {
            tokio::time::sleep(FENCE_CHECK).await;
        }
    }

    /// Waits until this replica may start a tool: fresh and not reaped. Returns false once it was reaped (or
    /// stopped beating) instead: the tool must not run. Freshness is judged once per look, so a replica that is
    /// alive is never refused by a second look landing just past the limit (a refusal ends the run as lost).
    pub async fn may_run_tool(&self) -> bool {
        loop {
            if self.dead.is_cancelled() {
                return false;
            }
            if self.is_fresh() {
                return true;
            }
            if self.stop.is_cancelled() {
                return false;
            }
            tokio::time::sleep(FENCE_CHECK).await;
        }
    }

    /// Fired once this replica was reaped by another: it holds no lease any more and must exit.
    pub fn dead(&self) -> CancellationToken {
        self.dead.clone()
    }

    /// Stops beating (on shutdown, before the replica reaps itself).
    pub fn stop(&self) {
        self.stop.cancel();
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn beat_ok(&self, sent: Instant) {
        let at = u64::try_from(sent.duration_since(self.base).as_millis()).unwrap_or(u64::MAX);
        self.last_ok.fetch_max(at + 1, Ordering::AcqRel);
        if self.is_fresh() && !self.dead.is_cancelled() && self.fenced.swap(false, Ordering::AcqRel) {
            tracing::info!(replica = %self.replica, "beating again: taking work again");
        }
    }

    fn fence_if_stale(&self) {
        if self.is_fresh() && !self.dead.is_cancelled() {
            return;
        }
        if !self.fenced.swap(true, Ordering::AcqRel) {
            tracing::warn!(replica = %self.replica, "liveness beats failing: no new lease, no tool start");
            self.metrics.self_fenced.inc();
        }
    }

    /// How long ago the last successful beat was sent.
    fn since_last_ok(&self) -> Duration {
        let last = self.last_ok.load(Ordering::Acquire);
        Duration::from_millis(self.now_ms().saturating_sub(last.saturating_sub(1)))
    }

    /// The beat loop and the self-fence check, on the liveness thread.
    async fn run_beats(
        self: Arc<Self>,
        store: Store,
        namespace: String,
        suspects: mpsc::UnboundedSender<Vec<Suspect>>,
    ) {
        let checker = {
            let this = self.clone();
            async move {
                loop {
                    tokio::time::sleep(FENCE_CHECK).await;
                    this.fence_if_stale();
                }
            }
        };
        let beats = async {
            let mut conn = None;
            let mut good_since: Option<Instant> = None;
            let mut ticks = tokio::time::interval(BEAT_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = self.stop.cancelled() => return,
                }
                let sent = Instant::now();
                let result = tokio::time::timeout(BEAT_TIMEOUT, async {
                    let c = match &mut conn {
                        Some(c) => c,
                        None => conn.insert(store.dedicated().await?),
                    };
                    liveness::beat(c, &namespace, &self.replica).await
                })
                .await;
                match result {
                    Ok(Ok(Beat::Alive { suspects: found })) => {
                        self.beat_ok(sent);
                        let since = *good_since.get_or_insert(sent);
                        if since.elapsed() >= REAP_AFTER_GOOD_BEATS {
                            let _ = suspects.send(found);
                        }
                    }
                    Ok(Ok(Beat::Unregistered)) if self.since_last_ok() < REREGISTER_WITHIN => {
                        // Redis lost the registration without anyone reaping this replica (no tombstone): register
                        // again rather than stop every replica of the namespace at once. Its leases went with the
                        // data; what its sessions still append is fenced.
                        tracing::warn!(
                            replica = %self.replica,
                            "this replica's registration vanished (Redis lost data): registering again"
                        );
                        if let Some(c) = conn.as_mut() {
                            match liveness::register(c, &namespace, &self.replica).await {
                                Ok(true) => {}
                                Ok(false) => {
                                    tracing::error!(
                                        replica = %self.replica,
                                        "this replica was reaped before it could register again: stopping"
                                    );
                                    self.dead.cancel();
                                    self.fence_if_stale();
                                    return;
                                }
                                Err(err) => {
                                    tracing::warn!(error = %err, "cannot register again; retrying");
                                    conn = None;
                                }
                            }
                        }
                        good_since = None;
                    }
                    Ok(Ok(Beat::Dead | Beat::Unregistered)) => {
                        tracing::error!(replica = %self.replica, "this replica was reaped by another: stopping");
                        self.dead.cancel();
                        self.fence_if_stale();
                        return;
                    }
                    Ok(Err(err)) => {
                        tracing::debug!(error = %err, "liveness beat failed");
                        conn = None;
                        good_since = None;
                    }
                    Err(_) => {
                        tracing::debug!("liveness beat timed out");
                        conn = None;
                        good_since = None;
                    }
                }
            }
        };
        tokio::select! {
            () = checker => {}
            () = beats => {}
        }
    }
}

impl crate::engine::ToolGate for Liveness {
    fn may_run_tool(&self) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(Liveness::may_run_tool(self))
    }
}

/// Reaps the suspects the beats report once they ripen (see [`SuspectWatch`]), one reap per suspect at a time.
async fn reap_suspects(
    replicas: Replicas,
    me: Arc<Liveness>,
    mut suspects: mpsc::UnboundedReceiver<Vec<Suspect>>,
    metrics: Metrics,
) {
    let in_flight = Arc::new(Mutex::new(HashSet::<String>::new()));
    let mut watch = SuspectWatch::default();
    while let Some(batch) = suspects.recv().await {
        for suspect in watch.observe(batch, Instant::now()) {
            if suspect.replica == me.replica {
                continue;
            }
            if !in_flight
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(suspect.replica.clone())
            {
                continue;
            }
            let replicas = replicas.clone();
            let metrics = metrics.clone();
            let in_flight = in_flight.clone();
            tokio::spawn(async move {
                reap_one(&replicas, Target::Suspect(&suspect), &metrics).await;
                in_flight
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&suspect.replica);
            });
        }
    }
}

/// Which replica [`reap_one`] reaps, and how.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A suspect that ripened: reaped only if still stale at the observed beat.
    Suspect(&'a Suspect),
    /// A replica reaped at once (this one on shutdown).
    Now(&'a str),
}

/// Reaps `target`, recording what it took over.
pub async fn reap_one(replicas: &Replicas, target: Target<'_>, metrics: &Metrics) {
    let started = Instant::now();
    let (replica, force, result) = match target {
        Target::Suspect(suspect) => (suspect.replica.as_str(), false, replicas.reap(suspect).await),
        Target::Now(replica) => (replica, true, replicas.reap_now(replica).await),
    };
    match result {
        Ok(reaped) if reaped.reaped => {
            let since_beat = reaped
                .last_beat_ms
                .map(|last| Duration::from_millis(reaped.began_ms.saturating_sub(last)) + started.elapsed());
            metrics.reaped_sessions.inc_by(reaped.sessions);
            if let (Some(takeover), false) = (since_beat, force) {
                metrics.takeover_seconds.observe(takeover.as_secs_f64());
            }
            tracing::info!(
                %replica, sessions = reaped.sessions, handed_back = reaped.handed_back,
                since_last_beat = ?since_beat, force, "reaped a replica: its sessions are taken over"
            );
        }
        Ok(_) => {}
        Err(err) => {
            tracing::warn!(%replica, error = %err, "cannot reap a replica; retrying on the next beat")
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
