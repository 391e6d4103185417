//! The engine's I/O loop: refresh the log, plan, act, append; until the plan says there is nothing to do.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_api::budget::{Budget, Money, Spent};
use corral_api::events::{
    AgentCustomToolUse, AgentMcpToolUse, AgentMessage, AgentToolUse, ContentBlock, Empty, EventBody, EventId,
    ModelUsage, Permission, RetryStatus, StopReason, Usage,
};
use corral_api::events::{CacheCreation, Cost};
use corral_session::{Error as LogError, FencingToken, NewEvent, SessionSpend, Store};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::events::{self, Purpose, Served};
use super::plan::{Limits, Step, plan};
use super::scan::{OpenSpan, Scan, ToolUse, UseKind, scan};
use super::watch::InterruptWatch;
use super::{compaction, context};
use crate::agent::{ResolvedAgent, ToolKind};
use crate::log::LogView;
use crate::log::hidden::{fields, with_hidden};
use crate::mcp::{McpConnections, McpHub};
use crate::metrics::Metrics;
use crate::pricing::PriceTable;
use crate::providers::{self, Block, ProviderError, StopReason as ModelStop, ToolInput, Turn};
use crate::status::{StatusSink, compute};
use crate::tools::{ToolCall, ToolRunner};

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
        }
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
    /// The Session status write under way: written in the background, so a turn does not wait for the API server.
    status_report: Option<tokio::task::JoinHandle<()>>,
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
        }
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
        let mut view = LogView::new(&self.store, namespace, session);
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
            status_report: None,
            recorded_spend: None,
        };
        let span = tracing::info_span!("session", namespace, session);
        let result = run.run().instrument(span).await;
        if let Some(report) = run.status_report.take() {
            let _ = report.await;
        }
        if agent.spec.total_budget.is_some() {
            self.report_agent_spent(namespace, &agent.name).await;
        }
        if let Some(connections) = run.mcp.take() {
            connections.close().await;
        }
        match result {
            Ok(()) => Outcome::Idle,
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
        loop {
            if self.cancel.is_cancelled() {
                return Err(Stop::Outcome(Outcome::Cancelled));
            }
            if self.report_status {
                self.report_status = false;
                self.start_status_report().await;
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
        self.engine
            .store
            .session(self.namespace, self.session)
            .append(self.token, events)
            .await?;
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

    /// Connects the agent's MCP servers (once per run): their tools join the agent's, and each server that is not
    /// available is reported with a `session.error`.
    async fn ensure_mcp(&mut self) -> Result<(), Stop> {
        if self.mcp.is_some() {
            return Ok(());
        }
        let connections = self
            .engine
            .mcp
            .connect(self.namespace, self.session, &self.agent.spec)
            .await;
        for (server, tools) in &connections.tools {
            self.agent.tools.add_mcp_tools(&self.agent.spec, server, tools);
        }
        let errors: Vec<NewEvent> = connections
            .failures
            .iter()
            .map(|f| events::mcp_error(f.kind.error_type(), &f.server, f.message.clone()))
            .collect();
        self.mcp = Some(connections);
        if !errors.is_empty() {
            self.append(errors).await?;
        }
        Ok(())
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

    /// Starts writing the Session status the log shows now, after the previous write (so writes land in order).
    async fn start_status_report(&mut self) {
        if let Some(previous) = self.status_report.take() {
            let _ = previous.await;
        }
        let fields = compute(self.view.entries());
        let status = self.engine.status.clone();
        let (namespace, session) = (self.namespace.to_owned(), self.session.to_owned());
        self.status_report = Some(tokio::spawn(
            async move { status.report(&namespace, &session, fields).await }.in_current_span(),
        ));
    }

    /// With eager provisioning, waits (once per run) until the session's sandbox is ready, so the model is called
    /// only then. A sandbox that cannot be had is logged and left to the first tool call, which reports it.
    async fn ensure_sandbox(&mut self) -> Result<(), Stop> {
        if !self.agent.sandbox_up_front || self.sandbox_prepared {
            return Ok(());
        }
        let prepare = self
            .engine
            .tools
            .prepare(self.namespace, self.session)
            .instrument(tracing::info_span!("sandbox_wait"));
        let outcome = tokio::select! {
            outcome = prepare => outcome,
            () = self.cancel.cancelled() => return Err(Stop::Outcome(Outcome::Cancelled)),
        };
        if let Err(reason) = outcome {
            tracing::warn!(%reason, "the sandbox asked for up front is not ready; the first tool call will ask again");
        }
        self.sandbox_prepared = true;
        Ok(())
    }

    /// Opens the span of the next model request: a compaction when the context is over budget, else the reply.
    async fn start_model_call(&mut self, scan: &Scan, failed_attempts: u32) -> Result<(), Stop> {
        self.ensure_mcp().await?;
        self.ensure_sandbox().await?;
        if failed_attempts > 0 {
            let config = &self.engine.config;
            let factor = 2u32.saturating_pow(failed_attempts.saturating_sub(1).min(16));
            let wait = config.retry_base.saturating_mul(factor).min(config.retry_max);
            if !self.pause(wait).await? {
                return Ok(());
            }
        }
        let purpose = if !self.skip_compaction
            && compaction::cut(
                self.view.entries(),
                scan,
                &self.agent,
                self.engine.config.compaction_budget,
            )
            .is_some()
        {
            Purpose::Compaction
        } else {
            Purpose::Reply
        };
        self.append(vec![events::span_start(purpose)]).await
    }

    /// Counts a model request of this session's model.
    fn count_model(&self, outcome: &str, seconds: Option<f64>) {
        let provider = self.agent.provider.name();
        let model = self.agent.spec.model.id.as_str();
        self.engine
            .metrics
            .model_request(provider, model, outcome, seconds);
    }

    /// Observes the time to first token: from the turn's opening event (entry `start`) to the first agent event just
    /// appended, both as the log's clock says.
    async fn observe_first_token(&mut self, start: usize) {
        let Some(opened) = self.view.entries().get(start).map(|e| e.cursor.millis()) else {
            return;
        };
        if self.view.refresh().await.is_err() {
            return;
        }
        let first = self.view.entries()[start..]
            .iter()
            .find(|e| e.type_name().starts_with("agent."))
            .map(|e| e.cursor.millis());
        if let Some(first) = first {
            let seconds = first.saturating_sub(opened) as f64 / 1000.0;
            self.engine.metrics.time_to_first_token.observe(seconds);
        }
    }

    /// The model serving this session, and what `usage` costs on it.
    fn served(&self, usage: &ModelUsage) -> Served<'_> {
        let provider = self.agent.provider.name();
        let model = self.agent.spec.model.id.as_str();
        let cost_cents = self
            .engine
            .config
            .prices
            .price(provider, model)
            .map(|p| p.cents(usage));
        self.engine
            .metrics
            .record_usage(provider, model, usage, cost_cents);
        Served {
            provider,
            model,
            cost_cents,
        }
    }

    /// Makes the model request of the open span `span` and appends its outcome.
    async fn model_call(&mut self, scan: &Scan, span: OpenSpan, failed_attempts: u32) -> Result<(), Stop> {
        self.ensure_mcp().await?;
        let entries = self.view.entries();
        let request = match span.purpose {
            Purpose::Reply => context::build(entries, span.index, &self.agent),
            Purpose::Compaction => {
                let cut = scan.turn_start.filter(|c| *c < span.index).unwrap_or(span.index);
                compaction::request(entries, cut, &self.agent)
            }
        };
        let seen = self.view.last_cursor();
        if self.interrupts.newer_than(seen) {
            return Ok(());
        }
        let started = Instant::now();
        let request_span = tracing::info_span!(
            "model_request",
            provider = self.agent.provider.name(),
            model = %self.agent.spec.model.id,
            purpose = span.purpose.as_str(),
            input_tokens = tracing::field::Empty,
            output_tokens = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let stream = self.agent.provider.stream(request);
        let result = tokio::select! {
            result = providers::collect(stream).instrument(request_span.clone()) => result,
            () = self.interrupts.wait_newer_than(seen) => {
                self.count_model("interrupted", None);
                return Ok(());
            }
            () = self.cancel.cancelled() => return Err(Stop::Outcome(Outcome::Cancelled)),
        };
        let seconds = Some(started.elapsed().as_secs_f64());
        match &result {
            Ok(turn) => {
                let usage = model_usage(turn);
                let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                request_span.record("input_tokens", int(usage.input_tokens));
                request_span.record("output_tokens", int(usage.output_tokens));
            }
            Err(err) => {
                request_span.record("error", tracing::field::display(err));
            }
        }
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.count_model(outcome, seconds);
        match (span.purpose, result) {
            (Purpose::Reply, Ok(turn)) => {
                let served = self.served(&model_usage(&turn));
                let (batch, arm) = reply_events(&turn, &self.agent, &span.id, scan, &served);
                let first_of_turn = scan.turn_start.is_some_and(|start| {
                    !self.view.entries()[start..]
                        .iter()
                        .any(|e| e.type_name().starts_with("agent."))
                });
                self.append(batch).await?;
                self.armed.extend(arm);
                if first_of_turn && let Some(start) = scan.turn_start {
                    self.observe_first_token(start).await;
                }
            }
            (Purpose::Compaction, Ok(turn)) => {
                let cut = scan.turn_start.filter(|c| *c < span.index).unwrap_or(span.index);
                let first_kept = self.view.entries()[cut].id.clone();
                let usage = model_usage(&turn);
                let served = self.served(&usage);
                self.append(vec![
                    compaction::event(&turn.text(), &first_kept),
                    events::span_end_served(
                        &span.id,
                        usage,
                        false,
                        Some(turn.stop_reason.as_str()),
                        Some(&served),
                    ),
                ])
                .await?;
            }
            (Purpose::Compaction, Err(err)) => {
                tracing::warn!(session = self.session, error = %err, "compaction failed; continuing without it");
                self.skip_compaction = true;
                self.append(vec![events::span_end(
                    &span.id,
                    ModelUsage::default(),
                    true,
                    None,
                )])
                .await?;
            }
            (Purpose::Reply, Err(err)) => {
                let attempts = failed_attempts + 1;
                let exhausted = !err.retryable || attempts >= self.engine.config.max_attempts;
                self.append(failure_events(&span.id, &err, attempts, exhausted))
                    .await?;
            }
        }
        Ok(())
    }

    /// Runs one armed built-in tool call and appends its result.
    async fn run_tool(&mut self, tool: ToolUse) -> Result<(), Stop> {
        let seen = self.view.last_cursor();
        if self.interrupts.newer_than(seen) {
            return Ok(());
        }
        if let (UseKind::Mcp(_), Some(server)) = (tool.kind, tool.server.clone()) {
            return self.run_mcp_tool(tool, &server).await;
        }
        let id = tool.id.to_string();
        let call = ToolCall {
            namespace: self.namespace,
            session: self.session,
            tool_use_id: &id,
            name: &tool.name,
            input: &tool.input,
        };
        let tools = self.engine.tools.clone();
        let started = Instant::now();
        let metrics = &self.engine.metrics;
        let tool_span = tracing::info_span!(
            "tool_call",
            tool = %tool.name,
            tool_use_id = %id,
            is_error = tracing::field::Empty,
        );
        let output = tokio::select! {
            output = tools.execute(call).instrument(tool_span.clone()) => output,
            () = self.interrupts.wait_newer_than(seen) => {
                metrics.tool_call(&tool.name, "interrupted", None);
                return Ok(());
            }
            () = self.cancel.cancelled() => return Err(Stop::Outcome(Outcome::Cancelled)),
        };
        tool_span.record("is_error", output.is_error);
        let outcome = if output.is_error { "error" } else { "ok" };
        metrics.tool_call(&tool.name, outcome, Some(started.elapsed().as_secs_f64()));
        self.append(vec![events::tool_result(
            &tool.id,
            output.content,
            output.is_error,
        )])
        .await?;
        self.armed.remove(&tool.id);
        Ok(())
    }
}

impl Run<'_> {
    /// Runs one armed MCP tool call and appends its `agent.mcp_tool_result`.
    async fn run_mcp_tool(&mut self, tool: ToolUse, server: &str) -> Result<(), Stop> {
        self.ensure_mcp().await?;
        let seen = self.view.last_cursor();
        if self.interrupts.newer_than(seen) {
            return Ok(());
        }
        let Some(connections) = self.mcp.as_ref() else {
            return Ok(());
        };
        let started = std::time::Instant::now();
        let output = tokio::select! {
            output = connections.call(server, &tool.name, &tool.input) => output,
            () = self.interrupts.wait_newer_than(seen) => {
                self.engine.metrics.tool_call(&tool.name, "interrupted", None);
                return Ok(());
            }
            () = self.cancel.cancelled() => return Err(Stop::Outcome(Outcome::Cancelled)),
        };
        self.engine.metrics.tool_call(
            &tool.name,
            if output.is_error { "error" } else { "ok" },
            Some(started.elapsed().as_secs_f64()),
        );
        self.append(vec![events::mcp_tool_result(
            &tool.id,
            output.content,
            output.is_error,
        )])
        .await?;
        self.armed.remove(&tool.id);
        Ok(())
    }
}

/// The `type` of a stop reason, for metrics.
fn stop_reason_name(stop: &StopReason) -> String {
    serde_json::to_value(stop)
        .ok()
        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "other".to_owned())
}

/// The session's list cost to show: known, and for at least one token.
pub fn list_cost(spent: Spent) -> Option<Money> {
    spent.cents.filter(|_| spent.tokens > 0).map(Money::from_cents)
}

fn model_usage(turn: &Turn) -> ModelUsage {
    let usage = turn.usage.unwrap_or_default();
    ModelUsage {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
        speed: None,
    }
}

/// The events recording a failed model request: the span closed as failed, the error, and either the turn's end
/// (`retries_exhausted`) or `session.status_rescheduled`.
fn failure_events(span: &EventId, err: &ProviderError, attempts: u32, exhausted: bool) -> Vec<NewEvent> {
    let retry = if exhausted {
        RetryStatus::Exhausted
    } else {
        RetryStatus::Retrying
    };
    let message = if exhausted {
        format!("{} (after {attempts} attempts)", err.message)
    } else {
        format!("{} (attempt {attempts}; retrying)", err.message)
    };
    vec![
        events::span_end(span, ModelUsage::default(), true, None),
        events::error(err.kind.session_error_type(), message, retry),
        if exhausted {
            events::idle(StopReason::RetriesExhausted)
        } else {
            events::rescheduled()
        },
    ]
}

/// The batch recording a model reply, and the tool uses it authorises to run. `before` is the log's scan before the
/// reply (for the cumulative usage), `served` the model and cost of the request.
pub fn reply_events(
    turn: &Turn,
    agent: &ResolvedAgent,
    span: &EventId,
    before: &Scan,
    served: &Served<'_>,
) -> (Vec<NewEvent>, Vec<EventId>) {
    let mut batch: Vec<NewEvent> = Vec::new();
    let mut arm = Vec::new();
    let mut text: Vec<ContentBlock> = Vec::new();
    let flush = |text: &mut Vec<ContentBlock>, batch: &mut Vec<NewEvent>| {
        if !text.is_empty() {
            batch.push(
                EventBody::AgentMessage(AgentMessage {
                    content: std::mem::take(text),
                    session_thread_id: None,
                })
                .into(),
            );
        }
    };
    let cut_off = turn.stop_reason == ModelStop::MaxTokens;
    for block in &turn.content {
        match block {
            Block::Text { text: t } => text.push(ContentBlock::text(t.clone())),
            Block::Thinking { thinking, signature } => {
                flush(&mut text, &mut batch);
                let hidden = fields([
                    ("thinking", thinking.clone().into()),
                    ("signature", signature.clone().map_or(Value::Null, Value::from)),
                ]);
                batch.push(with_hidden(EventBody::AgentThinking(Empty {}), hidden).into());
            }
            Block::RedactedThinking { data } => {
                flush(&mut text, &mut batch);
                let hidden = fields([("redacted", data.clone().into())]);
                batch.push(with_hidden(EventBody::AgentThinking(Empty {}), hidden).into());
            }
            Block::ToolUse { id, name, input } => {
                flush(&mut text, &mut batch);
                let invalid = turn
                    .tool_calls
                    .iter()
                    .find(|c| c.id == *id)
                    .and_then(|c| match &c.input {
                        ToolInput::Invalid { error, .. } => Some(error.clone()),
                        ToolInput::Valid(_) => None,
                    });
                let event_id = EventId::generate();
                let problem = match (&invalid, cut_off) {
                    (Some(error), _) => Some(format!(
                        "The tool input was not valid JSON ({error}); the call was not run. Send the call again \
                         with valid JSON input."
                    )),
                    (None, true) => Some(
                        "The reply was cut off at the output token limit, so this call may be incomplete; it was \
                         not run."
                            .to_owned(),
                    ),
                    (None, false) => None,
                };
                match agent.tools.kind(name) {
                    ToolKind::Mcp {
                        server,
                        permission,
                        evaluation,
                    } => {
                        batch.push(NewEvent::with_id(
                            event_id.clone(),
                            EventBody::AgentMcpToolUse(AgentMcpToolUse {
                                mcp_server_name: server,
                                name: name.clone(),
                                input: input.clone(),
                                evaluated_permission: Some(permission),
                                evaluation: Some(evaluation),
                                session_thread_id: None,
                            }),
                        ));
                        if let Some(problem) = problem {
                            batch.push(events::error_for(true, &event_id, problem));
                        } else if permission == Permission::Allow {
                            arm.push(event_id);
                        }
                    }
                    ToolKind::Custom if problem.is_none() => {
                        batch.push(NewEvent::with_id(
                            event_id,
                            EventBody::AgentCustomToolUse(AgentCustomToolUse {
                                name: name.clone(),
                                input: input.clone(),
                                session_thread_id: None,
                            }),
                        ));
                    }
                    kind => {
                        let (permission, evaluation) = match kind {
                            ToolKind::Builtin {
                                permission,
                                evaluation,
                            } => (permission, Some(evaluation)),
                            ToolKind::Custom | ToolKind::Mcp { .. } => (Permission::Allow, None),
                            ToolKind::Denied => (Permission::Deny, None),
                        };
                        batch.push(NewEvent::with_id(
                            event_id.clone(),
                            EventBody::AgentToolUse(AgentToolUse {
                                name: name.clone(),
                                input: input.clone(),
                                evaluated_permission: Some(permission),
                                evaluation,
                                session_thread_id: None,
                            }),
                        ));
                        if let Some(problem) = problem {
                            batch.push(events::tool_error(&event_id, problem));
                        } else if permission == Permission::Deny {
                            batch.push(events::tool_error(
                                &event_id,
                                format!(
                                    "The tool {name:?} is not available to this agent; the call was not run."
                                ),
                            ));
                        } else if permission == Permission::Allow {
                            arm.push(event_id);
                        }
                    }
                }
            }
            Block::Image { .. } | Block::ToolResult { .. } => {}
        }
    }
    flush(&mut text, &mut batch);
    let usage = model_usage(turn);
    batch.push(events::span_end_served(
        span,
        usage.clone(),
        false,
        Some(turn.stop_reason.as_str()),
        Some(served),
    ));
    let total_before = &before.usage;
    let mut spent = before.spent;
    crate::pricing::add_request(&mut spent, &usage, served.cost_cents);
    let total = Usage {
        input_tokens: Some(total_before.input_tokens + usage.input_tokens),
        output_tokens: Some(total_before.output_tokens + usage.output_tokens),
        cache_read_input_tokens: Some(total_before.cache_read_input_tokens + usage.cache_read_input_tokens),
        cache_creation: Some(CacheCreation {
            ephemeral_5m_input_tokens: Some(
                total_before.cache_creation_input_tokens + usage.cache_creation_input_tokens,
            ),
            ephemeral_1h_input_tokens: None,
        }),
        list_cost: list_cost(spent).map(|m| Cost {
            amount: m.amount,
            currency: m.currency,
        }),
        ..Usage::default()
    };
    batch.push(events::usage(total, agent.budget.as_ref().map(Budget::to_api)));
    (batch, arm)
}
