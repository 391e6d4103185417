//! The HTTP surface: `GET /healthz` and `GET /v1/identity` (open), `GET /v1/info`, `POST /v1/execute` and
//! `PUT`/`DELETE /v1/files` and `GET /v1/outputs[/content]` (bearer token).

use std::{path::Path, sync::Arc, time::Instant};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::StatusCode,
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use corral_sandbox_protocol::ToolResult;
use corral_sandbox_protocol::wire::{
    DaemonIdentity, DaemonInfo, EXECUTE_PATH, ExecuteRequest, FILES_PATH, HEALTH_PATH, IDENTITY_PATH,
    INFO_PATH, OUTPUT_CONTENT_PATH, OUTPUTS_PATH,
};
use tower_http::catch_panic::CatchPanicLayer;

use crate::{
    auth::{TokenCheck, require_token},
    calls::{self, Answer, Calls, Mode, Refusal},
    config::Config,
    error::ApiError,
    tools::{ToolName, Toolbox},
};

/// The routes of a daemon running `toolbox`, accepting the token `check` accepts, refusing bodies over
/// `max_body_bytes`.
pub fn router(toolbox: Arc<Toolbox>, check: TokenCheck, max_body_bytes: usize) -> Router {
    let identity = DaemonIdentity {
        token_sha256: check.sha256_hex(),
    };
    let api = Router::new()
        .route(EXECUTE_PATH, post(execute))
        .route(INFO_PATH, get(info))
        .route(OUTPUTS_PATH, get(crate::outputs::list))
        .route(OUTPUT_CONTENT_PATH, get(crate::outputs::content))
        .route(
            FILES_PATH,
            axum::routing::put(crate::files::put)
                .delete(crate::files::delete)
                .get(crate::files::list),
        )
        .route_layer(middleware::from_fn_with_state(check, require_token))
        .with_state(Daemon {
            toolbox,
            calls: Calls::default(),
        });
    Router::new()
        .route(HEALTH_PATH, get(|| async { "ok" }))
        .route(IDENTITY_PATH, get(move || async move { Json(identity) }))
        .merge(api)
        .fallback(|| async { ApiError::not_found("no such route; see the sandbox README for the protocol") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "the sandbox daemon failed while handling this request",
            )
            .into_response()
        }))
}

/// What the authenticated routes share: the tools, and the calls run with them.
#[derive(Clone)]
struct Daemon {
    toolbox: Arc<Toolbox>,
    calls: Calls,
}

async fn info(State(Daemon { toolbox, .. }): State<Daemon>) -> Json<DaemonInfo> {
    Json(DaemonInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        workspace: toolbox.workspace().display().to_string(),
        tools: ToolName::ALL.iter().map(|t| t.as_str().to_owned()).collect(),
    })
}

async fn execute(
    State(daemon): State<Daemon>,
    headers: axum::http::HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // The caller's trace context (W3C `traceparent`), logged with the call so the daemon's lines join the turn's
    // trace.
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 64 && v.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-'))
        .unwrap_or("");
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                "the request body is larger than this daemon accepts (see --max-body-bytes)",
            )
            .into_response();
        }
        Err(rejection) => {
            return ApiError::invalid(format!("unreadable request body: {rejection}")).into_response();
        }
    };
    let request: ExecuteRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return ApiError::invalid(format!(
                "the body must be JSON {{\"tool\": string, \"input\": object, \"tool_use_id\"?: string, \
                 \"fencing_token\"?: integer}}: {e}"
            ))
            .into_response();
        }
    };
    let tool: ToolName = match request.tool.parse() {
        Ok(tool) => tool,
        Err(e) => return ApiError::invalid(e).into_response(),
    };
    let tool_use_id = request.tool_use_id.as_deref().unwrap_or("");
    let started = Instant::now();
    if request.recover && request.tool_use_id.is_none() {
        return ApiError::invalid("recover needs the tool_use_id of the call to recover").into_response();
    }
    let run = daemon.calls.start(
        &daemon.toolbox,
        calls::Request {
            tool,
            input: request.input,
            tool_use_id: request.tool_use_id.as_deref(),
            fencing_token: request.fencing_token,
            mode: if request.recover { Mode::Recover } else { Mode::Run },
        },
    );
    let (run, answer) = match run {
        Ok(run) => run,
        Err(refusal) => {
            tracing::warn!(tool = tool.as_str(), tool_use_id, traceparent, %refusal, "refused a tool call");
            return match refusal {
                Refusal::Unknown(_) => ApiError::not_found(refusal.to_string()),
                Refusal::Fenced { .. } | Refusal::Reused(_) => ApiError::conflict(refusal.to_string()),
            }
            .into_response();
        }
    };
    let mut result = ToolResult::clone(&*run.await);
    let elapsed = started.elapsed();
    tracing::info!(
        tool = tool.as_str(),
        tool_use_id,
        traceparent,
        is_error = result.is_error,
        elapsed_ms = elapsed.as_millis() as u64,
        joined = answer == Answer::Joined,
        "ran a tool"
    );
    result.tool_use_id = request.tool_use_id;
    result.elapsed_us = Some(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    Json(result).into_response()
}

/// Runs the daemon until SIGTERM or Ctrl-C.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let check = config.token_check()?;
    std::fs::create_dir_all(&config.workspace)
        .map_err(|e| anyhow::anyhow!("creating the workspace {}: {e}", config.workspace.display()))?;
    let workspace = std::fs::canonicalize(&config.workspace)
        .map_err(|e| anyhow::anyhow!("resolving the workspace {}: {e}", config.workspace.display()))?;
    let mut shell_env = config
        .packages_dir
        .as_ref()
        .map(|dir| crate::packages::Layout::new(dir).shell_env(|var| std::env::var(var).ok()))
        .unwrap_or_default();
    if let Some(ca) = &config.egress_ca {
        let dir = std::env::temp_dir().join("corral");
        match crate::trust::install(ca, &dir) {
            Ok(env) => shell_env.extend(env),
            Err(e) => {
                tracing::warn!(error = %e, "could not write the egress CA bundle; HTTPS through the proxy may fail")
            }
        }
    }
    let toolbox = Arc::new(
        Toolbox::with_shell_env(workspace.clone(), config.limits.clone(), shell_env)
            .with_egress(config.egress()),
    );
    crate::reaper::start(toolbox.shell().clone());
    crate::outputs::prepare();
    let app = router(toolbox.clone(), check, config.limits.max_body_bytes);
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", config.addr))?;
    let addr = listener.local_addr()?;
    if let Some(path) = &config.addr_file {
        write_whole(path, &addr.to_string())?;
    }
    tracing::info!(%addr, workspace = %workspace.display(), "the sandbox daemon is serving");
    let stopping = toolbox.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            corral_runtime::shutdown::signal().await;
            // End a running command now rather than wait out its timeout.
            stopping.shutdown();
        })
        .await?;
    toolbox.shutdown();
    tracing::info!("the sandbox daemon stopped");
    Ok(())
}

/// Writes `text` to `path` through a temporary file and a rename, so readers never see half of it.
fn write_whole(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| anyhow::anyhow!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("renaming to {}: {e}", path.display()))?;
    Ok(())
}
