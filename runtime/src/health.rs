//! The `/metrics` (Prometheus text format), `/healthz` (the process serves) and `/readyz` (the component can do its
//! work) endpoints.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
};

use axum::{Router, extract::State, http::StatusCode, http::header, response::IntoResponse, routing::get};
use prometheus_client::{encoding::text::encode, registry::Registry};

/// A flag the component flips when it can serve.
#[derive(Clone, Default, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the component ready or not.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether the component is ready.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Mutex<Registry>>,
    readiness: Readiness,
}

/// The health and metrics HTTP server.
pub struct HealthServer {
    router: Router,
}

impl HealthServer {
    /// A server exposing `registry` and `readiness`.
    pub fn new(registry: Arc<Mutex<Registry>>, readiness: Readiness) -> Self {
        let state = AppState { registry, readiness };
        let router = Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(ready))
            .with_state(state);
        Self { router }
    }

    /// The routes, to serve them or to merge them into a larger router.
    pub fn router(self) -> Router {
        self.router
    }

    /// Serves on `addr` until `shutdown` completes.
    pub async fn serve(
        self,
        addr: SocketAddr,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding the metrics and health server to {addr}: {e}"))?;
        tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut body = String::new();
    let encoded = match state.registry.lock() {
        Ok(registry) => encode(&mut body, &registry).is_ok(),
        Err(_) => false,
    };
    if !encoded {
        return (StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed").into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.readiness.get() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use prometheus_client::metrics::counter::Counter;
    use tower::ServiceExt;

    use super::*;

    async fn get(router: Router, path: &str) -> (StatusCode, String) {
        let req = axum::http::Request::get(path).body(Body::empty()).unwrap();
        let res = router.oneshot(req).await.unwrap();
        let status = res.status();
        let body = to_bytes(res.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn readiness_follows_the_flag_and_metrics_are_exposed() {
        let mut registry = Registry::with_prefix("corral");
        let counter = Counter::<u64>::default();
        registry.register("test_events", "events seen", counter.clone());
        counter.inc();
        let readiness = Readiness::default();
        let server = HealthServer::new(Arc::new(Mutex::new(registry)), readiness.clone()).router();

        assert_eq!(get(server.clone(), "/healthz").await.0, StatusCode::OK);
        assert_eq!(
            get(server.clone(), "/readyz").await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        readiness.set(true);
        assert_eq!(get(server.clone(), "/readyz").await.0, StatusCode::OK);
        let (status, body) = get(server, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("corral_test_events_total 1"), "{body}");
    }
}
