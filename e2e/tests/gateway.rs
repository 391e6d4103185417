//! The Helm-installed gateway on the real cluster, reached as a client would: plain HTTP to its Service. A tenant's
//! API key (a hashed Secret), the scripted example agent, an environment and a session created through the API; a
//! whole turn followed on the SSE stream (the harness the operator runs calls the model, the sandbox pod runs bash);
//! a reconnect with `Last-Event-ID` that gets every later event exactly once; the history; another tenant's key
//! (404) and no key (401).
#![cfg(feature = "e2e")]

use std::{
    pin::Pin,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use corral_e2e::{Cluster, TestNamespace, wait};
use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const TURN_TIMEOUT: Duration = Duration::from_secs(240);

fn enabled() -> bool {
    if std::env::var("CORRAL_E2E_GATEWAY").as_deref() == Ok("true") {
        return true;
    }
    eprintln!("skipped: the gateway is not installed (CORRAL_E2E_GATEWAY != true; run hack/e2e.sh)");
    false
}

/// The installed gateway's Service, forwarded to a loopback port: its base URL.
async fn gateway_url(cluster: &Cluster, forward_name: &str) -> anyhow::Result<String> {
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
    let svc = services
        .get("corral-gateway")
        .await
        .context("the gateway Service corral-gateway (installed by the chart with gateway.enabled)")?;
    let spec = svc.spec.context("Service without spec")?;
    let ip = spec.cluster_ip.context("Service without a ClusterIP")?;
    let port = spec.ports.unwrap_or_default().first().map_or(80, |p| p.port);
    let local = cluster.forward(forward_name, &format!("{ip}:{port}"))?;
    Ok(format!("http://127.0.0.1:{local}"))
}

/// Stores a new key for `namespace` the way `corral-gateway create-key` does (the SHA-256 in a labelled Secret)
/// and returns it.
async fn create_key(cluster: &Cluster, namespace: &str) -> anyhow::Result<String> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let key = format!(
        "sk-corral-{}",
        hex(&Sha256::digest(format!("{namespace}/{nanos}").as_bytes()))
    );
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "e2e-api-key", "labels": { "corral.dev/api-key": "true" } },
        "stringData": { "key-sha256": hex(&Sha256::digest(key.as_bytes())) },
    }))?;
    Api::<Secret>::namespaced(cluster.client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(key)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client of the gateway with one API key.
struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    fn new(base: &str, key: Option<&str>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            key: key.map(str::to_owned),
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("anthropic-version", "2023-06-01")
            .header("anthropic-beta", "managed-agents-2026-04-01");
        if let Some(key) = &self.key {
            req = req.header("x-api-key", key);
        }
        req
    }

    /// Sends a request and returns the status and the JSON body.
    /// Waits until every gateway replica's watch of key Secrets has seen this key (a new key is usable a moment
    /// after its Secret is created, as for a user).
    async fn wait_accepted(&self) -> anyhow::Result<()> {
        wait::until("the new API key accepted", Duration::from_secs(30), || async {
            // Several tries in a row: the Service spreads requests over the replicas.
            for _ in 0..4 {
                if self.call(reqwest::Method::GET, "/v1/agents", None).await?.0 == 401 {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        })
        .await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    /// A request that must succeed; returns the body.
    async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if !(200..300).contains(&status) {
            bail!("{method} {path}: {status} {value}");
        }
        Ok(value)
    }

    /// Opens the session's SSE stream, resuming after `last_event_id` when given.
    async fn stream(&self, session: &str, last_event_id: Option<&str>) -> anyhow::Result<Events> {
        let mut req = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/sessions/{session}/events/stream"),
            )
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await?;
        if resp.status() != 200 {
            bail!(
                "stream: {} {}",
                resp.status(),
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(Box::pin(resp.bytes_stream().eventsource().map(|item| {
            item.map_err(|e| anyhow::anyhow!("reading the stream: {e}"))
        })))
    }
}

/// An open SSE stream.
type Events = Pin<Box<dyn Stream<Item = anyhow::Result<Event>> + Send>>;

/// Reads SSE events (pings skipped) until `done` holds for one, returning all of them.
async fn read_until(stream: &mut Events, done: impl Fn(&Event) -> bool) -> anyhow::Result<Vec<Event>> {
    let mut events = Vec::new();
    let read = async {
        while let Some(item) = stream.next().await {
            let event = item?;
            if event.event == "ping" {
                continue;
            }
            let stop = done(&event);
            events.push(event);
            if stop {
                return Ok(());
            }
        }
        bail!("the stream ended early")
    };
    match tokio::time::timeout(TURN_TIMEOUT, read).await {
        Ok(Ok(())) => Ok(events),
        Ok(Err(e)) => Err(e.context(format!("after {:?}", types(&events)))),
        Err(_) => bail!(
            "no session.status_idle within {TURN_TIMEOUT:?}; events so far: {:?}",
            types(&events)
        ),
    }
}

fn types(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).unwrap_or(Value::Null)
}

fn is_end_turn(event: &Event) -> bool {
    event.event == "session.status_idle" && data(event)["stop_reason"]["type"] == "end_turn"
}

#[tokio::test]
async fn a_turn_through_the_installed_gateway() -> anyhow::Result<()> {
    if !enabled() {
        return Ok(());
    }
    let cluster = Cluster::connect().await?;
    // A forward of its own: the name of an earlier run's forward may still be taken, pointing elsewhere.
    let forward = format!(
        "e2e-gw-{:x}",
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() % 0xffffff
    );
    let base = gateway_url(&cluster, &forward).await?;
    let other = TestNamespace::create(&cluster, "gw-other").await?;
    let other_name = other.name.clone();
    let stranger_ns = other.name.clone();
    let result = TestNamespace::run(&cluster, "gw-turn", |ns| async move {
        let script = std::fs::read_to_string(corral_e2e::cluster::repo_root().join("examples/scripts/hello-tool.yaml"))?;
        let cm: ConfigMap = serde_json::from_value(json!({
            "metadata": { "name": "hello-script" }, "data": { "script.yaml": script },
        }))?;
        ns.api::<ConfigMap>().create(&PostParams::default(), &cm).await?;
        let key = create_key(ns.cluster(), &ns.name).await?;
        let api = Client::new(&base, Some(&key));
        let get = reqwest::Method::GET;
        let post = reqwest::Method::POST;
        api.wait_accepted().await?;

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
        let stranger = Client::new(&base, Some(&create_key(ns.cluster(), &stranger_ns).await?));
        stranger.wait_accepted().await?;
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
    let _ = std::process::Command::new(corral_e2e::cluster::repo_root().join("e2e/cluster/forward.sh"))
        .args(["stop", &forward])
        .output();
    result
}
