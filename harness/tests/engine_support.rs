//! Shared setup of the engine tests: a real redis-server, a real local sandbox daemon, the scripted provider.
//!
//! The sandbox daemon binary must be built first: `cargo build -p corral-sandbox`.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use corral_api::events::{ContentBlock, EventBody, UserMessage};
use corral_harness::agent::{FileAgentSource, ResolvedAgent, manifest::Manifest};
use corral_harness::engine::{Engine, EngineConfig, Outcome};
use corral_harness::log::{LogEntry, LogView};
use corral_harness::metrics::Metrics;
use corral_harness::status::NoStatus;
use corral_harness::tools::LocalToolRunner;
use corral_sandbox_protocol::LocalSandboxOptions;
use corral_session::{Config, Store, testing::RedisServer};
use tokio_util::sync::CancellationToken;

pub const NS: &str = "test";

pub struct Harness {
    pub redis: RedisServer,
    pub store: Store,
    pub engine: Arc<Engine>,
    pub agent: Arc<ResolvedAgent>,
    pub metrics: Metrics,
}

/// An agent manifest with the built-in toolset, optional extra tools (YAML list items) and `script`.
pub fn manifest(script: &str, extra_tools: &str) -> String {
    let script: String = script.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "kind: ConfigMap\napiVersion: v1\nmetadata: {{name: s}}\ndata:\n  script.yaml: |\n{script}---\n\
         apiVersion: corral.dev/v1alpha1\nkind: Agent\nmetadata: {{name: tester}}\nspec:\n  model:\n    id: scripted\n    \
         provider: {{type: scripted, scriptRef: {{name: s, key: script.yaml}}}}\n  system: You are a test.\n  tools:\n    \
         - type: agent_toolset_20260401\n{extra_tools}"
    )
}

pub async fn harness(script: &str, extra_tools: &str) -> Harness {
    harness_with(script, extra_tools, EngineConfig::default()).await
}

/// [`harness`] with engine settings (the retry wait is always shortened).
pub async fn harness_with(script: &str, extra_tools: &str, config: EngineConfig) -> Harness {
    let redis = tokio::task::spawn_blocking(RedisServer::start)
        .await
        .unwrap()
        .expect("redis-server");
    let store = Store::connect(&redis.url(), Config::default()).await.unwrap();
    let source =
        FileAgentSource::from_manifest(&Manifest::parse(&manifest(script, extra_tools)).unwrap()).unwrap();
    let metrics = Metrics::default();
    Harness {
        engine: engine_with(store.clone(), config, metrics.clone()),
        redis,
        store,
        agent: source.agent(),
        metrics,
    }
}

/// A new engine (with its own local sandbox) appending to `store`.
pub fn engine(store: Store) -> Arc<Engine> {
    engine_with(store, EngineConfig::default(), Metrics::default())
}

/// [`engine`] with engine settings and metrics.
pub fn engine_with(store: Store, config: EngineConfig, metrics: Metrics) -> Arc<Engine> {
    let runner = Arc::new(LocalToolRunner::new(
        LocalSandboxOptions {
            isolation: corral_sandbox_protocol::Isolation::Plain,
            ..LocalSandboxOptions::default()
        },
        None,
    ));
    let config = EngineConfig {
        retry_base: Duration::from_millis(10),
        ..config
    };
    Arc::new(Engine::new(store, runner, Arc::new(NoStatus), config, metrics))
}

impl Harness {
    /// Stops this harness's engine and store (as a process exit would) and starts new ones on the same Redis.
    pub async fn restart(&mut self) {
        let store = Store::connect(&self.redis.url(), Config::default())
            .await
            .unwrap();
        self.engine = engine(store.clone());
        self.store = store;
    }

    pub async fn say(&self, session: &str, text: &str) {
        self.store
            .session(NS, session)
            .append_user([EventBody::UserMessage(UserMessage {
                content: vec![ContentBlock::text(text)],
            })])
            .await
            .unwrap();
    }

    /// Takes the lease and runs the engine until it stops.
    pub async fn run(&self, session: &str) -> Outcome {
        let log = self.store.session(NS, session);
        let lease = log
            .acquire_lease(
                &format!("test-{}", corral_sandbox_protocol::random_hex(4)),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        let outcome = self
            .engine
            .run(NS, session, &self.agent, lease.token, &CancellationToken::new())
            .await;
        log.release(&lease).await.unwrap();
        outcome
    }

    pub async fn entries(&self, session: &str) -> Vec<LogEntry> {
        let mut view = LogView::new(&self.store, NS, session);
        view.refresh().await.unwrap();
        view.entries().to_vec()
    }

    pub async fn types(&self, session: &str) -> Vec<String> {
        self.entries(session)
            .await
            .iter()
            .map(|e| e.type_name().to_owned())
            .collect()
    }

    /// Waits until the log holds an event of type `ty`.
    pub async fn wait_for(&self, session: &str, ty: &str) {
        for _ in 0..500 {
            if self.types(session).await.iter().any(|t| t == ty) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {ty} in {:?}", self.types(session).await);
    }
}

/// The text of every event of type `ty` (message text, tool result text).
pub fn texts(entries: &[LogEntry], ty: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e.type_name() == ty)
        .map(|e| {
            let content = match &e.body {
                EventBody::AgentMessage(m) => m.content.clone(),
                EventBody::AgentToolResult(r) => r.content.clone().unwrap_or_default(),
                _ => Vec::new(),
            };
            content
                .iter()
                .filter_map(|b| b.as_text().map(str::to_owned))
                .collect()
        })
        .collect()
}

pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}
