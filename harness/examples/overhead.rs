//! The harness's own overhead per turn: from enqueuing a wake-up to the first appended `agent.message`, with a
//! scripted provider that answers at once and no tools; plus events appended per second. Runs the real worker on a
//! local redis-server. `cargo run -p corral-harness --example overhead [turns]`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_api::events::{ContentBlock, EventBody, UserMessage};
use corral_harness::agent::{FileAgentSource, manifest::Manifest};
use corral_harness::engine::{Engine, EngineConfig};
use corral_harness::metrics::Metrics;
use corral_harness::status::NoStatus;
use corral_harness::tools::LocalToolRunner;
use corral_harness::worker::{Worker, WorkerConfig};
use corral_session::{Config, Store, testing::RedisServer};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let turns: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let redis = RedisServer::start().expect("redis-server");
    let store = Store::connect(
        &redis.url(),
        Config {
            block: Duration::from_millis(500),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    let mut script = String::from("turns:\n");
    for k in 0..turns {
        script.push_str(&format!("  - content: [{{text: \"reply {k}\"}}]\n"));
    }
    let script: String = script.lines().map(|l| format!("    {l}\n")).collect();
    let manifest = format!(
        "kind: ConfigMap\napiVersion: v1\nmetadata: {{name: s}}\ndata:\n  script.yaml: |\n{script}---\nkind: Agent\n\
         apiVersion: corral.dev/v1alpha1\nmetadata: {{name: a}}\nspec: {{model: {{id: m, provider: {{type: scripted, \
         scriptRef: {{name: s, key: script.yaml}}}}}}}}\n"
    );
    let agents = Arc::new(FileAgentSource::from_manifest(&Manifest::parse(&manifest).unwrap()).unwrap());
    let metrics = Metrics::default();
    let tools = Arc::new(LocalToolRunner::new(Default::default(), None));
    let engine = Arc::new(Engine::new(
        store.clone(),
        tools,
        Arc::new(NoStatus),
        EngineConfig::default(),
        metrics.clone(),
    ));
    let config = WorkerConfig {
        namespace: "bench".into(),
        name: "bench".into(),
        concurrency: 4,
        visibility: Duration::from_secs(30),
        lease_ttl: Duration::from_secs(15),
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
    let log = store.session("bench", "s");
    let mut follower = log.follow(None).await.unwrap();
    let mut samples = Vec::with_capacity(turns);
    let started = Instant::now();
    for k in 0..turns {
        log.append_user([EventBody::UserMessage(UserMessage {
            content: vec![ContentBlock::text(format!("m{k}"))],
        })])
        .await
        .unwrap();
        let t0 = Instant::now();
        store.enqueue("bench", "s").await.unwrap();
        let mut first = None;
        loop {
            let event = follower.next().await.unwrap();
            match event.event.body {
                EventBody::AgentMessage(_) if first.is_none() => first = Some(t0.elapsed()),
                EventBody::SessionStatusIdle(_) => break,
                _ => {}
            }
        }
        samples.push(first.expect("an agent.message"));
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    let _ = task.await;
    samples.sort();
    let appended = metrics.events_appended.get();
    println!(
        "{turns} turns: wake-up to first agent.message median {:?}, p90 {:?}, max {:?}; {appended} events appended by \
         the harness in {elapsed:?} ({:.0}/s, turn loop included)",
        samples[samples.len() / 2],
        samples[samples.len() * 9 / 10],
        samples[samples.len() - 1],
        appended as f64 / elapsed.as_secs_f64()
    );
    let rss = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(line) = rss.lines().find(|l| l.starts_with("VmRSS")) {
        println!("process {line}");
    }
}
