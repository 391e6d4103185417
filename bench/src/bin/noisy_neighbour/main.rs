//! Noisy neighbour: tenant B's send → delivery latency through one gateway, measured alone and then while tenant A
//! abuses the same gateway and Redis, several times in one run. A sends events of the largest size (and some over
//! it) from several connections as fast as they go, holds more event streams than it may, and fills its sessions
//! towards their cap. Everything runs with the gateway's default limits (per-key and per-tenant request, byte and
//! stream caps; event and session caps). Reports B's p50 and p99 in both phases of each run, the ratio of the p99s
//! per run and their median (the verdict), and what A got.
//!
//! Three kinds of process, as in a deployment: the release `corral-gateway` (next to this binary) against a real
//! redis-server and the kube-apiserver of `$KUBECONFIG` (the light mode: `make apiserver-up`, CRDs applied); tenant
//! B's client (this process); tenant A's client (this binary again, `abuse ...`, see [`abuser`]). Usage:
//! `noisy_neighbour [ROUNDS] [A_STREAMS] [A_SENDERS] [RUNS]`.

mod abuser;
mod gateway;
mod redis_watch;

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use corral_gateway::admin;
use corral_session::{Config, testing::RedisServer};
use futures::StreamExt;
use serde_json::{Value, json};

/// B's messages slower than this are counted, and split by where the time went (the send, or the delivery after it).
const SLOW: Duration = Duration::from_millis(50);

/// A tenant: its API key, agent and environment, and sessions.
struct Tenant {
    key: String,
    agent: String,
    environment: String,
    sessions: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new()?;
    if args.first().map(String::as_str) == Some("abuse") {
        return runtime.block_on(abuser::run(abuser::Orders::parse(&args[1..])?));
    }
    runtime.block_on(bench(&args))
}

async fn bench(args: &[String]) -> anyhow::Result<()> {
    let arg =
        |i: usize, default: usize| -> usize { args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default) };
    let (rounds, a_streams, a_senders, runs) = (arg(0, 1000), arg(1, 150), arg(2, 4), arg(3, 3));
    let kube = kube::Client::try_default().await.context("KUBECONFIG")?;
    let redis = tokio::task::spawn_blocking(RedisServer::start).await??;
    let gateway = gateway::Gateway::start(&redis.url()).await?;
    let mut watch = redis_watch::RedisWatch::connect(&redis.url()).await?;
    let url = gateway.url.clone();
    println!("gateway pid {}", gateway.pid);
    let http = reqwest::Client::new();
    let b = tenant(&kube, &http, &url, "b").await?;
    let b_session = new_session(&http, &url, &b).await?;
    let mut a = tenant(&kube, &http, &url, "a").await?;

    let p = |l: &[Duration], q: f64| corral_bench::percentile(l, q).unwrap_or_default();
    let (mut all_alone, mut all_abused, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=runs {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load = load.split_whitespace().next().unwrap_or("?").to_owned();
        watch.reset().await?;
        let (cpu_at, at) = (cpu_seconds(gateway.pid), Instant::now());
        let alone = measure(&http, &url, &b, &b_session, rounds, &format!("alone {run}")).await?;
        let quiet = watch.stalls().await?;
        let cpu_alone = (cpu_seconds(gateway.pid) - cpu_at) / at.elapsed().as_secs_f64();
        // A's fresh sessions for this run, so that every run's abuse is the same (its sessions fill up within one).
        a.sessions.clear();
        for _ in 0..4 {
            let id = new_session(&http, &url, &a).await?;
            a.sessions.push(id);
        }
        let orders = abuser::Orders {
            url: url.clone(),
            key: a.key.clone(),
            streams: a_streams,
            senders: a_senders,
            max_event_bytes: Config::default().max_event_bytes,
            sessions: a.sessions.clone(),
        };
        let mut abuser = Command::new(std::env::current_exe()?)
            .arg("abuse")
            .args(orders.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        watch.reset().await?;
        let (cpu_at, at) = (cpu_seconds(gateway.pid), Instant::now());
        let abused = measure(&http, &url, &b, &b_session, rounds, &format!("abused {run}")).await;
        let cpu_abused = (cpu_seconds(gateway.pid) - cpu_at) / at.elapsed().as_secs_f64();
        drop(abuser.stdin.take());
        let output = tokio::task::spawn_blocking(move || abuser.wait_with_output()).await??;
        let abused = abused?;
        let loud = watch.stalls().await?;
        let said = String::from_utf8_lossy(&output.stdout);
        // No figure without the abuse: A must have run to the end.
        let Some(a_line) = said
            .lines()
            .find(|l| l.starts_with("A: "))
            .filter(|_| output.status.success())
        else {
            bail!("tenant A's client failed ({}): {said}", output.status);
        };
        let (slow_alone, slow_abused) = (alone.slow(SLOW), abused.slow(SLOW));
        let (alone, abused) = (alone.latencies, abused.latencies);
        let (b99, n99) = (p(&alone, 0.99), p(&abused, 0.99));
        let ratio = n99.as_secs_f64() / b99.as_secs_f64().max(1e-9);
        println!(
            "run {run} (load {load}): B alone p50 {:.1?}, p99 {b99:.1?}; while A abuses p50 {:.1?}, p99 {n99:.1?}; ratio {ratio:.2}; {a_line}",
            p(&alone, 0.5),
            p(&abused, 0.5),
        );
        println!(
            "run {run} redis: longest fsync alone {} ms, while A abuses {} ms; took in {:.0} MiB alone, {:.0} MiB while A abuses; sent {:.0} MiB alone, {:.0} MiB while A abuses; AOF rewrites so far {}; B's messages over {SLOW:?} alone {} ({} in the send), while A abuses {} ({} in the send)",
            quiet.fsync_max_ms,
            loud.fsync_max_ms,
            quiet.mib_in,
            loud.mib_in,
            quiet.mib_out,
            loud.mib_out,
            loud.rewrites,
            slow_alone.0,
            slow_alone.1,
            slow_abused.0,
            slow_abused.1,
        );
        println!(
            "run {run} gateway: CPU alone {:.0} %, while A abuses {:.0} % (of one core)",
            cpu_alone * 100.0,
            cpu_abused * 100.0
        );
        std::io::stdout().flush()?;
        ratios.push(ratio);
        all_alone.extend(alone);
        all_abused.extend(abused);
        // A's closed streams and refused uploads settle before B measures alone again.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    drop(gateway);

    println!(
        "B alone: send → delivery over {} events in {runs} runs: p50 {:.1?}, p99 {:.1?}",
        all_alone.len(),
        p(&all_alone, 0.5),
        p(&all_alone, 0.99)
    );
    println!(
        "B while A abuses: send → delivery over {} events in {runs} runs: p50 {:.1?}, p99 {:.1?}",
        all_abused.len(),
        p(&all_abused, 0.5),
        p(&all_abused, 0.99)
    );
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    println!(
        "ratio p99 abused/alone: {median:.2} (median of runs: {})",
        each.join(", ")
    );
    Ok(())
}

/// The CPU time `pid` has used so far (user and system), in seconds; 0 when it cannot be read.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 14th and 15th of the line.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

/// A new namespace with a key, an agent and an environment.
async fn tenant(
    kube: &kube::Client,
    http: &reqwest::Client,
    url: &str,
    name: &str,
) -> anyhow::Result<Tenant> {
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let ns = format!("bench-noisy-{name}-{suffix}");
    let (key, _) = admin::create_key(kube, &ns, None).await?;
    for _ in 0..200 {
        let res = http
            .get(format!("{url}/v1/agents"))
            .header("x-api-key", &key)
            .send()
            .await?;
        if res.status() != 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let create = |path: &str, body: Value| {
        http.post(format!("{url}{path}"))
            .header("x-api-key", &key)
            .json(&body)
            .send()
    };
    let agent: Value = create("/v1/agents", json!({"name": "a", "model": "m"}))
        .await?
        .json()
        .await?;
    let env: Value = create("/v1/environments", json!({"name": "e"}))
        .await?
        .json()
        .await?;
    Ok(Tenant {
        agent: agent["id"].as_str().context("agent id")?.to_owned(),
        environment: env["id"].as_str().context("environment id")?.to_owned(),
        key,
        sessions: Vec::new(),
    })
}

/// A new session of `tenant`'s agent.
async fn new_session(http: &reqwest::Client, url: &str, tenant: &Tenant) -> anyhow::Result<String> {
    let s: Value = http
        .post(format!("{url}/v1/sessions"))
        .header("x-api-key", &tenant.key)
        .json(&json!({"agent": tenant.agent, "environment_id": tenant.environment}))
        .send()
        .await?
        .json()
        .await?;
    Ok(s["id"].as_str().context("session id")?.to_owned())
}

/// One phase of B's: each message's send → delivery latency, and how long its send (the `POST`) took of that.
struct Phase {
    latencies: Vec<Duration>,
    posts: Vec<Duration>,
}

impl Phase {
    /// Of the messages slower than `over`: how many there were, and in how many the send took most of the time.
    fn slow(&self, over: Duration) -> (usize, usize) {
        let slow: Vec<usize> = (0..self.latencies.len())
            .filter(|&i| self.latencies[i] > over)
            .collect();
        let in_send = slow
            .iter()
            .filter(|&&i| self.posts.get(i).is_some_and(|p| *p * 2 > self.latencies[i]))
            .count();
        (slow.len(), in_send)
    }
}

/// Sends `rounds` small messages to B's session `id`, one every 25 ms (under its request rate), and answers each one's
/// send → delivery latency on a stream of that session.
async fn measure(
    http: &reqwest::Client,
    url: &str,
    b: &Tenant,
    id: &str,
    rounds: usize,
    phase: &str,
) -> anyhow::Result<Phase> {
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
            let mut latencies = vec![Duration::ZERO; rounds];
            let mut delivered = 0;
            while delivered < rounds {
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
                        && text.starts_with(&format!("{phase} "))
                        && let Some(at) = sent.lock().ok().and_then(|s| s.get(text).copied())
                        && let Some(round) = text.rsplit(' ').next().and_then(|r| r.parse::<usize>().ok())
                        && round < rounds
                    {
                        latencies[round] = at.elapsed();
                        delivered += 1;
                    }
                }
            }
            (latencies, delivered)
        })
    };
    let mut tick = tokio::time::interval(Duration::from_millis(25));
    let mut posts = Vec::with_capacity(rounds);
    for round in 0..rounds {
        tick.tick().await;
        let text = format!("{phase} {round}");
        let at = Instant::now();
        if let Ok(mut s) = sent.lock() {
            s.insert(text.clone(), at);
        }
        let body = json!({"events": [{"type": "user.message", "content": [{"type": "text", "text": text}]}]});
        let res = http
            .post(format!("{url}/v1/sessions/{id}/events"))
            .header("x-api-key", &b.key)
            .json(&body)
            .send()
            .await?;
        let status = res.status();
        posts.push(at.elapsed());
        if !status.is_success() {
            bail!(
                "B's send {round} ({phase}): {status} {}",
                res.text().await.unwrap_or_default()
            );
        }
    }
    let (latencies, delivered) = tokio::time::timeout(Duration::from_secs(120), reader).await??;
    if delivered < rounds {
        bail!("B's stream delivered {delivered} of {rounds} events ({phase})");
    }
    Ok(Phase { latencies, posts })
}
