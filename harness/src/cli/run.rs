//! `corral-harness run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use corral_api::events::StopReason;
use corral_harness::engine::EngineConfig;
use corral_harness::local::{LocalRun, run as run_local};

/// Options of `run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The agent manifest: an Agent plus the ConfigMaps/Secrets it references, in one YAML file.
    #[arg(long)]
    agent: PathBuf,
    /// The user message to send.
    #[arg(long)]
    prompt: String,
    /// Keep the log in this Redis (and allow continuing the session with --session); a throw-away redis-server
    /// is started when omitted.
    #[arg(long, env = "CORRAL_REDIS_URL")]
    redis_url: Option<String>,
    /// Continue this session (needs --redis-url).
    #[arg(long, requires = "redis_url")]
    session: Option<String>,
    /// The sandbox's workspace directory; a temporary directory when omitted.
    #[arg(long)]
    workspace: Option<PathBuf>,
    /// Log filter for the harness's own logs (to stderr).
    #[arg(long = "log", env = "CORRAL_LOG", default_value = "warn")]
    log: String,
}

/// Runs one turn; exit code 0 for `end_turn`, 2 for `requires_action`, 1 otherwise.
pub async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let filter = tracing_subscriber_filter(&args.log);
    let _ = filter;
    let options = LocalRun {
        agent_file: args.agent,
        prompt: args.prompt,
        redis_url: args.redis_url,
        workspace: args.workspace,
        session: args.session,
        engine: EngineConfig::default(),
    };
    let mut out = std::io::stdout();
    let stop = run_local(options, &mut out).await?;
    Ok(match stop {
        StopReason::EndTurn => ExitCode::SUCCESS,
        StopReason::RequiresAction { .. } => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    })
}

fn tracing_subscriber_filter(filter: &str) -> anyhow::Result<()> {
    let log = corral_runtime::LogArgs {
        filter: filter.to_owned(),
        format: corral_runtime::logging::LogFormat::Text,
        otlp_endpoint: String::new(),
        service_name: String::new(),
    };
    log.init()
}
