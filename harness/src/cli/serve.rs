//! `corral-harness serve`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use corral_harness::agent::{AgentSource, FileAgentSource, kube::KubeAgentSource, manifest::Manifest};
use corral_harness::attachments::AttachmentLoader;
use corral_harness::engine::{Engine, EngineConfig};
use corral_harness::mcp::McpHub;
use corral_harness::mcp::credentials::{CredentialSource, KubeCredentials, StaticCredentials};
use corral_harness::metrics::Metrics;
use corral_harness::outbound::{self, OutboundWall};
use corral_harness::pricing::PriceTable;
use corral_harness::skills::SkillLoader;
use corral_harness::status::{NoStatus, StatusSink, StatusWriter};
use corral_harness::tools::file_resources::{FileResources, GatewayFiles};
use corral_harness::tools::sessions::{SessionCache, Sessions};
use corral_harness::tools::{ClusterToolRunner, LocalToolRunner, ToolRunner};
use corral_harness::worker::{Worker, WorkerConfig};
use corral_runtime::{HealthServer, LogArgs, Readiness};
use corral_sandbox_protocol::LocalSandboxOptions;
use corral_session::{Config, Store};
use tokio_util::sync::CancellationToken;

/// Options of `serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The session log's Redis.
    #[arg(long, env = "CORRAL_REDIS_URL", default_value = "redis://127.0.0.1:6379/")]
    redis_url: String,
    /// The namespace whose sessions this harness serves.
    #[arg(long, env = "CORRAL_NAMESPACE", default_value = "default")]
    namespace: String,
    /// This replica's name (the pod name); a random epoch is added, so a restarted replica never reuses its id.
    #[arg(long, env = "POD_NAME", default_value = "harness")]
    name: String,
    /// Sessions worked on at once.
    #[arg(long, env = "CORRAL_CONCURRENCY", default_value_t = 16)]
    concurrency: usize,
    /// How long a taken wake-up may stay unacknowledged before another replica reclaims it. A backstop only: taking
    /// a session's lease acknowledges its wake-up, and a killed replica's sessions and pending wake-ups are taken
    /// over by a live replica within about a second of its last liveness beat.
    #[arg(long, env = "CORRAL_VISIBILITY_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    visibility_timeout: Duration,
    /// How long running sessions may take to finish on SIGTERM before they are handed back.
    #[arg(long, env = "CORRAL_SHUTDOWN_GRACE", default_value = "45s", value_parser = humantime::parse_duration)]
    shutdown_grace: Duration,
    /// Where to serve /metrics, /healthz and /readyz.
    #[arg(long, env = "CORRAL_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    metrics_addr: SocketAddr,
    /// Compact a session's context above this many estimated tokens (0: never).
    #[arg(long, env = "CORRAL_COMPACTION_BUDGET", default_value_t = 150_000)]
    compaction_budget: u64,
    /// Wait this long before retrying a failed model request (doubled each time).
    #[arg(long, env = "CORRAL_RETRY_BASE", default_value = "2s", value_parser = humantime::parse_duration)]
    retry_base: Duration,
    /// List prices per provider and model (USD per million tokens of each kind), as YAML or JSON: a list of
    /// `{model, provider?, input, output, cacheRead?, cacheWrite?}`. Sessions of unlisted models have no cost.
    #[arg(long, env = "CORRAL_PRICE_TABLE", default_value = "", value_parser = parse_prices)]
    price_table: Arc<PriceTable>,
    /// Local mode: serve every session with the agent of this manifest file and run tools in local sandbox
    /// daemons, without the Kubernetes API.
    #[arg(long, env = "CORRAL_AGENT_FILE")]
    agent_file: Option<PathBuf>,
    /// Local mode: keep each session's sandbox workspace under this directory.
    #[arg(long, env = "CORRAL_WORKSPACE_ROOT", requires = "agent_file")]
    workspace_root: Option<PathBuf>,
    /// MiB of recently run sessions' logs (event JSON) kept between their turns, so a wake-up reads only what was
    /// appended since (0: read each log whole at every wake-up).
    #[arg(long, env = "CORRAL_LOG_CACHE_MIB", default_value_t = 32)]
    log_cache_mib: usize,
    /// Cluster mode: how long to wait for a sandbox pod to become ready.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    sandbox_ready_timeout: Duration,
    /// Cluster mode: how long a tool call waits for a sandbox pod that no node can take (the scheduler says
    /// why) before it fails with that reason; the client is told on the event stream while it waits.
    #[arg(
        long,
        env = "CORRAL_SANDBOX_UNSCHEDULABLE_TIMEOUT",
        default_value = "120s",
        value_parser = humantime::parse_duration
    )]
    sandbox_unschedulable_timeout: Duration,
    /// Cluster mode: the gateway's URL inside the cluster, from which the session's file resources are fetched
    /// (with the token in --gateway-token-file) and copied into its sandbox. Unset: a session with file resources
    /// gets an error from its tool calls saying so.
    #[arg(long, env = "CORRAL_GATEWAY_URL")]
    gateway_url: Option<String>,
    /// Cluster mode: this harness's ServiceAccount token for the gateway (audience `corral-gateway`).
    #[arg(long, env = "CORRAL_GATEWAY_TOKEN_FILE", default_value = corral_harness::tools::file_resources::DEFAULT_TOKEN_FILE)]
    gateway_token_file: std::path::PathBuf,
    /// Cluster mode: hosts the harness may reach although they resolve to internal addresses (comma-separated
    /// host patterns: the platform's `egress.internalHosts`). Any other internal address is refused as a model
    /// endpoint or MCP server; local mode (`--agent-file`) connects anywhere.
    #[arg(long, env = "CORRAL_INTERNAL_HOSTS", value_delimiter = ',')]
    internal_hosts: Vec<String>,
    /// Longest wait for a model API's TCP/TLS connection.
    #[arg(long, env = "CORRAL_MODEL_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    model_connect_timeout: Duration,
    /// Longest wait for a model API's response status and headers after sending a request.
    #[arg(long, env = "CORRAL_MODEL_RESPONSE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    model_response_timeout: Duration,
    /// Longest silence between two events of a model's streamed reply.
    #[arg(long, env = "CORRAL_MODEL_IDLE_TIMEOUT", default_value = "120s", value_parser = humantime::parse_duration)]
    model_idle_timeout: Duration,
    /// Largest event the harness appends, in bytes of its JSON (0: no cap); a bigger tool result or reply ends the
    /// turn with a `session.error`. Set it as the gateway's.
    #[arg(long, env = "CORRAL_MAX_EVENT_BYTES", default_value_t = corral_session::DEFAULT_MAX_EVENT_BYTES)]
    max_event_bytes: usize,
    /// Most bytes of event JSON one session's log holds (0: no cap): the harness's in-memory copy of a running
    /// session is bounded by it. Set it as the gateway's.
    #[arg(long, env = "CORRAL_MAX_SESSION_BYTES", default_value_t = corral_session::DEFAULT_MAX_SESSION_BYTES)]
    max_session_bytes: u64,
    /// Most events one session's log holds (0: no cap). Set it as the gateway's.
    #[arg(long, env = "CORRAL_MAX_SESSION_EVENTS", default_value_t = corral_session::DEFAULT_MAX_SESSION_EVENTS)]
    max_session_events: u64,
    #[command(flatten)]
    log: LogArgs,
}

/// Where agents, tool runs, status and MCP credentials go or come from: local files or the Kubernetes API.
type Sources = (
    Arc<dyn AgentSource>,
    Arc<dyn ToolRunner>,
    Arc<dyn StatusSink>,
    Arc<dyn CredentialSource>,
);

/// Serves until SIGTERM.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    args.log.init()?;
    // A blocked take comes back now and then to reclaim wake-ups held past the visibility timeout (the backstop).
    let config = Config {
        block: (args.visibility_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5)),
        max_event_bytes: args.max_event_bytes,
        session_caps: corral_session::SessionCaps {
            max_bytes: args.max_session_bytes,
            max_events: args.max_session_events,
            ..corral_session::SessionCaps::default()
        },
        ..Config::default()
    };
    corral_harness::providers::ModelTimeouts::set_process_default(corral_harness::providers::ModelTimeouts {
        connect: args.model_connect_timeout,
        response: args.model_response_timeout,
        idle: args.model_idle_timeout,
    });
    let store = Store::connect_waiting(&args.redis_url, config, corral_session::STARTUP_PATIENCE)
        .await
        .with_context(|| format!("connecting to the session log at {}", redact(&args.redis_url)))?;
    let metrics = Metrics::default();
    let mut registry = prometheus_client::registry::Registry::with_prefix("corral_harness");
    metrics.register(&mut registry);
    let readiness = Readiness::default();
    let shutdown = CancellationToken::new();
    let health = HealthServer::new(Arc::new(Mutex::new(registry)), readiness.clone());
    let health_task = tokio::spawn(health.serve(args.metrics_addr, shutdown.clone().cancelled_owned()));

    let mut local_runner = None;
    // The cluster's client, for the attachments' URL sources (their session's environment decides where they go).
    let mut kube_for_urls = None;
    let (agents, tools, status, credentials): Sources = match &args.agent_file {
        Some(path) => {
            let runner = Arc::new(LocalToolRunner::new(
                LocalSandboxOptions::default(),
                args.workspace_root.clone(),
            ));
            local_runner = Some(runner.clone());
            let manifest = Manifest::from_file(path)?;
            (
                Arc::new(FileAgentSource::from_manifest(&manifest)?),
                runner,
                Arc::new(NoStatus),
                Arc::new(StaticCredentials::from_secrets(manifest.secrets.values())),
            )
        }
        None => {
            outbound::install(OutboundWall::closed(args.internal_hosts.clone()));
            let client = kube::Client::try_default()
                .await
                .context("connecting to the Kubernetes API")?;
            let writer = Arc::new(StatusWriter::new(client.clone()));
            kube_for_urls = Some(client.clone());
            // One watch of the namespace's Sessions: wake-ups read their session from it, sandbox waits wake on it and
            // file resources are read from it.
            let cache = SessionCache::new(&args.namespace, &metrics);
            cache.spawn_watch(client.clone(), shutdown.clone());
            let sessions = Sessions::new(client.clone(), Some(cache), &metrics);
            let gateway = args.gateway_url.clone().map(|url| GatewayFiles {
                url,
                token_file: args.gateway_token_file.clone(),
            });
            (
                Arc::new(
                    KubeAgentSource::new(client.clone())
                        .with_skills(Arc::new(
                            SkillLoader::new(gateway.clone()).with_config_maps(client.clone()),
                        ))
                        .with_sessions(sessions.clone(), store.clone()),
                ),
                Arc::new(
                    ClusterToolRunner::new(
                        sessions.clone(),
                        store.connection(),
                        writer.clone(),
                        args.sandbox_ready_timeout,
                    )
                    .with_unschedulable_timeout(args.sandbox_unschedulable_timeout)
                    .with_file_resources(FileResources::new(
                        sessions,
                        store.clone(),
                        gateway,
                    )),
                ),
                writer,
                Arc::new(KubeCredentials::new(client)),
            )
        }
    };
    let engine = Arc::new(
        Engine::new(
            store.clone(),
            tools,
            status,
            EngineConfig {
                compaction_budget: (args.compaction_budget > 0).then_some(args.compaction_budget),
                retry_base: args.retry_base,
                prices: args.price_table.clone(),
                // Attached files come from the gateway, as file resources do (cluster mode only).
                attachments: args
                    .gateway_url
                    .clone()
                    .filter(|_| args.agent_file.is_none())
                    .map(|url| {
                        let loader = AttachmentLoader::new(GatewayFiles {
                            url,
                            token_file: args.gateway_token_file.clone(),
                        });
                        Arc::new(match &kube_for_urls {
                            Some(client) => loader.with_urls(client.clone()),
                            None => loader,
                        })
                    }),
                ..EngineConfig::default()
            },
            metrics.clone(),
        )
        .with_mcp(McpHub::new(credentials))
        .with_log_cache(args.log_cache_mib << 20),
    );
    tokio::spawn(metrics.clone().watch_queue(
        store.clone(),
        args.namespace.clone(),
        Duration::from_secs(5),
        shutdown.clone(),
    ));
    let name = corral_session::liveness::new_replica_id(&args.name);
    let worker = Arc::new(Worker::new(
        store,
        engine,
        agents,
        WorkerConfig {
            namespace: args.namespace.clone(),
            name,
            concurrency: args.concurrency,
            visibility: args.visibility_timeout,
            grace: args.shutdown_grace,
        },
        metrics,
    ));
    let stop = shutdown.clone();
    tokio::spawn(async move {
        corral_runtime::shutdown::signal().await;
        stop.cancel();
    });
    readiness.set(true);
    let result = worker.run(shutdown.clone()).await;
    readiness.set(false);
    shutdown.cancel();
    if let Some(runner) = local_runner {
        runner.stop_all().await;
    }
    let _ = health_task.await;
    tracing::info!("stopped");
    corral_runtime::telemetry::flush();
    result
}

fn parse_prices(text: &str) -> Result<Arc<PriceTable>, String> {
    PriceTable::parse(text).map(Arc::new).map_err(|e| e.to_string())
}

/// The URL without its password.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://***{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}
