//! The small walls of the API (walls finding 8): ids that are no object names never reach the API server, cursors
//! past the log's ends are a 400, a `types[]` filter that matches nothing answers at once, unknown request fields
//! are refused by name (while what the SDKs send passes), and `/metrics` is not on the API port.

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Gateway, Tenant};

/// Sends `method path` as written (an HTTP client would normalise `..` and `%2e%2e` away) and returns the status.
async fn raw(gw: &Gateway, method: &str, path: &str, t: &Tenant) -> u16 {
    let addr = gw.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        t.key
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {reply:?}"))
}

#[tokio::test]
async fn ids_that_cannot_name_an_object_are_a_404() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, session) = gw.session(&t).await;
    let long = "a".repeat(300);
    for (method, path) in [
        ("GET", "/v1/agents/..".to_owned()),
        ("GET", "/v1/agents/.".to_owned()),
        ("GET", "/v1/agents/%2e%2e".to_owned()),
        ("GET", "/v1/environments/%2E%2E".to_owned()),
        ("POST", "/v1/agents/../archive".to_owned()),
        ("DELETE", "/v1/sessions/..".to_owned()),
        ("GET", "/v1/sessions/../events".to_owned()),
        ("GET", "/v1/vaults/../credentials".to_owned()),
        ("GET", format!("/v1/agents/{long}")),
        ("GET", format!("/v1/sessions/{session}/../{session}")),
    ] {
        assert_eq!(raw(&gw, method, &path, &t).await, 404, "{method} {path}");
    }
    // The same route with a real id answers, so the 404s above are the ids' doing.
    assert_eq!(raw(&gw, "GET", &format!("/v1/sessions/{session}"), &t).await, 200);
}

#[tokio::test]
async fn event_cursors_past_the_ends_of_the_log_are_a_400_and_unknown_types_match_nothing() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (_, _, session) = gw.session(&t).await;
    let events = format!("/v1/sessions/{session}/events");
    gw.post(
        &events,
        &t,
        json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "hi" }] }] }),
    )
    .await
    .ok();
    let max = format!("{}-{}", u64::MAX, u64::MAX);
    for query in [format!("page={max}"), "order=desc&page=0-0".to_owned()] {
        let message = gw
            .get(&format!("{events}?{query}"), &t)
            .await
            .error(400, "invalid_request_error");
        assert!(message.starts_with("page:"), "{query}: {message}");
    }
    // The other way round the same cursors are the start of the scan.
    let page = gw.get(&format!("{events}?order=desc&page={max}"), &t).await.ok();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    for types in ["types[]=agent.message", "types[]=no.such_type"] {
        let page = gw.get(&format!("{events}?{types}"), &t).await.ok();
        assert_eq!(page["data"], json!([]), "{types}");
        assert_eq!(page["next_page"], json!(null), "{types}");
    }
    let page = gw.get(&format!("{events}?types[]=user.message"), &t).await.ok();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_request_fields_are_refused_by_name() {
    let gw = Gateway::start().await;
    let t = gw.tenant().await;
    let (agent, env, session) = gw.session(&t).await;
    let vault = gw
        .post("/v1/vaults", &t, json!({ "display_name": "v" }))
        .await
        .ok();
    let vault = vault["id"].as_str().unwrap();
    for (path, body, field) in [
        (
            "/v1/agents".to_owned(),
            json!({ "name": "a", "model": "m", "colour": "red" }),
            "colour",
        ),
        (
            "/v1/agents".to_owned(),
            json!({ "name": "a", "model": "m", "tools": [{ "type": "agent_toolset_20260401", "colour": 1 }] }),
            "tools[0].colour",
        ),
        (
            "/v1/agents".to_owned(),
            json!({ "name": "a", "model": { "id": "m", "temperature": 1 } }),
            "model.temperature",
        ),
        (format!("/v1/agents/{agent}"), json!({ "nmae": "typo" }), "nmae"),
        (
            "/v1/environments".to_owned(),
            json!({ "name": "e", "config": { "type": "cloud", "networking": { "type": "limited", "hosts": [] } } }),
            "config.networking.hosts",
        ),
        (
            format!("/v1/environments/{env}"),
            json!({ "sandbox_image": "x" }),
            "sandbox_image",
        ),
        (
            "/v1/sessions".to_owned(),
            json!({ "agent": agent, "environment_id": env, "priority": "high" }),
            "priority",
        ),
        (
            format!("/v1/sessions/{session}"),
            json!({ "status": "idle" }),
            "status",
        ),
        (
            "/v1/vaults".to_owned(),
            json!({ "display_name": "v", "owner": "me" }),
            "owner",
        ),
        (
            format!("/v1/vaults/{vault}/credentials"),
            json!({ "auth": { "type": "static_bearer", "mcp_server_url": "https://m.example.com", "token": "t" }, "note": "x" }),
            "note",
        ),
    ] {
        let message = gw.post(&path, &t, body).await.error(400, "invalid_request_error");
        assert_eq!(
            message,
            format!("{field}: Extra inputs are not permitted"),
            "{path}"
        );
    }
    // What the SDKs send passes: the built-in tools' configs repeat their name as `type`, packages carry `type`.
    gw.post(
        "/v1/agents",
        &t,
        json!({ "name": "a", "model": { "id": "m", "effort": { "type": "low" }, "speed": "standard" },
                "tools": [{ "type": "agent_toolset_20260401", "default_config": { "enabled": true },
                            "configs": [{ "type": "bash", "name": "bash", "enabled": true, "permission_policy": { "type": "always_ask" } }] }],
                "execution_identity": { "type": "service_account" }, "multiagent": null }),
    )
    .await
    .ok();
    gw.post(
        "/v1/environments",
        &t,
        json!({ "name": "e", "scope": "account",
                "config": { "type": "cloud", "networking": { "type": "limited", "allowed_hosts": ["pypi.org"], "allow_package_managers": true },
                            "packages": { "type": "packages", "pip": ["requests"] } } }),
    )
    .await
    .ok();
}
