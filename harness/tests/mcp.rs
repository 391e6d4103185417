//! MCP servers end to end through the local runner: a real MCP server built with `rmcp` on loopback (behind a bearer
//! token check), the scripted provider, a real redis-server and a real sandbox daemon. The agent lists the server's
//! tools and calls one; a wrong token and an unreachable server become the API's MCP error events.
//!
//! The sandbox daemon binary must be built first: `cargo build -p corral-sandbox`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use corral_api::events::{EventBody, StopReason};
use corral_e2e::mcp::WeatherServer;
use corral_harness::engine::EngineConfig;
use corral_harness::local::{LOCAL_NAMESPACE, LocalRun, run};
use corral_harness::log::{LogEntry, LogView};
use corral_session::{Config, Store, testing::RedisServer};
use serde_json::json;

const TOKEN: &str = "mcp-test-token-5f2a9c";

/// Serves the weather MCP server (`corral_e2e::mcp`, shared with the cluster tests) on loopback behind [`TOKEN`]:
/// `forecast {city}` answers "Sunny in <city>"; `launch` exists but the agent disables it. Returns its URL and the
/// server, which stops when dropped.
async fn weather_server() -> (String, WeatherServer) {
    let server = WeatherServer::start(TOKEN).await.unwrap();
    (format!("http://127.0.0.1:{}/mcp", server.port), server)
}

/// An agent manifest: the scripted model calls `forecast`, then answers; the MCP server at `url`; a vault
/// credential with `token` for it.
fn manifest(url: &str, token: &str) -> String {
    let auth = json!({"type": "static_bearer", "mcp_server_url": url, "token": token});
    manifest_with(
        url,
        &auth,
        "      defaultConfig: {permissionPolicy: always_allow}\n",
    )
}

/// The manifest with credential `auth` and `config` lines for the MCP toolset entry.
fn manifest_with(url: &str, auth: &serde_json::Value, config: &str) -> String {
    let kind = auth["type"].as_str().unwrap_or_default();
    let auth = auth.to_string();
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: script}}
data:
  script.yaml: |
    turns:
      - content:
          - text: "Let me check."
          - tool_use: {{name: forecast, input: {{city: Paris}}}}
      - content: [{{text: "It is sunny."}}]
---
apiVersion: v1
kind: Secret
metadata:
  name: vcrd-weather
  labels: {{app.kubernetes.io/managed-by: corral, corral.dev/object: vault-credential, corral.dev/vault: vlt-local, corral.dev/credential-type: {kind}}}
type: corral.dev/vault-credential
stringData:
  auth: '{auth}'
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {{name: forecaster}}
spec:
  model:
    id: scripted
    provider: {{type: scripted, scriptRef: {{name: script, key: script.yaml}}}}
  mcpServers:
    - {{name: weather, url: "{url}"}}
  tools:
    - type: agent_toolset_20260401
    - type: mcp_toolset
      mcpServerName: weather
{config}      configs: [{{name: launch, enabled: false}}]
"#
    )
}

struct Outcome {
    stop: StopReason,
    printed: String,
    entries: Vec<LogEntry>,
    raw: String,
}

/// Runs one turn through the local runner with the manifest; returns how it ended, what it printed and the log.
async fn run_agent(manifest_text: &str) -> Outcome {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .expect("redis-server");
    let dir = tempfile::tempdir().unwrap();
    let agent_file = dir.path().join("agent.yaml");
    std::fs::write(&agent_file, manifest_text).unwrap();
    let session = format!("sesn_mcp_{}", corral_sandbox_protocol::random_hex(4));
    let mut printed = Vec::new();
    let stop = run(
        LocalRun {
            agent_file,
            prompt: "What's the weather in Paris?".into(),
            redis_url: Some(redis.url()),
            workspace: Some(dir.path().join("ws")),
            session: Some(session.clone()),
            engine: EngineConfig::default(),
        },
        &mut printed,
    )
    .await
    .expect("the local run");
    let store = Store::connect(&redis.url(), Config::default()).await.unwrap();
    let mut view = LogView::new(&store, LOCAL_NAMESPACE, &session);
    view.refresh().await.unwrap();
    let entries = view.entries().to_vec();
    let raw = entries
        .iter()
        .map(|e| serde_json::to_string(&e.body).unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    Outcome {
        stop,
        printed: String::from_utf8(printed).unwrap(),
        entries,
        raw,
    }
}

fn types(entries: &[LogEntry]) -> Vec<&str> {
    entries.iter().map(LogEntry::type_name).collect()
}

fn error_of(entries: &[LogEntry]) -> &corral_api::events::SessionErrorInfo {
    entries
        .iter()
        .find_map(|e| match &e.body {
            EventBody::SessionError(err) => Some(&err.error),
            _ => None,
        })
        .expect("a session.error")
}

fn result_text(entries: &[LogEntry]) -> (String, Option<bool>) {
    entries
        .iter()
        .find_map(|e| match &e.body {
            EventBody::AgentMcpToolResult(r) => Some((r.content.clone(), r.is_error)),
            EventBody::AgentToolResult(r) => Some((r.content.clone(), r.is_error)),
            _ => None,
        })
        .map(|(content, is_error)| {
            let text = content
                .unwrap_or_default()
                .iter()
                .filter_map(|b| b.as_text().map(str::to_owned))
                .collect();
            (text, is_error)
        })
        .expect("a tool result")
}

#[tokio::test]
async fn an_agent_lists_and_calls_the_tools_of_its_mcp_server() {
    let (url, calls) = weather_server().await;
    let out = run_agent(&manifest(&url, TOKEN)).await;
    assert_eq!(out.stop, StopReason::EndTurn);
    assert_eq!(
        types(&out.entries),
        [
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "agent.message",
            "agent.mcp_tool_use",
            "span.model_request_end",
            "session.usage",
            "agent.mcp_tool_result",
            "span.model_request_start",
            "agent.message",
            "span.model_request_end",
            "session.usage",
            "session.status_idle",
        ]
    );
    let (use_entry, tool_use) = out
        .entries
        .iter()
        .find_map(|e| match &e.body {
            EventBody::AgentMcpToolUse(t) => Some((e, t)),
            _ => None,
        })
        .unwrap();
    assert_eq!(tool_use.mcp_server_name, "weather");
    assert_eq!(tool_use.name, "forecast");
    assert_eq!(tool_use.input, json!({"city": "Paris"}));
    assert_eq!(
        tool_use.evaluated_permission,
        Some(corral_api::events::Permission::Allow)
    );
    let EventBody::AgentMcpToolResult(result) = &out.entries[7].body else {
        unreachable!()
    };
    assert_eq!(result.mcp_tool_use_id, use_entry.id.to_string());
    assert_eq!(
        result_text(&out.entries),
        ("Sunny in Paris".to_owned(), Some(false))
    );
    assert_eq!(calls.calls(), ["forecast:Paris"]);
    assert!(
        out.printed.contains("mcp tool weather/forecast"),
        "{}",
        out.printed
    );
    assert!(
        !out.raw.contains(TOKEN) && !out.printed.contains(TOKEN),
        "the token leaked"
    );
}

#[tokio::test]
async fn a_wrong_token_is_an_mcp_authentication_error() {
    let (url, calls) = weather_server().await;
    let out = run_agent(&manifest(&url, "wrong-token-value")).await;
    let error = error_of(&out.entries);
    assert_eq!(error.kind, "mcp_authentication_failed_error", "{}", error.message);
    assert_eq!(error.extra["mcp_server_name"], "weather");
    assert!(error.message.contains("weather"), "{}", error.message);
    // The turn goes on without the server's tools: the call is refused, not sent.
    assert_eq!(out.stop, StopReason::EndTurn);
    let (text, is_error) = result_text(&out.entries);
    assert_eq!(is_error, Some(true));
    assert!(text.contains("not available"), "{text}");
    assert!(calls.calls().is_empty());
    assert!(!out.raw.contains("wrong-token-value"), "the token leaked");
}

#[tokio::test]
async fn an_unreachable_server_is_an_mcp_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    drop(listener);
    let out = run_agent(&manifest(&url, TOKEN)).await;
    let error = error_of(&out.entries);
    assert_eq!(error.kind, "mcp_connection_failed_error");
    assert_eq!(error.extra["mcp_server_name"], "weather");
    assert_eq!(out.stop, StopReason::EndTurn);
    assert_eq!(result_text(&out.entries).1, Some(true));
}

/// A token endpoint on loopback that trades the refresh token `rt-1` (client `c1`, secret `cs-1` in HTTP Basic)
/// for [`TOKEN`]; returns its URL and the form bodies it received.
async fn token_endpoint() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let route = axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(body.clone());
            // "c1:cs-1" in base64.
            let basic = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
                == Some("Basic YzE6Y3MtMQ==");
            if basic && body.contains("grant_type=refresh_token") && body.contains("refresh_token=rt-1") {
                axum::Json(json!({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600}))
                    .into_response()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "invalid_grant"})),
                )
                    .into_response()
            }
        }
    });
    let router = axum::Router::new().route("/token", route);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/token", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, seen)
}

#[tokio::test]
async fn an_expired_oauth_token_is_refreshed_at_the_token_endpoint() {
    let (url, calls) = weather_server().await;
    let (token_url, requests) = token_endpoint().await;
    let auth = json!({
        "type": "mcp_oauth", "mcp_server_url": url, "access_token": "expired-token",
        "expires_at": "2020-01-01T00:00:00Z",
        "refresh": {"client_id": "c1", "refresh_token": "rt-1", "token_endpoint": token_url,
                    "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": "cs-1"}}
    });
    let out = run_agent(&manifest_with(
        &url,
        &auth,
        "      defaultConfig: {permissionPolicy: always_allow}\n",
    ))
    .await;
    assert_eq!(
        result_text(&out.entries),
        ("Sunny in Paris".to_owned(), Some(false))
    );
    assert_eq!(calls.calls(), ["forecast:Paris"]);
    assert_eq!(requests.lock().unwrap().len(), 1);
    for secret in [TOKEN, "rt-1", "cs-1", "expired-token"] {
        assert!(!out.raw.contains(secret), "{secret} leaked into the log");
    }
}

#[tokio::test]
async fn mcp_tools_ask_by_default_and_run_once_confirmed() {
    use corral_api::events::{ConfirmationResult, Permission, UserMessage, UserToolConfirmation};
    use corral_harness::agent::{FileAgentSource, manifest::Manifest};
    use corral_harness::engine::{Engine, Outcome};
    use corral_harness::mcp::{McpHub, credentials::StaticCredentials};

    let (url, calls) = weather_server().await;
    let auth = json!({"type": "static_bearer", "mcp_server_url": url, "token": TOKEN});
    let manifest = Manifest::parse(&manifest_with(&url, &auth, "")).unwrap();
    let agent = FileAgentSource::from_manifest(&manifest).unwrap().agent();
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .expect("redis-server");
    let store = Store::connect(&redis.url(), Config::default()).await.unwrap();
    let runner = Arc::new(corral_harness::tools::LocalToolRunner::new(
        corral_sandbox_protocol::LocalSandboxOptions::default(),
        None,
    ));
    let engine = Engine::new(
        store.clone(),
        runner,
        Arc::new(corral_harness::status::NoStatus),
        EngineConfig::default(),
        corral_harness::metrics::Metrics::default(),
    )
    .with_mcp(McpHub::new(Arc::new(StaticCredentials::from_secrets(
        manifest.secrets.values(),
    ))));
    let log = store.session("ns", "s");
    let run = || async {
        let lease = log
            .acquire_lease("t", std::time::Duration::from_secs(30))
            .await
            .unwrap();
        let outcome = engine
            .run("ns", "s", &agent, lease.token, &Default::default())
            .await;
        log.release(&lease).await.unwrap();
        outcome
    };
    let entries = || async {
        let mut view = LogView::new(&store, "ns", "s");
        view.refresh().await.unwrap();
        view.entries().to_vec()
    };
    log.append_user([EventBody::UserMessage(UserMessage {
        content: vec![corral_api::events::ContentBlock::text("weather?")],
    })])
    .await
    .unwrap();
    assert_eq!(run().await, Outcome::Idle);
    let waiting = entries().await;
    let (use_id, tool_use) = waiting
        .iter()
        .find_map(|e| match &e.body {
            EventBody::AgentMcpToolUse(t) => Some((e.id.clone(), t.clone())),
            _ => None,
        })
        .unwrap();
    assert_eq!(tool_use.evaluated_permission, Some(Permission::Ask));
    let EventBody::SessionStatusIdle(idle) = &waiting.last().unwrap().body else {
        panic!("not idle: {:?}", types(&waiting))
    };
    assert_eq!(
        idle.stop_reason,
        StopReason::RequiresAction {
            event_ids: vec![use_id.to_string()]
        }
    );
    assert!(calls.calls().is_empty(), "the call ran before it was confirmed");

    log.append_user([EventBody::UserToolConfirmation(UserToolConfirmation {
        tool_use_id: use_id.to_string(),
        result: ConfirmationResult::Allow,
        deny_message: None,
        session_thread_id: None,
    })])
    .await
    .unwrap();
    assert_eq!(run().await, Outcome::Idle);
    let done = entries().await;
    assert_eq!(result_text(&done), ("Sunny in Paris".to_owned(), Some(false)));
    assert_eq!(calls.calls(), ["forecast:Paris"]);
    let EventBody::SessionStatusIdle(idle) = &done.last().unwrap().body else {
        panic!("not idle")
    };
    assert_eq!(idle.stop_reason, StopReason::EndTurn);
}
