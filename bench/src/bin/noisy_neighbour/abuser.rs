//! Tenant A, the abuser, in a process of its own (`noisy_neighbour abuse ...`), so that its client work is billed
//! to neither the gateway nor tenant B's client: it holds as many event streams as it may (and tries for more) and
//! sends events of the largest size (every tenth one over it) from several connections as fast as they go, until
//! its stdin closes; then prints one line of what it did and got.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context as _;
use futures::StreamExt;
use serde_json::json;
use std::io::Read as _;
use tokio_util::sync::CancellationToken;

/// What A is told: where, as whom, how hard.
pub struct Orders {
    pub url: String,
    pub key: String,
    pub streams: usize,
    pub senders: usize,
    pub max_event_bytes: usize,
    pub sessions: Vec<String>,
}

impl Orders {
    /// The arguments after `abuse`: URL, key, streams, senders, largest event, session ids.
    pub fn parse(args: &[String]) -> anyhow::Result<Self> {
        let [url, key, streams, senders, max_event_bytes, sessions @ ..] = args else {
            anyhow::bail!("abuse URL KEY STREAMS SENDERS MAX_EVENT_BYTES SESSION...");
        };
        anyhow::ensure!(!sessions.is_empty(), "abuse needs a session");
        Ok(Self {
            url: url.clone(),
            key: key.clone(),
            streams: streams.parse().context("STREAMS")?,
            senders: senders.parse().context("SENDERS")?,
            max_event_bytes: max_event_bytes.parse().context("MAX_EVENT_BYTES")?,
            sessions: sessions.to_vec(),
        })
    }

    /// These orders as arguments after `abuse`.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            self.url.clone(),
            self.key.clone(),
            self.streams.to_string(),
            self.senders.to_string(),
            self.max_event_bytes.to_string(),
        ];
        args.extend(self.sessions.iter().cloned());
        args
    }
}

/// Abuses until stdin closes, then prints `A: ...`.
pub async fn run(orders: Orders) -> anyhow::Result<()> {
    let orders = Arc::new(orders);
    let stop = CancellationToken::new();
    let statuses: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let streamed = Arc::new(AtomicU64::new(0));
    let http = reqwest::Client::builder().pool_max_idle_per_host(1000).build()?;
    let mut tasks = Vec::new();
    let mut opened = 0;
    for i in 0..orders.streams {
        let id = &orders.sessions[i % orders.sessions.len()];
        let res = http
            .get(format!("{}/v1/sessions/{id}/events/stream", orders.url))
            .header("x-api-key", &orders.key)
            .send()
            .await?;
        count(&statuses, res.status().as_u16());
        if !res.status().is_success() {
            continue;
        }
        opened += 1;
        let (stop, streamed) = (stop.clone(), streamed.clone());
        tasks.push(tokio::spawn(async move {
            let mut body = res.bytes_stream();
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    chunk = body.next() => match chunk {
                        Some(Ok(chunk)) => {
                            streamed.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                        }
                        _ => break,
                    },
                }
            }
        }));
    }
    // Events just under the cap (their JSON is a few bytes more than the text), and now and then one over it; the
    // bodies are made once.
    let body = |text: String| -> &'static [u8] {
        let body = json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]});
        Box::leak(body.to_string().into_bytes().into_boxed_slice())
    };
    let big_len = orders.max_event_bytes - 200;
    let (big, over) = (
        body("x".repeat(big_len)),
        body("x".repeat(orders.max_event_bytes + 1024)),
    );
    let started = Instant::now();
    for sender in 0..orders.senders {
        let (stop, statuses, orders, http) = (stop.clone(), statuses.clone(), orders.clone(), http.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.is_cancelled() {
                let id = &orders.sessions[(sender + n) % orders.sessions.len()];
                let body = if n % 10 == 9 { over } else { big };
                let sent = http
                    .post(format!("{}/v1/sessions/{id}/events", orders.url))
                    .header("x-api-key", &orders.key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                count(&statuses, sent.map_or(0, |res| res.status().as_u16()));
                n += 1;
            }
        }));
    }
    // Until the parent closes stdin (or goes away).
    let _ = tokio::task::spawn_blocking(|| std::io::stdin().read_to_end(&mut Vec::new())).await;
    stop.cancel();
    let lasted = started.elapsed();
    for task in tasks {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    }
    let statuses = statuses.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let summary: Vec<String> = statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    println!(
        "A: {} senders of {} KiB events, {opened} of {} streams opened, {:.1} MiB streamed in {lasted:.1?}; answers {}",
        orders.senders,
        big_len / 1024,
        orders.streams,
        streamed.load(Ordering::Relaxed) as f64 / f64::from(1 << 20),
        summary.join(", ")
    );
    Ok(())
}

fn count(statuses: &Mutex<BTreeMap<u16, u64>>, status: u16) {
    if let Ok(mut s) = statuses.lock() {
        *s.entry(status).or_default() += 1;
    }
}
