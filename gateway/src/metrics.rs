//! Prometheus metrics of the gateway (prefix `corral_gateway`): requests by route, method and status, request
//! durations, SSE clients and events, rate-limited requests, requests failed by the session log (Redis), Redis
//! memory.
//!
//! Every label has a bounded set of values, whatever clients send: the route is a route template (or `unmatched`)
//! and the method one of [`KNOWN_METHODS`] (or `other`), so a client cannot grow the series without end.

use std::{
    sync::{Arc, Mutex},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::Method,
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use crate::state::AppState;

/// The methods counted under their own name; any other is counted as `other`.
pub const KNOWN_METHODS: [Method; 7] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::HEAD,
    Method::OPTIONS,
];

/// The `method` label of a request: its name when it is one of [`KNOWN_METHODS`], else `other`.
pub fn method_label(method: &Method) -> &'static str {
    KNOWN_METHODS
        .iter()
        .find(|m| *m == method)
        .map_or("other", Method::as_str)
}

/// Labels of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template, for example `/v1/sessions/{session_id}`.
    pub route: String,
    /// The HTTP method, bounded by [`method_label`].
    pub method: &'static str,
    /// The response status code.
    pub status: u16,
}

/// Labels of a duration.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template.
    pub route: String,
}

/// Labels of the follow hub's forgotten bytes: which budget made it forget them (two values, so no tenant name ever
/// becomes a label).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ForgottenLabels {
    /// `tenant_cap` (the tenant held more than `--follow-hub-tenant-bytes`) or `process_budget` (all tenants held
    /// more than `--follow-hub-bytes`; taken from the tenant holding the most).
    pub reason: &'static str,
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
    /// Redis's `used_memory`, read every `--redis-memory-poll`.
    pub redis_used_memory: Gauge,
    /// Redis's `maxmemory` (0: none set).
    pub redis_maxmemory: Gauge,
    /// What the follow hub's windows of recent events hold, in bytes (capped by `--follow-hub-bytes`).
    pub follow_hub_bytes: Gauge,
    /// Bytes of events the follow hub forgot to keep within its budgets, by [`ForgottenLabels`].
    pub follow_hub_forgotten_bytes: Family<ForgottenLabels, Counter>,
    /// Reads of Redis by event streams behind the follow hub's windows.
    pub follow_catch_up_reads: Counter,
    /// Sessions looked up on the API server because the session cache could not tell, by reason
    /// ([`crate::session_cache::ReadReason`]).
    pub session_api_reads: Family<crate::session_cache::SessionReadLabels, Counter>,
    /// Such reads in flight now (each tenant has at most `--follow-catch-up-reads`).
    pub follow_catch_up_reads_in_flight: Gauge,
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
        let redis_used_memory = Gauge::default();
        let redis_maxmemory = Gauge::default();
        let follow_hub_bytes = Gauge::default();
        let follow_hub_forgotten_bytes = Family::<ForgottenLabels, Counter>::default();
        let follow_catch_up_reads = Counter::default();
        let follow_catch_up_reads_in_flight = Gauge::default();
        let session_api_reads = Family::<crate::session_cache::SessionReadLabels, Counter>::default();
        registry.register(
            "session_api_reads",
            "Sessions looked up on the API server because the watch-fed session cache could not tell, by reason",
            session_api_reads.clone(),
        );
        registry.register(
            "follow_hub_forgotten_bytes",
            "Bytes of events the follow hub forgot to keep within a tenant's cap or the process's budget",
            follow_hub_forgotten_bytes.clone(),
        );
        registry.register(
            "follow_catch_up_reads",
            "Reads of Redis by event streams behind the follow hub's windows",
            follow_catch_up_reads.clone(),
        );
        registry.register(
            "follow_catch_up_reads_in_flight",
            "Reads of Redis by event streams behind the follow hub's windows, in flight now",
            follow_catch_up_reads_in_flight.clone(),
        );
        registry.register(
            "follow_hub_bytes",
            "Bytes the follow hub's windows of recent events hold (all streamed logs together)",
            follow_hub_bytes.clone(),
        );
        registry.register(
            "redis_used_memory_bytes",
            "Memory Redis uses (INFO memory used_memory)",
            redis_used_memory.clone(),
        );
        registry.register(
            "redis_maxmemory_bytes",
            "Redis's maxmemory (0: unlimited); at it, appends fail with 503 session_log_out_of_memory",
            redis_maxmemory.clone(),
        );
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
            redis_used_memory,
            redis_maxmemory,
            follow_hub_bytes,
            follow_hub_forgotten_bytes,
            follow_catch_up_reads,
            follow_catch_up_reads_in_flight,
            session_api_reads,
            registry: Arc::new(Mutex::new(registry)),
        }
    }
}

/// Middleware: counts every request by route template, method and status.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    count(&state.metrics, request, next).await
}

/// Runs the request and counts it in `metrics`.
async fn count(metrics: &Metrics, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if response
        .extensions()
        .get::<crate::error::ApiError>()
        .is_some_and(|e| e.session_log_failure)
    {
        metrics.redis_errors.inc();
    }
    metrics
        .durations
        .get_or_create(&RouteLabels { route: route.clone() })
        .observe(start.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            method,
            status,
        })
        .inc();
    response
}

/// Reads Redis's memory use into [`Metrics::redis_used_memory`] and [`Metrics::redis_maxmemory`] every `every`,
/// forever (a failed read is logged at debug and retried at the next tick).
pub async fn watch_redis_memory(store: corral_session::Store, metrics: Metrics, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match store.memory().await {
            Ok(memory) => {
                metrics
                    .redis_used_memory
                    .set(i64::try_from(memory.used).unwrap_or(i64::MAX));
                metrics
                    .redis_maxmemory
                    .set(i64::try_from(memory.max).unwrap_or(i64::MAX));
            }
            Err(err) => tracing::debug!(error = %err, "cannot read Redis's memory use"),
        }
    }
}

/// Copies what the follow hub holds and has done into the `follow_*` metrics every second, forever.
pub async fn watch_follow_hub(store: corral_session::Store, metrics: Metrics) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut last = corral_session::FollowHubStats::default();
    loop {
        tick.tick().await;
        let now = store.follow_hub_stats();
        record_follow_hub(&metrics, &last, &now);
        last = now;
    }
}

/// Sets the follow hub's gauges to `now` and adds to its counters what they grew since `last`.
fn record_follow_hub(
    metrics: &Metrics,
    last: &corral_session::FollowHubStats,
    now: &corral_session::FollowHubStats,
) {
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    metrics.follow_hub_bytes.set(gauge(now.held_bytes));
    metrics
        .follow_catch_up_reads_in_flight
        .set(gauge(now.catch_up_in_flight));
    metrics
        .follow_catch_up_reads
        .inc_by(now.catch_up_reads.saturating_sub(last.catch_up_reads));
    for (reason, now, last) in [
        (
            "tenant_cap",
            now.forgotten_tenant_cap_bytes,
            last.forgotten_tenant_cap_bytes,
        ),
        (
            "process_budget",
            now.forgotten_process_budget_bytes,
            last.forgotten_process_budget_bytes,
        ),
    ] {
        metrics
            .follow_hub_forgotten_bytes
            .get_or_create(&ForgottenLabels { reason })
            .inc_by(now.saturating_sub(last));
    }
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, middleware, routing::get};
    use tower::ServiceExt;

    use super::*;

    /// Serves `/v1/x` and an unmatched fallback through the counting middleware.
    fn app(metrics: Metrics) -> Router {
        Router::new()
            .route("/v1/x", get(|| async { "x" }))
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                let metrics = metrics.clone();
                async move { count(&metrics, request, next).await }
            }))
    }

    fn request_series(metrics: &Metrics) -> usize {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry.lock().expect("registry"))
            .expect("encode");
        text.lines()
            .filter(|l| l.starts_with("corral_gateway_http_requests_total{"))
            .count()
    }

    #[tokio::test]
    async fn random_methods_and_paths_make_a_bounded_number_of_series() {
        let metrics = Metrics::new();
        let app = app(metrics.clone());
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for i in 0..1000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let method = Method::from_bytes(format!("M{seed:X}").as_bytes()).expect("method");
            let path = if i % 2 == 0 {
                "/v1/x".to_owned()
            } else {
                format!("/p{seed}")
            };
            let request = Request::builder()
                .method(method)
                .uri(path)
                .body(Body::empty())
                .expect("request");
            app.clone().oneshot(request).await.expect("response");
        }
        // Two routes (`/v1/x`, `unmatched`) times one method (`other`) times the statuses seen (405, 404).
        let series = request_series(&metrics);
        assert!((1..=4).contains(&series), "{series} series");
        let request = Request::builder()
            .uri("/v1/x")
            .body(Body::empty())
            .expect("request");
        app.oneshot(request).await.expect("response");
        assert_eq!(
            request_series(&metrics),
            series + 1,
            "a known method has its own series"
        );
    }

    #[test]
    fn the_follow_hubs_counters_grow_by_what_it_did_and_its_gauges_show_what_it_holds() {
        let metrics = Metrics::new();
        let first = corral_session::FollowHubStats {
            held_bytes: 1000,
            forgotten_tenant_cap_bytes: 10,
            forgotten_process_budget_bytes: 20,
            catch_up_reads: 3,
            catch_up_in_flight: 2,
            catch_up_peak_per_tenant: 2,
        };
        record_follow_hub(&metrics, &corral_session::FollowHubStats::default(), &first);
        let second = corral_session::FollowHubStats {
            held_bytes: 500,
            forgotten_process_budget_bytes: 70,
            catch_up_reads: 8,
            catch_up_in_flight: 0,
            ..first
        };
        record_follow_hub(&metrics, &first, &second);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &metrics.registry.lock().expect("registry"))
            .expect("encode");
        for line in [
            "corral_gateway_follow_hub_bytes 500",
            "corral_gateway_follow_catch_up_reads_total 8",
            "corral_gateway_follow_catch_up_reads_in_flight 0",
            "corral_gateway_follow_hub_forgotten_bytes_total{reason=\"tenant_cap\"} 10",
            "corral_gateway_follow_hub_forgotten_bytes_total{reason=\"process_budget\"} 70",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }

    #[test]
    fn known_methods_keep_their_names() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(
            method_label(&Method::from_bytes(b"BREW").expect("method")),
            "other"
        );
        assert_eq!(method_label(&Method::TRACE), "other");
    }
}
