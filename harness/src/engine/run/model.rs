//! The model requests of a run: opening a request's span (a compaction when the context is over budget, else the
//! reply), making the request, and appending what came back.

use std::time::Instant;

use corral_api::events::ModelUsage;
use tracing::Instrument;

use super::{Outcome, Run, Stop};
use crate::engine::events::{self, Purpose, Served};
use crate::engine::reply::{failure_events, model_usage, reply_events};
use crate::engine::scan::{OpenSpan, Scan};
use crate::engine::{compaction, context};
use crate::providers;

impl Run<'_> {
    /// Opens the span of the next model request: a compaction when the context is over budget, else the reply.
    pub(super) async fn start_model_call(&mut self, scan: &Scan, failed_attempts: u32) -> Result<(), Stop> {
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
    pub(super) async fn model_call(
        &mut self,
        scan: &Scan,
        span: OpenSpan,
        failed_attempts: u32,
    ) -> Result<(), Stop> {
        self.ensure_mcp().await?;
        let entries = self.view.entries();
        let request = match span.purpose {
            Purpose::Reply => {
                let files = match &self.engine.config.attachments {
                    // A gateway that cannot answer now is tried again with the session's next wake-up.
                    Some(loader) => {
                        let context = &entries[..span.index.min(entries.len())];
                        let from = context::context_start(context);
                        loader
                            .load(self.namespace, self.session, &context[from..])
                            .await
                            .map_err(|why| Stop::Outcome(Outcome::Failed(why)))?
                    }
                    None => crate::attachments::Attachments::new(),
                };
                context::build_with(entries, span.index, &self.agent, &files)
            }
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
}
