//! The local runner (`corral-harness run`): one session on this machine without a cluster. The same engine as the
//! harness, the session log in a Redis it starts when none is given, tools in a local sandbox daemon, and the
//! session's events printed as they are appended.

mod print;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use corral_api::events::{ContentBlock, EventBody, StopReason, UserMessage};
use corral_sandbox_protocol::LocalSandboxOptions;
use corral_session::{Config, Store, testing::RedisServer};
use tokio_util::sync::CancellationToken;

pub use print::describe;

use crate::agent::{FileAgentSource, manifest::Manifest};
use crate::engine::{Engine, EngineConfig, Outcome};
use crate::mcp::{McpHub, credentials::StaticCredentials};
use crate::metrics::Metrics;
use crate::status::NoStatus;
use crate::tools::LocalToolRunner;

/// What to run.
#[derive(Clone, Debug)]
pub struct LocalRun {
    /// The agent manifest (Agent plus the ConfigMaps and Secrets it references).
    pub agent_file: PathBuf,
    /// The user message.
    pub prompt: String,
    /// A Redis to keep the log in; a throw-away `redis-server` is started when `None`.
    pub redis_url: Option<String>,
    /// The sandbox's workspace directory; a temporary one when `None`.
    pub workspace: Option<PathBuf>,
    /// The session id (continue a session kept in `redis_url`); a new one when `None`.
    pub session: Option<String>,
    /// Engine settings.
    pub engine: EngineConfig,
}

/// The namespace local sessions live in.
pub const LOCAL_NAMESPACE: &str = "local";

/// Runs one turn of a session and prints its events to `out`. Returns how the turn ended.
pub async fn run(options: LocalRun, out: &mut (dyn Write + Send)) -> anyhow::Result<StopReason> {
    let manifest = Manifest::from_file(&options.agent_file)?;
    let agents = FileAgentSource::from_manifest(&manifest)?;
    let agent = agents.agent();
    let _server;
    let url = match &options.redis_url {
        Some(url) => url.clone(),
        None => {
            let server = tokio::task::spawn_blocking(RedisServer::start)
                .await?
                .context("starting a local redis-server (install it, or pass --redis-url)")?;
            let url = server.url();
            _server = server;
            url
        }
    };
    let store = Store::connect(&url, Config::default()).await?;
    let session = options
        .session
        .clone()
        .unwrap_or_else(|| format!("sesn_local_{}", corral_sandbox_protocol::random_hex(6)));
    let log = store.session(LOCAL_NAMESPACE, &session);
    let start = log.last_cursor().await?;
    writeln!(
        out,
        "session {session} (agent {}, model {})",
        agent.name, agent.spec.model.id
    )?;
    log.append_user([EventBody::UserMessage(UserMessage {
        content: vec![ContentBlock::text(options.prompt.clone())],
    })])
    .await?;
    let runner = Arc::new(LocalToolRunner::new(
        LocalSandboxOptions {
            workspace: options.workspace.clone(),
            ..LocalSandboxOptions::default()
        },
        None,
    ));
    let credentials = StaticCredentials::from_secrets(manifest.secrets.values());
    let engine = Engine::new(
        store.clone(),
        runner.clone(),
        Arc::new(NoStatus),
        options.engine.clone(),
        Metrics::default(),
    )
    .with_mcp(McpHub::new(Arc::new(credentials)));
    let holder = format!(
        "corral-run-{}-{}",
        std::process::id(),
        corral_sandbox_protocol::random_hex(4)
    );
    let lease = log
        .acquire_lease(&holder, std::time::Duration::from_secs(30))
        .await?;
    let cancel = CancellationToken::new();
    let mut follower = log
        .follow(Some(start.unwrap_or(corral_session::Cursor::START)))
        .await?;
    let engine_task = {
        let agent = agent.clone();
        let session = session.clone();
        let log = log.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let renew = async {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(10)).await;
                    if log.renew(&lease).await.is_err() {
                        return;
                    }
                }
            };
            let outcome = tokio::select! {
                outcome = engine.run(LOCAL_NAMESPACE, &session, &agent, lease.token, &cancel) => outcome,
                () = renew => Outcome::Lost,
            };
            let _ = log.release(&lease).await;
            outcome
        })
    };
    let stop = loop {
        let event = tokio::select! {
            event = follower.next() => event?,
            _ = tokio::signal::ctrl_c() => {
                cancel.cancel();
                anyhow::bail!("interrupted");
            }
        };
        if let Some(line) = describe(&event.event) {
            writeln!(out, "{line}")?;
            out.flush()?;
        }
        if let EventBody::SessionStatusIdle(idle) = &event.event.body {
            break idle.stop_reason.clone();
        }
    };
    let outcome = engine_task.await?;
    runner.stop_all().await;
    if outcome != Outcome::Idle {
        anyhow::bail!("the session run ended with {outcome:?}");
    }
    Ok(stop)
}
