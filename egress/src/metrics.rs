//! The proxy's counters.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: &'static str,
}

/// `corral_egress_requests_total{verdict}`: proxy requests allowed and denied.
#[derive(Clone, Default)]
pub struct Metrics {
    requests: Family<VerdictLabel, Counter>,
}

impl Metrics {
    /// Registers the counters in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "corral_egress_requests",
            "Sandbox egress requests by verdict (allowed, denied)",
            self.requests.clone(),
        );
    }

    /// Counts an allowed request.
    pub fn allowed(&self) {
        self.requests
            .get_or_create(&VerdictLabel { verdict: "allowed" })
            .inc();
    }

    /// Counts a refused request.
    pub fn denied(&self) {
        self.requests
            .get_or_create(&VerdictLabel { verdict: "denied" })
            .inc();
    }
}
