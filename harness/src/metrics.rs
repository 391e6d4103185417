//! Prometheus metrics of the harness.

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

/// The harness's metrics. Cheap to clone (handles share their values).
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Events appended to session logs.
    pub events_appended: Counter,
    /// Model requests by outcome.
    pub model_requests: Family<OutcomeLabel, Counter>,
    /// Model request duration in seconds.
    pub model_seconds: Histogram,
    /// Tool calls by outcome.
    pub tool_calls: Family<OutcomeLabel, Counter>,
    /// Wake-ups taken, by how their session run ended.
    pub wakeups: Family<OutcomeLabel, Counter>,
    /// Sessions being worked on now.
    pub active_sessions: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            events_appended: Counter::default(),
            model_requests: Family::default(),
            model_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            tool_calls: Family::default(),
            wakeups: Family::default(),
            active_sessions: Gauge::default(),
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
        registry.register(
            "model_requests",
            "Model requests by outcome",
            self.model_requests.clone(),
        );
        registry.register(
            "model_request_seconds",
            "Model request duration",
            self.model_seconds.clone(),
        );
        registry.register(
            "tool_calls",
            "Built-in tool calls by outcome",
            self.tool_calls.clone(),
        );
        registry.register("wakeups", "Wake-ups taken, by outcome", self.wakeups.clone());
        registry.register(
            "active_sessions",
            "Sessions being worked on",
            self.active_sessions.clone(),
        );
    }

    /// Counts one `outcome` in `family`.
    pub fn count(family: &Family<OutcomeLabel, Counter>, outcome: &str) {
        family
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}
