//! The harness's own overhead, with a scripted provider that answers at once and no tools, on a local
//! redis-server (no Kubernetes):
//!
//! 1. per turn: the time from enqueuing a wake-up to the first appended `agent.message`, over `TURNS` turns of
//!    one session, with the harness library's real worker in this process; and the events the harness appended
//!    per second over that loop;
//! 2. memory per concurrent active session: the real `corral-harness serve --agent-file` binary as a child
//!    process, driven with N = 1, 50 and 200 sessions at once whose model replies are held back (so they all stay
//!    active); the child's resident memory (VmRSS) is sampled while all N are in their model call, and
//!    (RSS(N) − RSS(1)) / (N − 1) is reported.
//!
//! `cargo build -p corral-harness --bin corral-harness && cargo run -p corral-bench --bin harness_overhead -- [TURNS]`
//! (default 100 turns). The harness binary is looked for next to this one, or at `CORRAL_HARNESS_BIN`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use corral_api::events::{ContentBlock, EventBody, UserMessage};
use corral_bench::p50_p95;
use corral_harness::agent::{FileAgentSource, manifest::Manifest};
use corral_harness::engine::{Engine, EngineConfig};
use corral_harness::metrics::Metrics;
use corral_harness::status::NoStatus;
use corral_harness::tools::LocalToolRunner;
use corral_harness::worker::{Worker, WorkerConfig};
use corral_session::{Config, Order, Store, testing::RedisServer};
use tokio_util::sync::CancellationToken;

/// Session counts of the memory measurement.
const CONCURRENCY: [usize; 3] = [1, 50, 200];
/// How long the scripted model holds its reply in the memory measurement: longer than starting 200 sessions.
const HOLD: Duration = Duration::from_secs(30);

/// An agent manifest whose scripted model plays `turns` text-only turns, each pausing `delay` before its chunks.
fn manifest(turns: usize, delay: Duration) -> String {
    let mut script = String::from("turns:\n");
    for k in 0..turns {
        script.push_str(&format!(
            "  - content: [{{text: \"reply {k}\"}}]\n    delay_ms: {}\n",
            delay.as_millis()
        ));
    }
    let script: String = script.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "kind: ConfigMap\napiVersion: v1\nmetadata: {{name: s}}\ndata:\n  script.yaml: |\n{script}---\nkind: Agent\n\
         apiVersion: corral.dev/v1alpha1\nmetadata: {{name: a}}\nspec: {{model: {{id: m, provider: {{type: scripted, \
         scriptRef: {{name: s, key: script.yaml}}}}}}}}\n"
    )
}

fn user_message(text: String) -> EventBody {
    EventBody::UserMessage(UserMessage {
        content: vec![ContentBlock::text(text)],
    })
}

/// Part 1: wake-up → first `agent.message` per turn, and events appended per second, in this process.
async fn overhead(store: &Store, turns: usize) -> anyhow::Result<()> {
    let agents = Arc::new(FileAgentSource::from_manifest(&Manifest::parse(&manifest(
        turns,
        Duration::ZERO,
    ))?)?);
    let metrics = Metrics::default();
    let engine = Arc::new(Engine::new(
        store.clone(),
        Arc::new(LocalToolRunner::new(Default::default(), None)),
        Arc::new(NoStatus),
        EngineConfig::default(),
        metrics.clone(),
    ));
    let config = WorkerConfig {
        namespace: "overhead".into(),
        name: "bench".into(),
        concurrency: 4,
        visibility: Duration::from_secs(30),
        grace: Duration::from_secs(5),
    };
    let worker = Arc::new(Worker::new(
        store.clone(),
        engine,
        agents,
        config,
        metrics.clone(),
    ));
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(worker.run(shutdown.clone()));
    let log = store.session("overhead", "s");
    let mut follower = log.follow(None).await?;
    let mut samples = Vec::with_capacity(turns);
    let started = Instant::now();
    for k in 0..turns {
        log.append_user([user_message(format!("m{k}"))]).await?;
        let t0 = Instant::now();
        store.enqueue("overhead", "s").await?;
        let mut first = None;
        loop {
            match follower.next().await?.event.body {
                EventBody::AgentMessage(_) if first.is_none() => first = Some(t0.elapsed()),
                EventBody::SessionStatusIdle(_) => break,
                EventBody::SessionError(e) => bail!("turn {k} failed: {e:?}"),
                _ => {}
            }
        }
        samples.push(first.context("a turn ended without an agent.message")?);
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    task.await??;
    let (p50, p95) = p50_p95(&samples).context("no turns")?;
    let appended = metrics.events_appended.get();
    println!("wake-up → first agent.message over {turns} turns: p50 {p50:.1?}, p95 {p95:.1?}");
    println!(
        "events appended by the harness: {appended} in {elapsed:.2?} = {:.0}/s (turn loop included)",
        appended as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

/// The `corral-harness` binary: `CORRAL_HARNESS_BIN`, or next to this benchmark's binary.
fn harness_bin() -> anyhow::Result<PathBuf> {
    let path = match std::env::var_os("CORRAL_HARNESS_BIN") {
        Some(path) => PathBuf::from(path),
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no directory")?
            .join("corral-harness"),
    };
    if !path.is_file() {
        bail!(
            "{} not found: build it with `cargo build -p corral-harness --bin corral-harness` or set CORRAL_HARNESS_BIN",
            path.display()
        );
    }
    Ok(path)
}

/// A child process killed when dropped.
struct Harness(Child);

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?)
}

/// How many of `sessions` have their model request under way and not yet answered, and how many have been
/// answered.
async fn progress(store: &Store, namespace: &str, sessions: usize) -> anyhow::Result<(usize, usize)> {
    let (mut started, mut answered) = (0, 0);
    for i in 0..sessions {
        let page = store
            .session(namespace, &format!("s{i}"))
            .range(None, 100, Order::Asc)
            .await?;
        let has = |f: fn(&EventBody) -> bool| page.events.iter().any(|e| f(&e.event.body));
        if has(|b| matches!(b, EventBody::AgentMessage(_) | EventBody::SessionError(_))) {
            answered += 1;
        } else if has(|b| matches!(b, EventBody::SpanModelRequestStart(_))) {
            started += 1;
        }
    }
    Ok((started, answered))
}

/// Part 2: the serving binary's resident memory with `n` sessions active at once, in KiB (idle, active).
async fn memory(
    bin: &Path,
    redis: &RedisServer,
    store: &Store,
    agent_file: &Path,
    n: usize,
) -> anyhow::Result<(u64, u64)> {
    let namespace = format!("memory-{n}");
    let child = Command::new(bin)
        .args(["serve", "--redis-url", &redis.url(), "--namespace", &namespace])
        .args(["--concurrency", &n.to_string(), "--metrics-addr", "127.0.0.1:0"])
        .arg("--agent-file")
        .arg(agent_file)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let harness = Harness(child);
    let pid = harness.0.id();
    // Let it connect and settle before the idle sample.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib(pid)?;
    for i in 0..n {
        let id = format!("s{i}");
        store
            .session(&namespace, &id)
            .append_user([user_message("hello".into())])
            .await?;
        store.enqueue(&namespace, &id).await?;
    }
    let deadline = Instant::now() + HOLD / 2;
    loop {
        let (started, answered) = progress(store, &namespace, n).await?;
        if answered > 0 {
            bail!("{answered} of {n} sessions answered before all were active: raise HOLD");
        }
        if started == n {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "only {started} of {n} sessions became active within {:?}",
                HOLD / 2
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut active = 0;
    for _ in 0..5 {
        active = active.max(rss_kib(pid)?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, answered) = progress(store, &namespace, n).await?;
    if answered > 0 {
        bail!("{answered} of {n} sessions answered while memory was sampled: raise HOLD");
    }
    drop(harness);
    Ok((idle, active))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let turns: usize = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .with_context(|| format!("TURNS must be a number, not {arg:?}"))?,
        None => 100,
    };
    let bin = harness_bin()?;
    let redis = RedisServer::start().context("starting redis-server")?;
    let store = Store::connect(
        &redis.url(),
        Config {
            block: Duration::from_millis(500),
            ..Config::default()
        },
    )
    .await?;
    overhead(&store, turns).await?;

    let agent_file = redis.dir().join("agent.yaml");
    std::fs::write(&agent_file, manifest(1, HOLD))?;
    let mut rss = Vec::new();
    for n in CONCURRENCY {
        let (idle, active) = memory(&bin, &redis, &store, &agent_file, n).await?;
        println!(
            "corral-harness serve, {n} active session(s): VmRSS {:.1} MiB (idle before: {:.1} MiB)",
            active as f64 / 1024.0,
            idle as f64 / 1024.0
        );
        rss.push((n, active));
    }
    let (one, base) = rss[0];
    for &(n, active) in &rss[1..] {
        println!(
            "memory per active session, (RSS({n}) − RSS({one})) / {}: {:.1} KiB",
            n - one,
            (active as f64 - base as f64) / (n - one) as f64
        );
    }
    Ok(())
}
