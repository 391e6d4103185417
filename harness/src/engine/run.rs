//! The engine's I/O loop: refresh the log, plan, act, append; until the plan says there is nothing to do.

mod full;
mod model;
mod resume;
mod sandbox_wait;
mod tools;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use corral_api::budget::Spent;
use corral_api::events::{EventBody, EventId, StopReason};
use corral_session::{Error as LogError, FencingToken, NewEvent, SessionSpend, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::plan::{Limits, Step, plan};
use super::scan::{Scan, scan};
use super::watch::InterruptWatch;
use crate::agent::ResolvedAgent;
use crate::log::LogView;
use crate::mcp::{McpConnections, McpHub};
use crate::metrics::Metrics;
use crate::pricing::PriceTable;
use crate::status::{StatusSink, compute};
use crate::tools::ToolRunner;

/// Settings of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Turn limits.
    pub limits: Limits,
    /// Model requests tried per failing call (the provider's own HTTP retries come on top).
    pub max_attempts: u32,
    /// Wait before the first retry of a failed call; doubled each time.
    pub retry_base: Duration,
    /// Longest wait between retries.
    pub retry_max: Duration,
    /// Compact the context when it is estimated above this many tokens; never when `None`.
    pub compaction_budget: Option<u64>,
    /// List prices, for each request's estimated cost.
    pub prices: Arc<PriceTable>,
    /// Reads the files messages attach; without it the model gets a note in place of each.
    pub attachments: Option<Arc<crate::attachments::AttachmentLoader>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_attempts: 3,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(30),
            compaction_budget: Some(150_000),
            prices: Arc::default(),
            attachments: None,
        }
    }
}

/// Decides whether a tool may start: a replica's lease outlives its beats by a fraction of a second only, so each
/// tool waits until the replica beats again and runs only if it was not reaped meanwhile (a model call needs no
/// gate: what it appends is fenced by the session's token).
pub trait ToolGate: Send + Sync {
    /// Waits until a tool may start; false: it must not (the replica was reaped, or stopped beating).
    fn may_run_tool(&self) -> futures::future::BoxFuture<'_, bool>;
}

/// The gate of a run whose lease needs no liveness (a local harness, tests): always open.
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysOpen;

impl ToolGate for AlwaysOpen {
    fn may_run_tool(&self) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(std::future::ready(true))
    }
}

/// How a session run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing left to do: the session is idle (or waits for the client).
    Idle,
    /// Another writer took the session over (fenced): this run wrote nothing more.
    Lost,
    /// Stopped because `cancel` fired (shutdown or lease loss); the log is consistent, the turn may be unfinished.
    Cancelled,
    /// The session log failed (Redis unreachable or slow); the turn may be unfinished. Retry later.
    Failed(String),
}

/// The turn engine. One per process, shared by every session it works on.
pub struct Engine {
    store: Store,
    tools: Arc<dyn ToolRunner>,
    status: Arc<dyn StatusSink>,
    config: EngineConfig,
    metrics: Metrics,
    mcp: McpHub,
    /// Session status writes still under way, of runs that ended without waiting for them.
    status_writes: tokio_util::task::TaskTracker,
    /// Logs of recently run sessions, so a wake-up reads only what was appended since.
    logs: crate::log::LogCache,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why a step stopped the run.
enum Stop {
    Outcome(Outcome),
}

impl From<LogError> for Stop {
    fn from(err: LogError) -> Self {
        match err {
            LogError::Fenced { .. } | LogError::LeaseLost { .. } => Stop::Outcome(Outcome::Lost),
            other => Stop::Outcome(Outcome::Failed(other.to_string())),
        }
    }
}

/// One session's run: what the steps share.
struct Run<'a> {
    engine: &'a Engine,
    namespace: &'a str,
    session: &'a str,
    /// The session's agent, with the tools of its connected MCP servers once connected.
    agent: ResolvedAgent,
    /// The MCP servers of this run: connected before the first model call.
    mcp: Option<McpConnections>,
    token: FencingToken,
    cancel: &'a CancellationToken,
    gate: &'a dyn ToolGate,
    view: LogView,
    armed: HashSet<EventId>,
    interrupts: InterruptWatch,
    report_status: bool,
    skip_compaction: bool,
    limits: Limits,
    /// The span of the turn under way, with the position of the event that opened it.
    turn: Option<(usize, tracing::Span)>,
    /// Whether this run already waited for the session's sandbox (eager provisioning).
    sandbox_prepared: bool,
    /// Whether the client was told in this run that the session's sandbox cannot be scheduled (once per run: an
    /// eager `prepare` and the first tool call may both wait for the same pod).
    sandbox_wait_told: std::sync::atomic::AtomicBool,
    /// This session's spend as last recorded in its agent's ledger (agents with a `totalBudget`).
    recorded_spend: Option<Spent>,
}

impl Engine {
    /// An engine appending to `store`, running tools with `tools` and reporting status to `status`.
    pub fn new(
        store: Store,
        tools: Arc<dyn ToolRunner>,
        status: Arc<dyn StatusSink>,
        config: EngineConfig,
        metrics: Metrics,
    ) -> Self {
        Self {
            store,
            tools,
            status,
            config,
            metrics,
            mcp: McpHub::default(),
            status_writes: tokio_util::task::TaskTracker::new(),
            logs: crate::log::LogCache::default(),
        }
    }

    /// Keeps at most `bytes` of sessions' logs between their turns (default [`crate::log::DEFAULT_BUDGET`]).
    #[must_use]
    pub fn with_log_cache(mut self, bytes: usize) -> Self {
        self.logs = crate::log::LogCache::new(bytes);
        self
    }

    /// The logs kept between turns.
    pub fn log_cache(&self) -> &crate::log::LogCache {
        &self.logs
    }

    fn count_log_cache(&self) {
        self.metrics
            .log_cache_bytes
            .set(i64::try_from(self.logs.bytes()).unwrap_or(i64::MAX));
        self.metrics
            .log_cache_sessions
            .set(i64::try_from(self.logs.len()).unwrap_or(i64::MAX));
    }

    /// Waits, at most `within`, for the session status writes still under way (on shutdown: a run ends without
    /// waiting for its last one, so its lease goes back before the API server answers).
    pub async fn finish_status_writes(&self, within: Duration) {
        self.status_writes.close();
        if tokio::time::timeout(within, self.status_writes.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.status_writes.len(),
                "shutting down with session status writes under way"
            );
        }
    }

    /// What runs this engine's built-in tool calls.
    pub fn tools(&self) -> &Arc<dyn ToolRunner> {
        &self.tools
    }

    /// Connects sessions to their agents' MCP servers with `hub` (by default without credentials).
    pub fn with_mcp(mut self, hub: McpHub) -> Self {
        self.mcp = hub;
        self
    }

    /// Writes what all sessions of `agent` spent together to the Agent's status (a failure is logged: the ledger
    /// stays the truth).
    async fn report_agent_spent(&self, namespace: &str, agent: &str) {
        match self.store.spend_by_session(namespace, agent).await {
            Ok(ledger) => {
                let spent = crate::pricing::sum_of(ledger.into_values());
                self.status.report_agent_spent(namespace, agent, spent).await;
            }
            Err(err) => tracing::warn!(namespace, agent, error = %err, "cannot read the agent's spend"),
        }
    }

    /// Works on `session` as the holder of fencing token `token` until nothing is left to do, the session is taken
    /// over, the log fails, or `cancel` fires.
    pub async fn run(
        &self,
        namespace: &str,
        session: &str,
        agent: &ResolvedAgent,
        token: FencingToken,
        cancel: &CancellationToken,
    ) -> Outcome {
        self.run_gated(namespace, session, agent, token, cancel, &AlwaysOpen)
            .await
    }

    /// [`Engine::run`], starting each tool only once `gate` allows it.
    pub async fn run_gated(
        &self,
        namespace: &str,
        session: &str,
        agent: &ResolvedAgent,
        token: FencingToken,
        cancel: &CancellationToken,
        gate: &dyn ToolGate,
    ) -> Outcome {
        let kept = self.logs.take(namespace, session);
        self.metrics
            .log_cache_lookups
            .get_or_create(&crate::metrics::ResultLabel {
                result: if kept.is_some() { "hit" } else { "miss" },
            })
            .inc();
        self.count_log_cache();
        let mut view = kept.unwrap_or_else(|| LogView::new(&self.store, namespace, session));
        if let Err(err) = view.refresh().await {
            self.metrics.redis_errors.inc();
            return Outcome::Failed(err.to_string());
        }
        let interrupts = InterruptWatch::start(self.store.session(namespace, session), view.last_cursor());
        let mut run = Run {
            engine: self,
            namespace,
            session,
            agent: agent.clone(),
            mcp: None,
            token,
            cancel,
            gate,
            view,
            armed: HashSet::new(),
            interrupts,
            report_status: false,
            skip_compaction: false,
            limits: Limits {
                budget: agent.budget.clone(),
                ..self.config.limits.clone()
            },
            turn: None,
            sandbox_prepared: false,
            sandbox_wait_told: std::sync::atomic::AtomicBool::new(false),
            recorded_spend: None,
        };
        let span = tracing::info_span!("session", namespace, session);
        let result = run.run().instrument(span).await;
        if agent.spec.total_budget.is_some() {
            self.report_agent_spent(namespace, &agent.name).await;
        }
        if let Some(connections) = run.mcp.take() {
            connections.close().await;
        }
        match result {
            Ok(()) => {
                // Only a run that ended well: its view holds exactly the log up to its last entry.
                self.logs.put(namespace, session, run.view);
                self.count_log_cache();
                Outcome::Idle
            }
            Err(Stop::Outcome(outcome)) => {
                if matches!(outcome, Outcome::Failed(_)) {
                    self.metrics.redis_errors.inc();
                }
                outcome
            }
        }
    }
}

impl Run<'_> {
    async fn run(&mut self) -> Result<(), Stop> {
        self.mark_resumed().await?;
        loop {
            if self.cancel.is_cancelled() {
                return Err(Stop::Outcome(Outcome::Cancelled));
            }
            if self.report_status {
                self.report_status = false;
                self.start_status_report();
            }
            let scan = scan(self.view.entries(), &self.agent.tools);
            self.track_agent_spend(scan.spent).await?;
            let turn = self.turn_span(&scan);
            match plan(&scan, &self.armed, &self.limits) {
                Step::Done => return Ok(()),
                Step::Append { events, arm } => {
                    self.append(events).instrument(turn).await?;
                    self.armed.extend(arm);
                }
                Step::Model {
                    span: Some(span),
                    failed_attempts,
                } => {
                    self.model_call(&scan, span, failed_attempts)
                        .instrument(turn)
                        .await?
                }
                Step::Model {
                    span: None,
                    failed_attempts,
                } => {
                    self.start_model_call(&scan, failed_attempts)
                        .instrument(turn)
                        .await?
                }
                Step::RunTool(tool) => self.run_tool(tool).instrument(turn).await?,
                Step::RecoverTool(tool) => self.recover_tool(tool).instrument(turn).await?,
            }
            self.view.refresh().await?;
        }
    }

    /// The span of the current turn: one per turn, named by the event that opened it, continuing the trace the
    /// gateway recorded with that event (its private `traceparent`).
    fn turn_span(&mut self, scan: &Scan) -> tracing::Span {
        let Some(start) = scan.turn_start else {
            return self
                .turn
                .as_ref()
                .map_or_else(tracing::Span::current, |(_, s)| s.clone());
        };
        if let Some((at, span)) = &self.turn
            && *at == start
        {
            return span.clone();
        }
        let entry = &self.view.entries()[start];
        let span = tracing::info_span!(
            "turn",
            namespace = self.namespace,
            session = self.session,
            turn = %entry.id,
        );
        if let Some(traceparent) = entry.hidden_str("traceparent") {
            corral_runtime::telemetry::set_parent(&span, traceparent);
        }
        self.turn = Some((start, span.clone()));
        span
    }

    async fn append(&mut self, events: Vec<NewEvent>) -> Result<(), Stop> {
        let status_change = events
            .iter()
            .any(|e| e.body.props().is_some_and(|p| p.session_status));
        let n = events.len() as u64;
        let stops: Vec<String> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::SessionStatusIdle(idle) => Some(stop_reason_name(&idle.stop_reason)),
                _ => None,
            })
            .collect();
        let appended = self
            .engine
            .store
            .session(self.namespace, self.session)
            .append(self.token, events)
            .await;
        match appended {
            Err(err) if full::is_cap(&err) => return Err(self.close_on_cap(err).await),
            other => other?,
        };
        self.engine.metrics.events_appended.inc_by(n);
        for stop in stops {
            self.engine.metrics.turn(&stop);
        }
        self.report_status |= status_change;
        Ok(())
    }

    /// Waits for `duration` unless an interrupt comes or the run is cancelled. Returns whether it waited it out.
    async fn pause(&mut self, duration: Duration) -> Result<bool, Stop> {
        let seen = self.view.last_cursor();
        tokio::select! {
            () = tokio::time::sleep(duration) => Ok(true),
            () = self.interrupts.wait_newer_than(seen) => Ok(false),
            () = self.cancel.cancelled() => Err(Stop::Outcome(Outcome::Cancelled)),
        }
    }

    /// With an agent-wide budget: records this session's spend in the agent's ledger when it changed, and reads
    /// what the agent's other sessions spent, for the plan's budget check.
    async fn track_agent_spend(&mut self, spent: Spent) -> Result<(), Stop> {
        let Some(total) = self.agent.spec.total_budget.clone() else {
            return Ok(());
        };
        let store = &self.engine.store;
        if self.recorded_spend != Some(spent) {
            let spend = SessionSpend {
                tokens: spent.tokens,
                cents: spent.cents,
            };
            store
                .record_spend(self.namespace, &self.agent.name, self.session, spend)
                .await?;
            self.recorded_spend = Some(spent);
        }
        let others = store
            .spend_by_session(self.namespace, &self.agent.name)
            .await?
            .into_iter()
            .filter(|(session, _)| session != self.session)
            .map(|(_, spend)| spend);
        let others = crate::pricing::sum_of(others);
        self.limits.agent_total = Some((total, others));
        Ok(())
    }

    /// Starts writing the Session status the log shows now, in the background: neither the turn nor the run's end
    /// waits for the API server (the writer keeps writes in log order, see `StatusWriter`).
    fn start_status_report(&self) {
        let fields = compute(self.view.entries());
        let status = self.engine.status.clone();
        let (namespace, session) = (self.namespace.to_owned(), self.session.to_owned());
        self.engine
            .status_writes
            .spawn(async move { status.report(&namespace, &session, fields).await }.in_current_span());
    }
}

/// The `type` of a stop reason, for metrics.
fn stop_reason_name(stop: &StopReason) -> String {
    serde_json::to_value(stop)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "other".to_owned())
}
