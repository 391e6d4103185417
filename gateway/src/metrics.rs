//! Prometheus metrics of the gateway (prefix `corral_gateway`): requests by route, method and status, request
//! durations, SSE clients and events, rate-limited requests, requests failed by the session log (Redis).

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::state::AppState;

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template, for example `/v1/sessions/{session_id}`.
    pub route: String,
    /// The HTTP method.
    pub method: String,
    /// The response status code.
    pub status: u16,
}

/// Labels of a duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template.
    pub route: String,
}

/// The gateway's metrics. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    /// Requests answered.
    pub requests: Family<RequestLabels, Counter>,
    /// Seconds until the response head was ready.
    pub durations: Family<RouteLabels, Histogram>,
    /// Open SSE streams.
    pub sse_clients: Gauge,
    /// Events written to SSE streams.
    pub sse_events: Counter,
    /// Requests refused by the rate limit.
    pub rate_limited: Counter,
    /// Requests failed by the session log (Redis).
    pub redis_errors: Counter,
    /// The registry holding them (for `/metrics`).
    pub registry: Arc<Mutex<Registry>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `corral_gateway` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("corral_gateway");
        let requests = Family::<RequestLabels, Counter>::default();
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
        });
        let sse_clients = Gauge::default();
        let sse_events = Counter::default();
        let rate_limited = Counter::default();
        let redis_errors = Counter::default();
        registry.register(
            "redis_errors",
            "Requests failed by the session log (Redis)",
            redis_errors.clone(),
        );
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time until the response head was ready",
            durations.clone(),
        );
        registry.register("sse_clients", "Open SSE event streams", sse_clients.clone());
        registry.register("sse_events", "Events written to SSE streams", sse_events.clone());
        registry.register(
            "rate_limited",
            "Requests refused by the per-key rate limit",
            rate_limited.clone(),
        );
        Self {
            requests,
            durations,
            sse_clients,
            sse_events,
            rate_limited,
            redis_errors,
            registry: Arc::new(Mutex::new(registry)),
        }
    }
}

/// Middleware: counts every request by route template, method and status.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if response
        .extensions()
        .get::<crate::error::ApiError>()
        .is_some_and(|e| e.session_log_failure)
    {
        state.metrics.redis_errors.inc();
    }
    state
        .metrics
        .durations
        .get_or_create(&RouteLabels { route: route.clone() })
        .observe(start.elapsed().as_secs_f64());
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status,
        })
        .inc();
    response
}
