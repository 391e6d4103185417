//! Noisy neighbour: tenant B's send → delivery latency through one gateway, measured alone and then while tenant A
//! abuses the same gateway and Redis, in one run. A sends events of the largest size (and some over it) from
//! several connections as fast as they go, holds more event streams than it may, and fills its sessions to their
//! cap. Everything runs with the gateway's default limits (per-key request, byte and stream caps; event and session
//! caps). Reports B's p50 and p99 in both phases, their ratio, and what A got.
//!
//! The gateway runs in this process against a real redis-server and the kube-apiserver of `$KUBECONFIG` (the light
//! mode: `make apiserver-up`, CRDs applied). Usage: `noisy_neighbour [ROUNDS] [A_STREAMS] [A_SENDERS]`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use corral_gateway::{admin, auth::KeyIndex, ratelimit::Limiter, server, state::Settings};
use corral_runtime::Readiness;
use corral_session::{Config, Store, testing::RedisServer};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A tenant: its API key and sessions.
struct Tenant {
    key: String,
    sessions: Vec<String>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let arg = |i: usize, default: usize| -> usize {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (rounds, a_streams, a_senders) = (arg(1, 200), arg(2, 150), arg(3, 4));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kube = kube::Client::try_default().await.context("KUBECONFIG")?;
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let config = Config::default();
    let max_event = config.max_event_bytes;
    let store = Store::connect(&redis.url(), config).await?;
    let (keys, watch) = KeyIndex::watch(kube.clone());
    tokio::spawn(watch);
    if !keys.ready().await {
        bail!("the API key reflector did not sync");
    }
    // The defaults of `corral-gateway serve`.
    let limiter = Limiter::new(50, 100)
        .with_bytes(8 << 20, 32 << 20)
        .with_streams(100);
    let state = server::state(kube.clone(), store, keys, limiter, Settings::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let readiness = Readiness::default();
    readiness.set(true);
    tokio::spawn(server::serve(listener, state, readiness, std::future::pending()));

    let b = tenant(&kube, &url, "b", 1).await?;
    let a = Arc::new(tenant(&kube, &url, "a", 4).await?);

    let b_http = reqwest::Client::new();
    let alone = measure(&b_http, &url, &b, rounds, "alone").await?;

    // A's abuse, in the background until B's second measurement ends.
    let stop = CancellationToken::new();
    let statuses: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let streamed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let a_http = reqwest::Client::builder().pool_max_idle_per_host(1000).build()?;
    let mut abuse = Vec::new();
    let mut opened = 0;
    for i in 0..a_streams {
        let id = &a.sessions[i % a.sessions.len()];
        let res = a_http
            .get(format!("{url}/v1/sessions/{id}/events/stream"))
            .header("x-api-key", &a.key)
            .send()
            .await?;
        count(&statuses, res.status().as_u16());
        if !res.status().is_success() {
            continue;
        }
        opened += 1;
        let (stop, streamed) = (stop.clone(), streamed.clone());
        abuse.push(tokio::spawn(async move {
            let mut body = res.bytes_stream();
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    chunk = body.next() => match chunk {
                        Some(Ok(chunk)) => {
                            streamed.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
                        }
                        _ => break,
                    },
                }
            }
        }));
    }
    // Events just under the cap (their JSON is a few bytes more than the text), and now and then one over it. The
    // bodies are made once: A's own serialising would otherwise take this process's CPU (which the gateway shares)
    // and be billed to the gateway.
    let big = "x".repeat(max_event - 200);
    let over = "x".repeat(max_event + 1024);
    let body = |text: &str| -> &'static [u8] {
        let body = json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]});
        Box::leak(body.to_string().into_bytes().into_boxed_slice())
    };
    let (big_body, over_body) = (body(&big), body(&over));
    for sender in 0..a_senders {
        let (stop, statuses, a, http, url) = (
            stop.clone(),
            statuses.clone(),
            a.clone(),
            a_http.clone(),
            url.clone(),
        );
        abuse.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.is_cancelled() {
                let id = &a.sessions[(sender + n) % a.sessions.len()];
                let body = if n % 10 == 9 { over_body } else { big_body };
                match http
                    .post(format!("{url}/v1/sessions/{id}/events"))
                    .header("x-api-key", &a.key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                {
                    Ok(res) => count(&statuses, res.status().as_u16()),
                    Err(_) => count(&statuses, 0),
                }
                n += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let abused_started = Instant::now();
    let abused = measure(&b_http, &url, &b, rounds, "while A abuses").await?;
    let abused_for = abused_started.elapsed();
    stop.cancel();
    for task in abuse {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }

    let p = |l: &[Duration], q: f64| corral_bench::percentile(l, q).unwrap_or_default();
    let (b50, b99) = (p(&alone, 0.50), p(&alone, 0.99));
    let (n50, n99) = (p(&abused, 0.50), p(&abused, 0.99));
    println!(
        "B alone: send → delivery over {} events: p50 {b50:.1?}, p99 {b99:.1?}",
        alone.len()
    );
    println!(
        "B while A abuses: send → delivery over {} events: p50 {n50:.1?}, p99 {n99:.1?}",
        abused.len()
    );
    println!(
        "ratio p99 abused/alone: {:.2}",
        n99.as_secs_f64() / b99.as_secs_f64().max(1e-9)
    );
    let statuses = statuses.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let summary: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    println!(
        "A: {a_senders} senders of {} KiB events, {opened} of {a_streams} streams opened, {:.1} MiB streamed in {abused_for:.1?}; answers {}",
        big.len() / 1024,
        streamed.load(std::sync::atomic::Ordering::Relaxed) as f64 / (1 << 20) as f64,
        summary.join(", ")
    );
    Ok(())
}

fn count(statuses: &Mutex<BTreeMap<u16, u64>>, status: u16) {
    if let Ok(mut s) = statuses.lock() {
        *s.entry(status).or_default() += 1;
    }
}

/// A new namespace with a key, an agent, an environment and `sessions` sessions.
async fn tenant(kube: &kube::Client, url: &str, name: &str, sessions: usize) -> anyhow::Result<Tenant> {
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let ns = format!("bench-noisy-{name}-{suffix}");
    let (key, _) = admin::create_key(kube, &ns, None).await?;
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = http
            .request(method, format!("{url}{path}"))
            .header("x-api-key", &key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send()
    };
    for _ in 0..200 {
        if call(reqwest::Method::GET, "/v1/agents", None).await?.status() != 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let agent: Value = call(
        reqwest::Method::POST,
        "/v1/agents",
        Some(json!({"name": "a", "model": "m"})),
    )
    .await?
    .json()
    .await?;
    let env: Value = call(
        reqwest::Method::POST,
        "/v1/environments",
        Some(json!({"name": "e"})),
    )
    .await?
    .json()
    .await?;
    let mut ids = Vec::new();
    for _ in 0..sessions {
        let s: Value = call(
            reqwest::Method::POST,
            "/v1/sessions",
            Some(json!({"agent": agent["id"], "environment_id": env["id"]})),
        )
        .await?
        .json()
        .await?;
        ids.push(s["id"].as_str().context("session id")?.to_owned());
    }
    Ok(Tenant { key, sessions: ids })
}

/// Sends `rounds` small messages to B's session, one every 25 ms (under its request rate), and answers each one's
/// send → delivery latency on a stream of that session.
async fn measure(
    http: &reqwest::Client,
    url: &str,
    b: &Tenant,
    rounds: usize,
    phase: &str,
) -> anyhow::Result<Vec<Duration>> {
    let id = &b.sessions[0];
    let response = http
        .get(format!("{url}/v1/sessions/{id}/events/stream"))
        .header("x-api-key", &b.key)
        .send()
        .await?;
    if !response.status().is_success() {
        bail!("B's stream: {}", response.status());
    }
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let reader = {
        let sent = sent.clone();
        let phase = phase.to_owned();
        tokio::spawn(async move {
            let mut body = response.bytes_stream();
            let mut buffer = String::new();
            let mut latencies = Vec::with_capacity(rounds);
            while latencies.len() < rounds {
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
                        && text.starts_with(&phase)
                        && let Some(at) = sent.lock().ok().and_then(|s| s.get(text).copied())
                    {
                        latencies.push(at.elapsed());
                    }
                }
            }
            latencies
        })
    };
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    for round in 0..rounds {
        tick.tick().await;
        let text = format!("{phase} {round}");
        if let Ok(mut s) = sent.lock() {
            s.insert(text.clone(), Instant::now());
        }
        let body = json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]});
        let status = http
            .post(format!("{url}/v1/sessions/{id}/events"))
            .header("x-api-key", &b.key)
            .json(&body)
            .send()
            .await?
            .status();
        if !status.is_success() {
            bail!("B's send {round} ({phase}): {status}");
        }
    }
    let latencies = tokio::time::timeout(Duration::from_secs(120), reader).await??;
    if latencies.len() < rounds {
        bail!(
            "B's stream delivered {} of {rounds} events ({phase})",
            latencies.len()
        );
    }
    Ok(latencies)
}
