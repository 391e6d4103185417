//! Prometheus metrics of the harness, registered under the prefix `corral_harness` (the text format adds `_total`
//! to counters):
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `events_appended_total` | | events appended to session logs |
//! | `turns_total` | `stop_reason` | turns ended (`end_turn`, `requires_action`, `budget_reached`, ...) |
//! | `time_to_first_token_seconds` | | histogram: a turn's opening user event in the log → its first agent event |
//! | `model_requests_total` | `provider`, `model`, `outcome` | model requests (`ok`, `error`, `interrupted`) |
//! | `model_request_duration_seconds` | `provider`, `model` | histogram of model request durations |
//! | `model_tokens_total` | `provider`, `model`, `kind` | tokens by kind: `input`, `output`, `cache_read`, `cache_write` |
//! | `model_list_cost_usd_total` | `provider`, `model` | estimated list cost of priced requests, in US dollars |
//! | `tool_calls_total` | `tool`, `outcome` | built-in tool calls (`ok`, `error`, `interrupted`) |
//! | `tool_call_duration_seconds` | `tool` | histogram of tool call durations (sandbox provisioning included) |
//! | `wakeups_total` | `outcome` | wake-ups taken, by how their session run ended |
//! | `active_sessions` | | sessions being worked on now |
//! | `redis_errors_total` | | session runs stopped, and queue samples lost, by a failing session log (Redis) |
//! | `wakeup_queue_depth` | | wake-ups of the namespace waiting or being worked on (sampled every 5 s) |
//! | `wakeup_queue_oldest_age_seconds` | | age of the oldest of them (0 when there is none) |
//! | `session_api_reads_total` | `purpose`, `reason` | Sessions read from the API server because the watch-fed cache could not answer (`purpose`: `agent`, `sandbox`, `files`, `recover`; `reason`: `watch_down`, `not_cached`, `cache_behind`, `no_watch`); 0 on the hot path |
//! | `session_watch_up` | | 1 while the watch of the namespace's Sessions is live, else 0 |
//! | `log_cache_bytes` | | bytes of event JSON of sessions' logs kept between their turns (`--log-cache-mib`) |
//! | `log_cache_sessions` | | sessions whose log is kept |
//! | `log_cache_lookups_total` | `result` | wake-ups that found their session's log kept (`hit`: only new entries read) or not (`miss`: read whole) |

use corral_api::events::ModelUsage;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The `outcome` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `ok`, `error`, `interrupted`, ...
    pub outcome: String,
}

/// The `stop_reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StopLabel {
    /// The idle event's stop reason.
    pub stop_reason: String,
}

/// Which model served a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    /// `anthropic`, `openai` or `scripted`.
    pub provider: String,
    /// The model id.
    pub model: String,
}

/// A model request's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelOutcomeLabels {
    /// `anthropic`, `openai` or `scripted`.
    pub provider: String,
    /// The model id.
    pub model: String,
    /// `ok`, `error` or `interrupted`.
    pub outcome: String,
}

/// Tokens of one kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// `anthropic`, `openai` or `scripted`.
    pub provider: String,
    /// The model id.
    pub model: String,
    /// `input`, `output`, `cache_read` or `cache_write`.
    pub kind: &'static str,
}

/// A tool.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabel {
    /// The tool's name.
    pub tool: String,
}

/// A tool call's outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolOutcomeLabels {
    /// The tool's name.
    pub tool: String,
    /// `ok`, `error` or `interrupted`.
    pub outcome: String,
}

/// Why and for what a Session was read from the API server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionReadLabels {
    /// What needed it: `sandbox`, `files` or `recover`.
    pub purpose: &'static str,
    /// Why the cache could not answer: `watch_down`, `not_cached`, `cache_behind` or `no_watch`.
    pub reason: &'static str,
}

fn seconds_histogram() -> Histogram {
    // 5 ms … about 164 s.
    Histogram::new(exponential_buckets(0.005, 2.0, 16))
}

/// The harness's metrics. Cheap to clone (handles share their values).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Events appended to session logs.
    pub events_appended: Counter,
    /// Turns ended, by stop reason.
    pub turns: Family<StopLabel, Counter>,
    /// A turn's opening user event → its first agent event, in seconds.
    pub time_to_first_token: Histogram,
    /// Model requests by model and outcome.
    pub model_requests: Family<ModelOutcomeLabels, Counter>,
    /// Model request duration in seconds, by model.
    pub model_seconds: Family<ModelLabels, Histogram>,
    /// Tokens by model and kind.
    pub model_tokens: Family<TokenLabels, Counter>,
    /// Estimated list cost in US dollars, by model.
    pub model_cost_usd: Family<ModelLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    /// Tool calls by tool and outcome.
    pub tool_calls: Family<ToolOutcomeLabels, Counter>,
    /// Tool call duration in seconds, by tool.
    pub tool_seconds: Family<ToolLabel, Histogram>,
    /// Wake-ups taken, by how their session run ended.
    pub wakeups: Family<OutcomeLabel, Counter>,
    /// Sessions being worked on now.
    pub active_sessions: Gauge,
    /// Session runs stopped by a failing session log.
    pub redis_errors: Counter,
    /// Wake-ups waiting or being worked on.
    pub queue_depth: Gauge,
    /// Age of the oldest wake-up, in seconds.
    pub queue_oldest_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// Session leases this replica holds (the HPA's load signal: running turns hold no wake-up).
    pub held_sessions: Gauge,
    /// Sessions this replica took over from reaped replicas.
    pub reaped_sessions: Counter,
    /// From a reaped replica's last beat to its sessions taken over.
    pub takeover_seconds: Histogram,
    /// Times this replica fenced itself (no new lease, no tool start) because its liveness beats failed.
    pub self_fenced: Counter,
    /// Sessions read from the API server instead of the watch-fed cache, by purpose and reason.
    pub session_api_reads: Family<SessionReadLabels, Counter>,
    /// 1 while the watch of the namespace's Sessions is live.
    pub session_watch_up: Gauge,
    /// Bytes of event JSON kept between turns.
    pub log_cache_bytes: Gauge,
    /// Sessions whose log is kept between turns.
    pub log_cache_sessions: Gauge,
    /// Runs that found their session's log kept, by `result` (`hit`, `miss`).
    pub log_cache_lookups: Family<ResultLabel, Counter>,
}

/// Labels of [`Metrics::log_cache_lookups`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `hit` or `miss`.
    pub result: &'static str,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            events_appended: Counter::default(),
            turns: Family::default(),
            time_to_first_token: seconds_histogram(),
            model_requests: Family::default(),
            model_seconds: Family::new_with_constructor(seconds_histogram),
            model_tokens: Family::default(),
            model_cost_usd: Family::default(),
            tool_calls: Family::default(),
            tool_seconds: Family::new_with_constructor(seconds_histogram),
            wakeups: Family::default(),
            active_sessions: Gauge::default(),
            redis_errors: Counter::default(),
            queue_depth: Gauge::default(),
            queue_oldest_age: Gauge::default(),
            held_sessions: Gauge::default(),
            reaped_sessions: Counter::default(),
            takeover_seconds: Histogram::new(exponential_buckets(0.05, 1.5, 16)),
            self_fenced: Counter::default(),
            session_api_reads: Family::default(),
            session_watch_up: Gauge::default(),
            log_cache_bytes: Gauge::default(),
            log_cache_sessions: Gauge::default(),
            log_cache_lookups: Family::default(),
        }
    }
}

impl Metrics {
    /// Registers every metric in `registry` (prefix it with `corral_harness`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "events_appended",
            "Events appended to session logs",
            self.events_appended.clone(),
        );
        registry.register("turns", "Turns ended, by stop reason", self.turns.clone());
        registry.register(
            "time_to_first_token_seconds",
            "Time from a turn's opening user event to its first agent event",
            self.time_to_first_token.clone(),
        );
        registry.register(
            "model_requests",
            "Model requests by provider, model and outcome",
            self.model_requests.clone(),
        );
        registry.register(
            "model_request_duration_seconds",
            "Model request duration",
            self.model_seconds.clone(),
        );
        registry.register(
            "model_tokens",
            "Tokens used, by provider, model and kind",
            self.model_tokens.clone(),
        );
        registry.register(
            "model_list_cost_usd",
            "Estimated list cost of model requests priced by the price table, in US dollars",
            self.model_cost_usd.clone(),
        );
        registry.register(
            "tool_calls",
            "Built-in tool calls by tool and outcome",
            self.tool_calls.clone(),
        );
        registry.register(
            "tool_call_duration_seconds",
            "Built-in tool call duration, sandbox provisioning included",
            self.tool_seconds.clone(),
        );
        registry.register("wakeups", "Wake-ups taken, by outcome", self.wakeups.clone());
        registry.register(
            "active_sessions",
            "Sessions being worked on",
            self.active_sessions.clone(),
        );
        registry.register(
            "redis_errors",
            "Session runs stopped, and queue samples lost, by a failing session log (Redis)",
            self.redis_errors.clone(),
        );
        registry.register(
            "wakeup_queue_depth",
            "Wake-ups of the namespace waiting or being worked on",
            self.queue_depth.clone(),
        );
        registry.register(
            "wakeup_queue_oldest_age_seconds",
            "Age of the oldest wake-up of the namespace",
            self.queue_oldest_age.clone(),
        );
        registry.register(
            "held_sessions",
            "Session leases this replica holds",
            self.held_sessions.clone(),
        );
        registry.register(
            "reaped_sessions",
            "Sessions taken over from dead replicas by this replica",
            self.reaped_sessions.clone(),
        );
        registry.register(
            "takeover_seconds",
            "Time from a dead replica's last liveness beat to its sessions taken over",
            self.takeover_seconds.clone(),
        );
        registry.register(
            "self_fenced",
            "Times this replica fenced itself (no new lease, no tool start) because its liveness beats failed",
            self.self_fenced.clone(),
        );
        registry.register(
            "session_api_reads",
            "Sessions read from the API server because the watch-fed cache could not answer, by purpose and reason",
            self.session_api_reads.clone(),
        );
        registry.register(
            "session_watch_up",
            "1 while the watch of the namespace's Sessions is live",
            self.session_watch_up.clone(),
        );
        registry.register(
            "log_cache_bytes",
            "Bytes of event JSON of sessions' logs kept between their turns",
            self.log_cache_bytes.clone(),
        );
        registry.register(
            "log_cache_sessions",
            "Sessions whose log is kept between their turns",
            self.log_cache_sessions.clone(),
        );
        registry.register(
            "log_cache_lookups",
            "Session runs that found their log kept (hit: only new entries read) or not (miss: read whole)",
            self.log_cache_lookups.clone(),
        );
    }

    /// Samples `namespace`'s wake-up queue every `every` until `stop` fires.
    pub async fn watch_queue(
        self,
        store: corral_session::Store,
        namespace: String,
        every: std::time::Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        loop {
            match store.wakeup_queue(&namespace).await {
                Ok(stats) => {
                    self.queue_depth
                        .set(i64::try_from(stats.depth).unwrap_or(i64::MAX));
                    let now = jiff::Timestamp::now().as_millisecond();
                    let age = stats
                        .oldest_ms
                        .and_then(|ms| i64::try_from(ms).ok())
                        .map_or(0.0, |ms| now.saturating_sub(ms).max(0) as f64 / 1000.0);
                    self.queue_oldest_age.set(age);
                }
                Err(err) => {
                    self.redis_errors.inc();
                    tracing::debug!(error = %err, "cannot sample the wake-up queue");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Counts one `outcome` in `family`.
    pub fn count(family: &Family<OutcomeLabel, Counter>, outcome: &str) {
        family
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts a model request of `provider`/`model` ending with `outcome`, taking `seconds` (when it finished).
    pub fn model_request(&self, provider: &str, model: &str, outcome: &str, seconds: Option<f64>) {
        self.model_requests
            .get_or_create(&ModelOutcomeLabels {
                provider: provider.to_owned(),
                model: model.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if let Some(seconds) = seconds {
            self.model_seconds
                .get_or_create(&ModelLabels {
                    provider: provider.to_owned(),
                    model: model.to_owned(),
                })
                .observe(seconds);
        }
    }

    /// Adds a request's tokens and cost (in cents, when priced).
    pub fn record_usage(&self, provider: &str, model: &str, usage: &ModelUsage, cost_cents: Option<f64>) {
        for (kind, n) in [
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_read", usage.cache_read_input_tokens),
            ("cache_write", usage.cache_creation_input_tokens),
        ] {
            self.model_tokens
                .get_or_create(&TokenLabels {
                    provider: provider.to_owned(),
                    model: model.to_owned(),
                    kind,
                })
                .inc_by(n);
        }
        if let Some(cents) = cost_cents {
            self.model_cost_usd
                .get_or_create(&ModelLabels {
                    provider: provider.to_owned(),
                    model: model.to_owned(),
                })
                .inc_by(cents / 100.0);
        }
    }

    /// Counts a tool call of `tool` ending with `outcome`, taking `seconds` (when it finished).
    pub fn tool_call(&self, tool: &str, outcome: &str, seconds: Option<f64>) {
        self.tool_calls
            .get_or_create(&ToolOutcomeLabels {
                tool: tool.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        if let Some(seconds) = seconds {
            self.tool_seconds
                .get_or_create(&ToolLabel {
                    tool: tool.to_owned(),
                })
                .observe(seconds);
        }
    }

    /// Counts a turn ended with `stop_reason`.
    pub fn turn(&self, stop_reason: &str) {
        self.turns
            .get_or_create(&StopLabel {
                stop_reason: stop_reason.to_owned(),
            })
            .inc();
    }
}
