//! The denial-of-service caps of the installed gateway, tried by a tenant with its API key (docs/limits.md): an
//! event over the per-event cap and a body over the request cap get 413 in the API's error envelope and store
//! nothing (the body refused from its `Content-Length`, before it is sent); a session filled to its cap is refused
//! while another tenant's session still takes events; one key holding its most event streams gets 429 for one more
//! while another key streams; `/metrics` is not served on the API port. Each probe is also made from the permitted
//! position (an event just under the caps is stored and read back, the metrics port serves `/metrics`), so the test
//! can fail. The caps are read from the installed gateway's Deployment, not assumed.
#![cfg(feature = "e2e")]

use std::time::Duration;

use anyhow::Context as _;
use corral_e2e::{
    Cluster, TestNamespace,
    gateway::{Client, Forward, tenant},
};
use corral_session::keys::Tenant;
use k8s_openapi::api::{
    apps::v1::Deployment,
    core::v1::{ConfigMap, Pod},
};
use kube::{
    Api,
    api::{ListParams, PostParams},
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A cap of the installed gateway: the value of `variable` in its Deployment.
async fn gateway_cap(cluster: &Cluster, variable: &str) -> anyhow::Result<usize> {
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
    let gateway = deployments.get("corral-gateway").await?;
    let containers = gateway
        .spec
        .and_then(|s| s.template.spec)
        .map(|s| s.containers)
        .unwrap_or_default();
    let value = containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == variable)
        .and_then(|e| e.value.clone())
        .with_context(|| format!("the gateway Deployment sets {variable}"))?;
    Ok(value.parse()?)
}

/// One gateway pod's API port and metrics port, forwarded to loopback ports (one replica, so per-process caps
/// are reached exactly).
struct GatewayPod {
    api: String,
    metrics: String,
    _forwards: [Forward; 2],
}

async fn gateway_pod(cluster: &Cluster) -> anyhow::Result<GatewayPod> {
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
    let listed = pods
        .list(&ListParams::default().labels("app.kubernetes.io/component=gateway"))
        .await?
        .items;
    let ip = listed
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .find_map(|p| p.status.as_ref().and_then(|s| s.pod_ip.clone()))
        .context("a running gateway pod")?;
    let port = |name: &str| -> anyhow::Result<u16> {
        listed
            .iter()
            .flat_map(|p| p.spec.iter().flat_map(|s| s.containers.iter()))
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| u16::try_from(p.container_port).unwrap_or_default())
            .with_context(|| format!("the gateway's {name} port"))
    };
    let (api_name, metrics_name) = (
        Forward::unique_name("e2e-lim-api"),
        Forward::unique_name("e2e-lim-met"),
    );
    let api = cluster.forward(&api_name, &format!("{ip}:{}", port("http")?))?;
    let metrics = cluster.forward(&metrics_name, &format!("{ip}:{}", port("metrics")?))?;
    Ok(GatewayPod {
        api: format!("http://127.0.0.1:{api}"),
        metrics: format!("http://127.0.0.1:{metrics}"),
        _forwards: [Forward::owned(api_name), Forward::owned(metrics_name)],
    })
}

/// A session of a scripted agent created through the API with `api`'s key, in `ns`; returns its id.
async fn session(ns: &TestNamespace, api: &Client) -> anyhow::Result<String> {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": "script" }, "data": { "script.yaml": "turns: []" },
    }))?;
    ns.api::<ConfigMap>().create(&PostParams::default(), &cm).await?;
    let agent = api
        .create(
            "/v1/agents",
            json!({
                "name": "capped",
                "model": { "id": "scripted", "provider": {
                    "type": "scripted", "script_ref": { "name": "script", "key": "script.yaml" } } },
            }),
        )
        .await?;
    let env = api
        .create(
            "/v1/environments",
            json!({ "name": "box", "config": { "type": "cloud" } }),
        )
        .await?;
    api.create("/v1/sessions", json!({ "agent": agent, "environment_id": env }))
        .await
}

/// A `user.message` of `text`.
fn note(text: &str) -> Value {
    json!({ "type": "user.message", "content": [{ "type": "text", "text": text }] })
}

/// The refusal's message, after checking the envelope: `status`, `error.type` and `error.details.error_code`.
fn refusal(status: u16, body: &Value, want_status: u16, kind: &str, code: &str) -> String {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["type"], "error", "the API's error envelope: {body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert_eq!(body["error"]["details"]["error_code"], code, "{body}");
    body["error"]["message"].as_str().unwrap_or_default().to_owned()
}

async fn redis() -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let url = std::env::var("CORRAL_E2E_REDIS_URL").context("CORRAL_E2E_REDIS_URL (hack/e2e.sh)")?;
    let mut conn = redis::Client::open(url)?
        .get_multiplexed_async_connection()
        .await?;
    // A log of thousands of events takes longer to read than the client's default response timeout.
    conn.set_response_timeout(Duration::from_secs(30));
    Ok(conn)
}

/// How many events session `id` of `ns` holds, read from its log in Redis.
async fn stored(ns: &str, id: &str) -> anyhow::Result<usize> {
    Ok(redis::cmd("XLEN")
        .arg(Tenant::new(ns).session(id).events())
        .query_async(&mut redis().await?)
        .await?)
}

/// The texts of the client's messages in session `id` of `ns`, read from its log in Redis (the harness answers
/// them with events of its own, which are left out).
async fn messages(ns: &str, id: &str) -> anyhow::Result<Vec<String>> {
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(Tenant::new(ns).session(id).events())
        .arg("-")
        .arg("+")
        .query_async(&mut redis().await?)
        .await?;
    let mut texts = Vec::new();
    for entry in entries.ids {
        for value in entry.map.values() {
            let Ok(raw) = redis::from_redis_value_ref::<String>(value) else {
                continue;
            };
            let Ok(event) = serde_json::from_str::<Value>(&raw) else {
                continue;
            };
            if event["type"] == "user.message" {
                texts.push(
                    event["content"][0]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
    }
    Ok(texts)
}

#[tokio::test]
async fn an_event_or_a_body_over_its_cap_gets_413_and_stores_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let max_event = gateway_cap(&cluster, "CORRAL_MAX_EVENT_BYTES").await?;
    let max_body = gateway_cap(&cluster, "CORRAL_GATEWAY_MAX_BODY").await?;
    let gw = gateway_pod(&cluster).await?;
    TestNamespace::run(&cluster, "lim-size", |ns| async move {
        let api = tenant(&gw.api, ns.cluster(), &ns.name).await?;
        let id = session(&ns, &api).await?;
        let path = format!("/v1/sessions/{id}/events");

        // Permitted: two events just under the event cap, in a body just under the body cap.
        let near = max_event - 1024;
        assert!(
            2 * near + 1024 < max_body,
            "two events near the event cap fit one body"
        );
        api.post(
            &path,
            json!({ "events": [note(&"a".repeat(near)), note(&"b".repeat(near))] }),
        )
        .await?;
        let listed = api
            .ok(reqwest::Method::GET, &format!("{path}?limit=10"), None)
            .await?;
        let texts: Vec<usize> = listed["data"]
            .as_array()
            .context("data")?
            .iter()
            .filter(|e| e["type"] == "user.message")
            .map(|e| e["content"][0]["text"].as_str().map_or(0, str::len))
            .collect();
        assert_eq!(texts, [near, near], "both events are stored and read back whole");

        // One event over the cap: 413, the cap named, nothing of the request stored.
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                &path,
                Some(json!({ "events": [note("small"), note(&"c".repeat(max_event))] })),
            )
            .await?;
        let message = refusal(status, &body, 413, "invalid_request_error", "event_too_large");
        assert!(
            message.starts_with("events[1]: ")
                && message.contains(&format!("over the limit of {max_event} bytes per event")),
            "{message}"
        );
        let lengths: Vec<usize> = messages(&ns.name, &id).await?.iter().map(String::len).collect();
        assert_eq!(lengths, [near, near], "nothing of the refused request was stored");

        // A body over the cap, announced by its Content-Length: refused before it is sent.
        let (status, body) = announce_body(&gw.api, &api_key_of(&ns).await?, &path, max_body + 1).await?;
        let message = refusal(status, &body, 413, "invalid_request_error", "request_too_large");
        assert!(
            message.contains(&format!("over the limit of {max_body} bytes per request")),
            "{message}"
        );
        assert_eq!(
            messages(&ns.name, &id).await?.len(),
            2,
            "nothing of the announced body was stored"
        );
        // Permitted: the same head announcing a body the gateway takes is waited for, not answered.
        let waited = announce_body_for(
            &gw.api,
            &api_key_of(&ns).await?,
            &path,
            max_body - 1,
            Duration::from_secs(3),
        )
        .await;
        assert!(
            waited.is_err(),
            "a body within the cap is read, not refused from its head: {waited:?}"
        );
        Ok(())
    })
    .await
}

/// The key the namespace's tenant client sends: a fresh one (the gateway accepts several per namespace).
async fn api_key_of(ns: &TestNamespace) -> anyhow::Result<String> {
    corral_e2e::gateway::create_key(ns.cluster(), &ns.name).await
}

/// Sends the head of `POST path` announcing a body of `length` bytes, then only its first bytes, and reads the
/// answer: its status and JSON body. A gateway that waits for the body never answers (an error after 20 s).
async fn announce_body(base: &str, key: &str, path: &str, length: usize) -> anyhow::Result<(u16, Value)> {
    announce_body_for(base, key, path, length, Duration::from_secs(20)).await
}

/// [`announce_body`], waiting at most `wait` for the answer.
async fn announce_body_for(
    base: &str,
    key: &str,
    path: &str,
    length: usize,
    wait: Duration,
) -> anyhow::Result<(u16, Value)> {
    let authority = base.trim_start_matches("http://");
    // The new key may take a moment to reach the gateway: a 401 is asked again.
    for _ in 0..100 {
        let mut conn = tokio::net::TcpStream::connect(authority).await?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {authority}\r\nx-api-key: {key}\r\nanthropic-version: 2023-06-01\r\n\
             anthropic-beta: managed-agents-2026-04-01\r\ncontent-type: application/json\r\n\
             content-length: {length}\r\nconnection: close\r\n\r\n"
        );
        conn.write_all(head.as_bytes()).await?;
        let first = b"{\"events\": [";
        conn.write_all(first).await?;
        let mut answer = Vec::new();
        tokio::time::timeout(wait, conn.read_to_end(&mut answer))
            .await
            .context("no answer while the body was still unsent")??;
        let text = String::from_utf8_lossy(&answer);
        let status: u16 = text
            .get(9..12)
            .unwrap_or_default()
            .parse()
            .context("an HTTP status line")?;
        if status == 401 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        let body: Value = serde_json::from_str(body).with_context(|| format!("a JSON body: {text}"))?;
        return Ok((status, body));
    }
    anyhow::bail!("the gateway kept refusing the new key")
}

#[tokio::test]
async fn a_full_session_is_refused_while_another_tenants_session_takes_events() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let cap = gateway_cap(&cluster, "CORRAL_MAX_SESSION_EVENTS").await?;
    anyhow::ensure!(cap > 2, "the session event cap is {cap}");
    let gw = gateway_pod(&cluster).await?;
    let other = TestNamespace::create(&cluster, "lim-other").await?;
    let other_name = other.name.clone();
    let result = TestNamespace::run(&cluster, "lim-full", |ns| async move {
        let api = tenant(&gw.api, ns.cluster(), &ns.name).await?;
        let id = session(&ns, &api).await?;
        let path = format!("/v1/sessions/{id}/events");
        // Filled to the cap, in requests of at most 1,000 events. The harness answers the messages with events of
        // its own, which count too: a request they made too large is refused, and the next one is smaller.
        let mut batch = 0;
        loop {
            let held = stored(&ns.name, &id).await?;
            if held >= cap {
                break;
            }
            anyhow::ensure!(batch < 40, "the session never filled: {held} of {cap} events");
            let events: Vec<Value> = (0..(cap - held).min(1000))
                .map(|i| note(&format!("fill-{batch}-{i}")))
                .collect();
            let (status, body) = api
                .call(reqwest::Method::POST, &path, Some(json!({ "events": events })))
                .await?;
            anyhow::ensure!(
                status == 200 || body["error"]["details"]["error_code"] == "session_log_full",
                "{status} {body}"
            );
            batch += 1;
        }
        // Full: more is refused whole, with the cap named, and nothing of it is stored.
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                &path,
                Some(json!({ "events": [note("over-1"), note("over-2")] })),
            )
            .await?;
        let message = refusal(status, &body, 400, "invalid_request_error", "session_log_full");
        assert!(
            message.contains(&format!("the limit is {cap} events per session")),
            "{message}"
        );
        let (status, body) = api
            .call(
                reqwest::Method::POST,
                &path,
                Some(json!({ "events": [note("over-3")] })),
            )
            .await?;
        refusal(status, &body, 400, "invalid_request_error", "session_log_full");
        let texts = messages(&ns.name, &id).await?;
        assert!(
            texts.iter().all(|t| !t.starts_with("over-")),
            "a refused message was stored"
        );
        assert!(
            texts.len() <= cap,
            "{} client messages in a session capped at {cap} events",
            texts.len()
        );
        assert!(
            texts.iter().any(|t| t.starts_with("fill-")),
            "the accepted messages are stored"
        );

        // Another tenant's session on the same gateway takes events and reads them back.
        let neighbour = tenant(&gw.api, other.cluster(), &other.name).await?;
        let theirs = session(&other, &neighbour).await?;
        let their_path = format!("/v1/sessions/{theirs}/events");
        neighbour
            .post(&their_path, json!({ "events": [note("still served")] }))
            .await?;
        let listed = neighbour.ok(reqwest::Method::GET, &their_path, None).await?;
        assert_eq!(
            listed["data"][0]["content"][0]["text"], "still served",
            "{listed}"
        );
        Ok(())
    })
    .await;
    let _ = cluster.kubectl(&["delete", "namespace", &other_name, "--wait=false"]);
    result
}

#[tokio::test]
async fn a_key_at_its_stream_cap_gets_429_and_metrics_are_not_on_the_api_port() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let max_streams = gateway_cap(&cluster, "CORRAL_GATEWAY_MAX_STREAMS").await?;
    anyhow::ensure!(
        (1..=1000).contains(&max_streams),
        "the stream cap is {max_streams}"
    );
    let gw = gateway_pod(&cluster).await?;
    TestNamespace::run(&cluster, "lim-streams", |ns| async move {
        let api = tenant(&gw.api, ns.cluster(), &ns.name).await?;
        let id = session(&ns, &api).await?;
        // Up to the cap, every stream opens; the first one over it gets 429 in the error envelope.
        let mut open = Vec::new();
        for i in 0..max_streams {
            let stream = match api.stream(&id, None).await {
                Ok(stream) => stream,
                // A connection that fails before any answer (the SDK retries these by itself) is tried once more;
                // an answer, a 429 above all, never is.
                Err(err)
                    if err
                        .downcast_ref::<reqwest::Error>()
                        .is_some_and(|e| e.is_request() || e.is_connect()) =>
                {
                    eprintln!("stream {i} of {max_streams}: {err:#}; trying once more");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    api.stream(&id, None)
                        .await
                        .with_context(|| format!("stream {i} of {max_streams}, second try"))?
                }
                Err(err) => return Err(err.context(format!("stream {i} of {max_streams}"))),
            };
            open.push(stream);
        }
        let url = format!("/v1/sessions/{id}/events/stream");
        let (status, body) = api.call(reqwest::Method::GET, &url, None).await?;
        let message = refusal_without_code(status, &body, 429, "rate_limit_error");
        assert!(
            message.contains(&format!("holds {max_streams} open event streams")),
            "{message}"
        );
        // Another key of the same tenant streams: the cap is the key's.
        let second = Client::new(&gw.api, Some(&api_key_of(&ns).await?));
        second.wait_until_accepted().await?;
        drop(
            second
                .stream(&id, None)
                .await
                .context("another key's stream opens")?,
        );
        // Closing one frees its place.
        drop(open.pop());
        let reopened = corral_e2e::wait::until(
            "a stream opens after one closed",
            Duration::from_secs(10),
            || async { Ok(api.stream(&id, None).await.ok()) },
        )
        .await?;
        drop(reopened);
        drop(open);

        // `/metrics` is served on the metrics port, not on the API port (with or without a key).
        let metrics = reqwest::get(format!("{}/metrics", gw.metrics)).await?;
        assert_eq!(metrics.status(), 200);
        assert!(
            metrics.text().await?.contains("corral_"),
            "the metrics port serves Corral's metrics"
        );
        let (status, body) = api.call(reqwest::Method::GET, "/metrics", None).await?;
        assert_eq!(status, 404, "{body}");
        assert!(!body.to_string().contains("corral_"), "{body}");
        let anonymous = reqwest::get(format!("{}/metrics", gw.api)).await?;
        let status = anonymous.status().as_u16();
        assert!(
            !anonymous.text().await?.contains("corral_gateway"),
            "no metrics without a key either"
        );
        assert!(matches!(status, 401 | 404), "{status}");
        Ok(())
    })
    .await
}

/// The refusal's message, after checking the envelope's status and `error.type`.
fn refusal_without_code(status: u16, body: &Value, want_status: u16, kind: &str) -> String {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["type"], "error", "the API's error envelope: {body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    body["error"]["message"].as_str().unwrap_or_default().to_owned()
}
