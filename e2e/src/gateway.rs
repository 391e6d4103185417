//! Talking to the installed gateway the way a client does: its Service forwarded to a loopback port, API keys
//! stored the way `corral-gateway create-key` stores them, JSON requests and the SSE stream of a session.

use std::{
    pin::Pin,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, bail};
use eventsource_stream::{Event, Eventsource as _};
use futures::{Stream, StreamExt as _};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::{Api, api::PostParams};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::{Cluster, cluster::repo_root};

/// How long a turn may take before [`read_until`] gives up.
pub const TURN_TIMEOUT: Duration = Duration::from_secs(240);

/// A forward from this host into the cluster that is stopped when dropped.
pub struct Forward {
    name: String,
}

impl Forward {
    /// A fresh forward name starting with `prefix`: the name of an earlier run's forward may still be taken,
    /// pointing elsewhere.
    /// Unique within this process too: tests of one binary start in the same millisecond, and two forwards under
    /// one name are one forward, stopped by whichever test ends first (a stream test lost its connections that way).
    pub fn unique_name(prefix: &str) -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{prefix}-{:x}-{n}", millis % 0xff_ffff)
    }

    /// Takes ownership of the forward called `name` (made with [`Cluster::forward`] or
    /// [`Cluster::forward_from_host`]).
    pub fn owned(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("e2e/cluster/forward.sh"))
            .args(["stop", &self.name])
            .output();
    }
}

/// The installed gateway's Service forwarded to a loopback port: its base URL, and the forward.
pub async fn gateway_url(cluster: &Cluster, prefix: &str) -> anyhow::Result<(String, Forward)> {
    let services: Api<Service> = Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
    let svc = services
        .get("corral-gateway")
        .await
        .context("the gateway Service corral-gateway (installed by the chart with gateway.enabled)")?;
    let spec = svc.spec.context("Service without spec")?;
    let ip = spec.cluster_ip.context("Service without a ClusterIP")?;
    let port = spec.ports.unwrap_or_default().first().map_or(80, |p| p.port);
    let name = Forward::unique_name(prefix);
    let local = cluster.forward(&name, &format!("{ip}:{port}"))?;
    Ok((format!("http://127.0.0.1:{local}"), Forward::owned(name)))
}

/// Stores a new key for `namespace` the way `corral-gateway create-key` does (the SHA-256 in a labelled Secret)
/// and returns it.
pub async fn create_key(cluster: &Cluster, namespace: &str) -> anyhow::Result<String> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let key = format!(
        "sk-corral-{}",
        hex(&Sha256::digest(format!("{namespace}/{nanos}").as_bytes()))
    );
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "generateName": "e2e-api-key-", "labels": { "corral.dev/api-key": "true" } },
        "stringData": { "key-sha256": hex(&Sha256::digest(key.as_bytes())) },
    }))?;
    Api::<Secret>::namespaced(cluster.client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await?;
    Ok(key)
}

/// A client with a new key of `namespace` that the gateway already accepts (see [`Client::wait_until_accepted`]).
pub async fn tenant(base: &str, cluster: &Cluster, namespace: &str) -> anyhow::Result<Client> {
    let client = Client::new(base, Some(&create_key(cluster, namespace).await?));
    client.wait_until_accepted().await?;
    Ok(client)
}

/// Answers in a row, each on a new connection, that [`Client::wait_until_accepted`] needs.
const ACCEPTED_IN_A_ROW: u32 = 8;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A client of the gateway with one API key.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    /// A client of the gateway at `base` sending `key` (none: no `x-api-key` header).
    pub fn new(base: &str, key: Option<&str>) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            key: key.map(str::to_owned),
        }
    }

    /// A request to `path` with the API's headers and this client's key, for what the helpers below do not cover
    /// (multipart uploads, streamed downloads).
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
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

    /// Waits until the gateway accepts the key. Every gateway replica learns of a new key from its watch of the
    /// key Secrets, a moment after the Secret is created; until then it answers 401. So this asks on a new
    /// connection each time (any replica may answer) until several answers in a row are not 401.
    pub async fn wait_until_accepted(&self) -> anyhow::Result<()> {
        let fresh = Self {
            http: reqwest::Client::builder().pool_max_idle_per_host(0).build()?,
            base: self.base.clone(),
            key: self.key.clone(),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut in_a_row = 0;
        while in_a_row < ACCEPTED_IN_A_ROW {
            let (status, body) = fresh
                .call(reqwest::Method::GET, "/v1/agents?limit=1", None)
                .await?;
            in_a_row = if status == 401 { 0 } else { in_a_row + 1 };
            if tokio::time::Instant::now() >= deadline {
                bail!("the gateway still refuses the new key after 60 s: {status} {body}");
            }
            if in_a_row == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Sends a request and returns the status and the JSON body (a JSON string when the body is not JSON).
    pub async fn call(
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
    pub async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, value) = self.call(method.clone(), path, body).await?;
        if !(200..300).contains(&status) {
            bail!("{method} {path}: {status} {value}");
        }
        Ok(value)
    }

    /// `POST path` with `body`, which must succeed; returns the body.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.ok(reqwest::Method::POST, path, Some(body)).await
    }

    /// The id of an object created with `POST path`.
    pub async fn create(&self, path: &str, body: Value) -> anyhow::Result<String> {
        let created = self.post(path, body).await?;
        Ok(created["id"]
            .as_str()
            .with_context(|| format!("POST {path} returned no id: {created}"))?
            .to_owned())
    }

    /// Every event of the session's history, oldest first (up to 1000).
    pub async fn history(&self, session: &str) -> anyhow::Result<Vec<Value>> {
        let body = self
            .ok(
                reqwest::Method::GET,
                &format!("/v1/sessions/{session}/events?limit=1000"),
                None,
            )
            .await?;
        Ok(body["data"].as_array().cloned().unwrap_or_default())
    }

    /// Opens the session's SSE stream, resuming after `last_event_id` when given.
    pub async fn stream(&self, session: &str, last_event_id: Option<&str>) -> anyhow::Result<Events> {
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
pub type Events = Pin<Box<dyn Stream<Item = anyhow::Result<Event>> + Send>>;

/// Reads SSE events (pings skipped) until `done` holds for one, returning all of them; fails after
/// [`TURN_TIMEOUT`].
pub async fn read_until(stream: &mut Events, done: impl Fn(&Event) -> bool) -> anyhow::Result<Vec<Event>> {
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
            "the awaited event did not come within {TURN_TIMEOUT:?}; events so far: {:?}",
            types(&events)
        ),
    }
}

/// The types of `events`, in order.
pub fn types(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.event.as_str()).collect()
}

/// The JSON of an SSE event (null when it is not JSON).
pub fn data(event: &Event) -> Value {
    serde_json::from_str(&event.data).unwrap_or(Value::Null)
}

/// Whether `event` is the end of a turn (`session.status_idle` with `stop_reason: end_turn`).
pub fn is_end_turn(event: &Event) -> bool {
    is_idle_with(event, "end_turn")
}

/// Whether `event` is `session.status_idle` with a stop reason of type `reason`.
pub fn is_idle_with(event: &Event, reason: &str) -> bool {
    event.event == "session.status_idle" && data(event)["stop_reason"]["type"] == reason
}
