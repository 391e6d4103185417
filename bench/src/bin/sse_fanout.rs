//! Event append and SSE delivery through one gateway: `STREAMS` concurrent SSE streams (default 1,000) spread over
//! `SESSIONS` sessions, while user events are sent through `POST /v1/sessions/{id}/events`. Reports the send rate
//! through the API, the delivered events per second over all streams, and send → delivery latency (p50, p99).
//!
//! The gateway runs in this process against a real redis-server and the kube-apiserver of `$KUBECONFIG` (the light
//! mode is enough: `make apiserver-up`, CRDs applied). Usage: `sse_fanout [STREAMS] [SESSIONS] [EVENTS_PER_SESSION]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use corral_gateway::{admin, auth::KeyIndex, ratelimit::Limiter, server, state::Settings};
use corral_runtime::Readiness;
use corral_session::{Config, Store, testing::RedisServer};
use futures::StreamExt;
use serde_json::{Value, json};

type Sent = Arc<Mutex<HashMap<String, Instant>>>;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: usize| -> usize {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (streams, sessions, per_session) = (arg(1, 1000), arg(2, 10), arg(3, 50));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kube = kube::Client::try_default().await.context("KUBECONFIG")?;
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let store = Store::connect(&redis.url(), Config::default()).await?;
    let (keys, watch) = KeyIndex::watch(kube.clone());
    tokio::spawn(watch);
    if !keys.ready().await {
        bail!("the API key reflector did not sync");
    }
    let state = server::state(kube.clone(), store, keys, Limiter::new(0, 0), Settings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let readiness = Readiness::default();
    readiness.set(true);
    tokio::spawn(server::serve(listener, state, readiness, std::future::pending()));

    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let ns = format!("bench-sse-{suffix}");
    let (key, _) = admin::create_key(&kube, &ns, None).await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(2000).build()?;
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{url}{path}"))
            .header("x-api-key", &key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };
    for _ in 0..200 {
        if call(reqwest::Method::GET, "/v1/agents".into(), None)
            .await?
            .status()
            != 401
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let agent: Value = call(
        reqwest::Method::POST,
        "/v1/agents".into(),
        Some(json!({"name": "a", "model": "m"})),
    )
    .await?
    .json()
    .await?;
    let env: Value = call(
        reqwest::Method::POST,
        "/v1/environments".into(),
        Some(json!({"name": "e"})),
    )
    .await?
    .json()
    .await?;
    let mut ids = Vec::new();
    for _ in 0..sessions {
        let s: Value = call(
            reqwest::Method::POST,
            "/v1/sessions".into(),
            Some(json!({"agent": agent["id"], "environment_id": env["id"]})),
        )
        .await?
        .json()
        .await?;
        ids.push(s["id"].as_str().context("session id")?.to_owned());
    }

    // Open every stream before sending.
    let sent: Sent = Arc::default();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(streams * per_session)));
    let mut tasks = Vec::new();
    for i in 0..streams {
        let id = ids[i % sessions].clone();
        let response = http
            .get(format!("{url}/v1/sessions/{id}/events/stream"))
            .header("x-api-key", &key)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("stream {i}: {}", response.status());
        }
        let (sent, latencies) = (sent.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            let mut got = 0;
            while got < per_session {
                let Some(Ok(chunk)) = body.next().await else { break };
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(cut) = buffer.find("\n\n") {
                    let message: String = buffer.drain(..cut + 2).collect();
                    let Some(data) = message.lines().find_map(|l| l.strip_prefix("data:")) else {
                        continue;
                    };
                    let Ok(event) = serde_json::from_str::<Value>(data.trim()) else {
                        continue;
                    };
                    if let Some(text) = event.pointer("/content/0/text").and_then(Value::as_str)
                        && let Some(at) = sent.lock().ok().and_then(|s| s.get(text).copied())
                    {
                        if let Ok(mut l) = latencies.lock() {
                            l.push(at.elapsed());
                        }
                        got += 1;
                    }
                }
            }
            got
        }));
    }

    let started = Instant::now();
    let mut send_times = Vec::new();
    for round in 0..per_session {
        for id in &ids {
            let text = format!("{id}-{round}");
            let body =
                json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]});
            let t0 = Instant::now();
            if let Ok(mut s) = sent.lock() {
                s.insert(text, t0);
            }
            let status = call(
                reqwest::Method::POST,
                format!("/v1/sessions/{id}/events"),
                Some(body),
            )
            .await?
            .status();
            if !status.is_success() {
                bail!("send: {status}");
            }
            send_times.push(t0.elapsed());
        }
    }
    let sending = started.elapsed();
    let mut delivered = 0;
    for task in tasks {
        delivered += tokio::time::timeout(Duration::from_secs(120), task).await??;
    }
    let total = started.elapsed();
    let mut l = latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    l.sort_unstable();
    let pct = |p: f64| l[((p * l.len() as f64).ceil() as usize).clamp(1, l.len()) - 1];
    let (send50, send95) = corral_bench::p50_p95(&send_times).context("no sends")?;
    println!(
        "sends through the API: {} in {sending:.2?} = {:.0}/s (p50 {send50:.1?}, p95 {send95:.1?})",
        send_times.len(),
        send_times.len() as f64 / sending.as_secs_f64()
    );
    println!(
        "SSE delivery to {streams} streams over {sessions} sessions: {delivered} of {} events in {total:.2?} = {:.0} events/s",
        streams * per_session,
        delivered as f64 / total.as_secs_f64()
    );
    println!(
        "send → delivery with {streams} streams: p50 {:.1?}, p99 {:.1?}",
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}
