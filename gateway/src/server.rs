//! The application: routes, layers, and serving with graceful shutdown.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::{HeaderValue, StatusCode, header},
    middleware,
    response::IntoResponse,
    routing::get,
};
use corral_runtime::health::{HealthServer, Readiness};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{self, KeyIndex},
    error::ApiError,
    metrics::{self, Metrics},
    ratelimit::Limiter,
    request_id, routes,
    session_cache::SessionCache,
    state::{AppState, Settings},
};

/// The OpenAPI description of what the gateway serves.
pub const OPENAPI_YAML: &str = include_str!("../openapi.yaml");

async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/yaml"))],
        OPENAPI_YAML,
    )
}

async fn unknown_route() -> ApiError {
    ApiError::for_status(axum::http::StatusCode::NOT_FOUND)
}

async fn ready(State(readiness): State<Readiness>) -> impl IntoResponse {
    if readiness.get() {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

/// The whole application: `/v1/*` behind API keys and rate limits, `/v1/openapi.yaml`, the trace viewer at `/ui/`,
/// `/healthz`, `/readyz`; every response with a `request-id`, every error in the API's envelope. `/metrics` is not
/// here: [`metrics_server`] serves it on its own port.
pub fn router(state: AppState, readiness: Readiness) -> Router {
    let api = routes::v1()
        .route_layer(middleware::from_fn(crate::unsupported::refuse))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .route_layer(middleware::from_fn_with_state(state.clone(), crate::body::limit));
    // Uploads stream past the API's body limit, counted against the file size limit instead.
    let files = routes::files::routes()
        .route_layer(middleware::from_fn(crate::unsupported::refuse))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(DefaultBodyLimit::disable());
    // A skill's files are read whole (they are small): their own limit, above the API's.
    let skills = routes::skills::routes()
        .route_layer(middleware::from_fn(crate::unsupported::refuse))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(DefaultBodyLimit::max(
            crate::skills::upload::MAX_SKILL_BYTES as usize + crate::skills::upload::FRAMING_BYTES,
        ));
    let health = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(readiness);
    Router::new()
        .merge(api)
        .merge(files)
        .merge(skills)
        .merge(routes::harness_files::routes())
        .merge(routes::harness_outputs::routes())
        .merge(routes::harness_skills::routes())
        .route("/v1/openapi.yaml", get(openapi))
        .merge(crate::viewer::routes())
        .fallback(unknown_route)
        .with_state(state.clone())
        .merge(health)
        .layer(middleware::from_fn_with_state(state, metrics::record))
        .layer(middleware::from_fn(request_id::assign))
}

/// `/metrics` (with `/healthz` and `/readyz`), to serve on the metrics port.
pub fn metrics_server(state: &AppState, readiness: Readiness) -> HealthServer {
    HealthServer::new(state.metrics.registry.clone(), readiness)
}

/// Builds the shared state, and spawns the watch that keeps its session cache current (so it needs a Tokio
/// runtime).
pub fn state(
    kube: kube::Client,
    log: corral_session::Store,
    keys: KeyIndex,
    limiter: Limiter,
    settings: Settings,
) -> AppState {
    let metrics = Metrics::new();
    let sessions = SessionCache::new(metrics.session_api_reads.clone());
    tokio::spawn(sessions.watch(kube.clone()));
    AppState {
        kube,
        log,
        keys,
        sessions,
        limiter,
        metrics,
        shutdown: CancellationToken::new(),
        settings: Arc::new(settings),
    }
}

/// Serves `app` on `listener` until `stop` completes; then ends the SSE streams (each gets a final comment line)
/// and waits for in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    readiness: Readiness,
    stop: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    let shutdown = state.shutdown.clone();
    let limiter = state.limiter.clone();
    let shrink = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limiter.shrink();
        }
    });
    let sweep = state.settings.files.clone().map(|files| {
        let interval = files.sweep_interval;
        tokio::spawn(crate::files::sweep::run(
            state.log.connection(),
            files,
            interval,
            shutdown.clone(),
        ))
    });
    let app = router(state, readiness.clone());
    tracing::info!(%addr, "serving the API");
    let graceful = {
        let shutdown = shutdown.clone();
        async move {
            stop.await;
            readiness.set(false);
            shutdown.cancel();
        }
    };
    let result = axum::serve(listener, app).with_graceful_shutdown(graceful).await;
    shrink.abort();
    if let Some(sweep) = sweep {
        sweep.abort();
    }
    result.map_err(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_description_parses_and_covers_every_route() {
        let doc: serde_json::Value = serde_yaml::from_str(OPENAPI_YAML).expect("valid YAML");
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        for (path, methods) in [
            ("/v1/agents", &["post", "get"][..]),
            ("/v1/agents/{agent_id}", &["get", "post"]),
            ("/v1/agents/{agent_id}/archive", &["post"]),
            ("/v1/agents/{agent_id}/versions", &["get"]),
            ("/v1/environments", &["post", "get"]),
            ("/v1/environments/{environment_id}", &["get", "post", "delete"]),
            ("/v1/environments/{environment_id}/archive", &["post"]),
            ("/v1/sessions", &["post", "get"]),
            ("/v1/sessions/{session_id}", &["get", "post", "delete"]),
            ("/v1/sessions/{session_id}/archive", &["post"]),
            ("/v1/sessions/{session_id}/events", &["post", "get"]),
            ("/v1/sessions/{session_id}/events/stream", &["get"]),
            ("/v1/sessions/{session_id}/resources", &["get", "post"]),
            (
                "/v1/sessions/{session_id}/resources/{resource_id}",
                &["get", "post", "delete"],
            ),
            ("/v1/vaults", &["post", "get"]),
            ("/v1/vaults/{vault_id}", &["get", "post", "delete"]),
            ("/v1/vaults/{vault_id}/archive", &["post"]),
            ("/v1/vaults/{vault_id}/credentials", &["post", "get"]),
            (
                "/v1/vaults/{vault_id}/credentials/{credential_id}",
                &["get", "post", "delete"],
            ),
            (
                "/v1/vaults/{vault_id}/credentials/{credential_id}/archive",
                &["post"],
            ),
            ("/v1/files", &["post", "get"]),
            ("/v1/files/{file_id}", &["get", "delete"]),
            ("/v1/files/{file_id}/content", &["get"]),
            ("/v1/openapi.yaml", &["get"]),
        ] {
            for method in methods {
                assert!(
                    paths.get(path).and_then(|p| p.get(*method)).is_some(),
                    "{method} {path}"
                );
            }
        }
        // Every $ref points at something that exists.
        let text = serde_json::to_string(&doc).expect("json");
        for part in text.split("\"$ref\":\"#/").skip(1) {
            let target = &part[..part.find('"').expect("end of ref")];
            let mut node = &doc;
            for segment in target.split('/') {
                node = &node[segment];
            }
            assert!(!node.is_null(), "dangling $ref #/{target}");
        }
    }
}
