//! The operator's metrics (prefix `corral`): reconcile counts, failures by error and durations per controller;
//! Sessions by phase and sandbox pods by state (sampled, see [`crate::gauges`]); sandbox provisioning latency, from
//! the harness's request (`status.sandbox.requestedAt`) to the published endpoint, for warm-pool claims and cold
//! pod creations.

use std::time::Instant;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Labels naming the controller.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ControllerLabels {
    /// `agent`, `environment` or `session`.
    pub controller: &'static str,
}

/// Labels naming the controller and the error.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// `agent`, `environment` or `session`.
    pub controller: &'static str,
    /// The error's metric label.
    pub error: &'static str,
}

/// The `phase` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabel {
    /// `idle`, `running`, `rescheduling` or `terminated`.
    pub phase: &'static str,
}

/// The `state` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    /// See [`crate::gauges::POD_STATES`].
    pub state: &'static str,
}

/// The `kind` label of a provisioning.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProvisionLabel {
    /// `warm` (a warm-pool pod was claimed) or `cold` (a pod was created).
    pub kind: &'static str,
}

/// The operator's metrics.
#[derive(Clone)]
pub struct Metrics {
    reconciles: Family<ControllerLabels, Counter>,
    failures: Family<FailureLabels, Counter>,
    duration: Family<ControllerLabels, Histogram>,
    sessions: Family<PhaseLabel, Gauge>,
    sandbox_pods: Family<StateLabel, Gauge>,
    provisioning: Family<ProvisionLabel, Histogram>,
    sweeper_requeued: Counter,
}

impl Metrics {
    /// Creates the metrics and registers them (as `corral_reconcile_*` with the registry's prefix).
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            reconciles: Family::default(),
            failures: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
            }),
            sessions: Family::default(),
            sandbox_pods: Family::default(),
            provisioning: Family::new_with_constructor(|| {
                Histogram::new([0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0])
            }),
            sweeper_requeued: Counter::default(),
        };
        registry.register(
            "sweeper_requeued",
            "Wake-ups the sweeper enqueued again for sessions with an unanswered event and none pending",
            metrics.sweeper_requeued.clone(),
        );
        registry.register("sessions", "Sessions by phase", metrics.sessions.clone());
        registry.register(
            "sandbox_pods",
            "Sandbox pods by state",
            metrics.sandbox_pods.clone(),
        );
        registry.register(
            "sandbox_provision_duration_seconds",
            "Time from a sandbox request to its published endpoint, by warm claim or cold creation",
            metrics.provisioning.clone(),
        );
        registry.register(
            "reconciles",
            "Reconciles run, by controller",
            metrics.reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Reconciles that failed with a transient error, by controller and error",
            metrics.failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took, by controller",
            metrics.duration.clone(),
        );
        metrics
    }

    /// Starts timing a reconcile of `controller`; the time is recorded when the guard drops.
    pub fn reconcile(&self, controller: &'static str) -> ReconcileTimer {
        self.reconciles
            .get_or_create(&ControllerLabels { controller })
            .inc();
        ReconcileTimer {
            metrics: self.clone(),
            controller,
            start: Instant::now(),
        }
    }

    /// Sets the number of Sessions in `phase`.
    pub fn set_sessions(&self, phase: &'static str, n: i64) {
        self.sessions.get_or_create(&PhaseLabel { phase }).set(n);
    }

    /// Sets the number of sandbox pods in `state`.
    pub fn set_sandbox_pods(&self, state: &'static str, n: i64) {
        self.sandbox_pods.get_or_create(&StateLabel { state }).set(n);
    }

    /// Records a sandbox that became ready `seconds` after it was requested.
    pub fn provisioned(&self, kind: &'static str, seconds: f64) {
        self.provisioning
            .get_or_create(&ProvisionLabel { kind })
            .observe(seconds);
    }

    /// Counts a wake-up the sweeper enqueued again.
    pub fn sweeper_requeued(&self) {
        self.sweeper_requeued.inc();
    }

    /// Counts a failed reconcile.
    pub fn failure(&self, controller: &'static str, error: &'static str) {
        self.failures
            .get_or_create(&FailureLabels { controller, error })
            .inc();
    }
}

/// Records a reconcile's duration when dropped.
pub struct ReconcileTimer {
    metrics: Metrics,
    controller: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let labels = ControllerLabels {
            controller: self.controller,
        };
        self.metrics
            .duration
            .get_or_create(&labels)
            .observe(self.start.elapsed().as_secs_f64());
    }
}
