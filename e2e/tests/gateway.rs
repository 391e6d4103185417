//! The Helm-installed gateway on the real cluster, reached as a client would: plain HTTP to its Service. A tenant's
//! API key (a hashed Secret), the scripted example agent, an environment and a session created through the API; a
//! whole turn followed on the SSE stream (the harness the operator runs calls the model, the sandbox pod runs bash);
//! a reconnect with `Last-Event-ID` that gets every later event exactly once; the history; another tenant's key
//! (404) and no key (401).
#![cfg(feature = "e2e")]

use std::time::Duration;

use anyhow::Context as _;
use corral_e2e::{
    Cluster, TestNamespace,
    gateway::{Client, data, gateway_url, is_end_turn, read_until, tenant, types},
    wait,
};
use eventsource_stream::Event;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::PostParams;
use serde_json::json;

#[tokio::test]
async fn a_turn_through_the_installed_gateway() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let (base, _forward) = gateway_url(&cluster, "e2e-gw").await?;
    let other = TestNamespace::create(&cluster, "gw-other").await?;
    let other_name = other.name.clone();
    let stranger_ns = other.name.clone();
    let result = TestNamespace::run(&cluster, "gw-turn", |ns| async move {
        let script = std::fs::read_to_string(corral_e2e::cluster::repo_root().join("examples/scripts/hello-tool.yaml"))?;
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": { "name": "hello-script" }, "data": { "script.yaml": script },
        }))?;
        ns.api::<ConfigMap>().create(&PostParams::default(), &cm).await?;
        let api = tenant(&base, ns.cluster(), &ns.name).await?;
        let get = reqwest::Method::GET;
        let post = reqwest::Method::POST;

        // Resources through the API land as custom resources in the key's namespace.
        let agent = api
            .ok(post.clone(), "/v1/agents", Some(json!({
                "name": "Hello",
                "model": { "id": "scripted", "provider": {
                    "type": "scripted", "script_ref": { "name": "hello-script", "key": "script.yaml" } } },
                "tools": [{ "type": "agent_toolset_20260401" }],
            })))
            .await?;
        let agent_id = agent["id"].as_str().context("agent id")?.to_owned();
        assert_eq!(agent["version"], 1, "{agent}");
        let env = api
            .ok(post.clone(), "/v1/environments", Some(json!({
                "name": "box", "config": { "type": "cloud", "networking": { "type": "unrestricted" } } })))
            .await?;
        let env_id = env["id"].as_str().context("environment id")?.to_owned();
        let session = api
            .ok(post.clone(), "/v1/sessions", Some(json!({ "agent": agent_id, "environment_id": env_id })))
            .await?;
        let session_id = session["id"].as_str().context("session id")?.to_owned();
        let kubectl_view = ns.cluster().kubectl(&["-n", &ns.name, "get", "agents,environments,sessions", "-o", "name"])?;
        for id in [&agent_id, &env_id, &session_id] {
            assert!(kubectl_view.contains(id.as_str()), "{id} visible to kubectl: {kubectl_view}");
        }

        // The turn, live on the stream: opened before the message, read to the end of the turn.
        let mut stream = api.stream(&session_id, None).await?;
        api.ok(post.clone(), &format!("/v1/sessions/{session_id}/events"), Some(json!({ "events": [
            { "type": "user.message", "content": [{ "type": "text", "text": "Say hello and check the sandbox works" }] }
        ] })))
        .await?;
        let live = read_until(&mut stream, is_end_turn).await?;
        drop(stream);
        let seen = types(&live);
        let pos = |t: &str| seen.iter().position(|s| *s == t).unwrap_or(usize::MAX);
        for expected in ["user.message", "session.status_running", "agent.message", "agent.tool_use", "agent.tool_result"] {
            assert!(pos(expected) < pos("session.status_idle"), "{expected} before the end of the turn in {seen:?}");
        }
        assert!(pos("agent.tool_use") < pos("agent.tool_result"), "{seen:?}");
        let tool_use = data(&live[pos("agent.tool_use")]);
        assert_eq!(tool_use["name"], "bash", "{tool_use}");
        let tool_result = data(&live[pos("agent.tool_result")]);
        assert_eq!(tool_result["tool_use_id"], tool_use["id"], "{tool_result}");
        assert_ne!(tool_result["is_error"], true, "{tool_result}");
        assert!(tool_result.to_string().contains("hello"), "bash ran in the sandbox pod: {tool_result}");
        for event in &live {
            assert!(!event.id.is_empty(), "every SSE event carries a cursor: {event:?}");
            assert_eq!(data(event)["type"], event.event.as_str(), "event: names the type: {event:?}");
        }

        // A client that lost the connection after the tool call gets everything after it, exactly once.
        let cut = pos("agent.tool_use");
        let mut resumed = api.stream(&session_id, Some(&live[cut].id)).await?;
        let replay = read_until(&mut resumed, is_end_turn).await?;
        drop(resumed);
        let ids = |events: &[Event]| events.iter().map(|e| data(e)["id"].as_str().unwrap_or_default().to_owned()).collect::<Vec<_>>();
        assert_eq!(ids(&replay), ids(&live[cut + 1..]), "the resumed stream is the rest of the turn, once");

        // The history holds the same events in the same order, page by page.
        let mut history = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let query = page.as_ref().map_or(String::new(), |p| format!("&page={p}"));
            let body = api.ok(get.clone(), &format!("/v1/sessions/{session_id}/events?limit=3{query}"), None).await?;
            let items = body["data"].as_array().context("data")?;
            assert!(items.len() <= 3, "limit is honoured: {body}");
            history.extend(items.iter().map(|e| e["id"].as_str().unwrap_or_default().to_owned()));
            match body["next_page"].as_str() {
                Some(next) if !items.is_empty() => page = Some(next.to_owned()),
                _ => break,
            }
        }
        assert_eq!(history, ids(&live), "the history is what the stream showed");
        // The Session's status follows at the end of the turn (written by the harness, not per event).
        wait::until("the session's status idle through the API", Duration::from_secs(60), || async {
            let session = api.ok(get.clone(), &format!("/v1/sessions/{session_id}"), None).await?;
            Ok((session["status"] == "idle" && session["usage"]["output_tokens"].as_i64().unwrap_or(0) > 0).then_some(()))
        })
        .await?;

        // Another tenant's key sees none of it; no key and a wrong key are refused.
        let stranger = tenant(&base, ns.cluster(), &stranger_ns).await?;
        for path in [
            format!("/v1/agents/{agent_id}"),
            format!("/v1/environments/{env_id}"),
            format!("/v1/sessions/{session_id}"),
            format!("/v1/sessions/{session_id}/events"),
            format!("/v1/sessions/{session_id}/events/stream"),
        ] {
            let (status, body) = stranger.call(get.clone(), &path, None).await?;
            assert_eq!(status, 404, "another tenant gets 404 for {path}: {body}");
            assert_eq!(body["error"]["type"], "not_found_error", "{body}");
        }
        let (status, body) = stranger
            .call(post.clone(), &format!("/v1/sessions/{session_id}/events"), Some(json!({ "events": [
                { "type": "user.message", "content": [{ "type": "text", "text": "hijack" }] } ] })))
            .await?;
        assert_eq!(status, 404, "another tenant cannot send to the session: {body}");
        let listed = stranger.ok(get.clone(), "/v1/sessions", None).await?;
        assert_eq!(listed["data"], json!([]), "another tenant lists nothing: {listed}");
        for client in [Client::new(&base, None), Client::new(&base, Some("sk-corral-not-a-key"))] {
            let (status, body) = client.call(get.clone(), &format!("/v1/sessions/{session_id}"), None).await?;
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["error"]["type"], "authentication_error", "{body}");
        }
        let after = api.ok(get.clone(), &format!("/v1/sessions/{session_id}/events?limit=1000"), None).await?;
        assert!(!after.to_string().contains("hijack"), "the other tenant's message never reached the log");

        // Deleted is gone at once for the client, although the operator's finalizer still removes the log.
        let deleted = api.ok(reqwest::Method::DELETE, &format!("/v1/sessions/{session_id}"), None).await?;
        assert_eq!(deleted["type"], "session_deleted", "{deleted}");
        let (status, body) = api.call(get.clone(), &format!("/v1/sessions/{session_id}"), None).await?;
        assert_eq!(status, 404, "a deleted session is not read back: {body}");
        Ok(())
    })
    .await;
    let _ = cluster.kubectl(&["delete", "namespace", &other_name, "--wait=false"]);
    result
}
