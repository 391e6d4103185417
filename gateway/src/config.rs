//! Command-line flags and environment variables of `corral-gateway`.

use std::{net::SocketAddr, time::Duration};

use clap::{Args, Parser, Subcommand};
use corral_runtime::logging::LogArgs;

/// Corral's HTTP API gateway.
#[derive(Parser, Debug)]
#[command(name = "corral-gateway", version, about)]
pub struct Cli {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve the API.
    Serve(Box<ServeArgs>),
    /// Create an API key for a namespace: prints the key and stores its hash in a labelled Secret.
    CreateKey(CreateKeyArgs),
}

/// `corral-gateway serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address the API listens on (also serves /healthz, /readyz).
    #[arg(long, env = "CORRAL_GATEWAY_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Address of /metrics (with /healthz and /readyz): apart from the API, so that API clients never read them.
    #[arg(long, env = "CORRAL_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// Redis URL of the session logs.
    #[arg(long, env = "CORRAL_REDIS_URL")]
    pub redis_url: String,
    /// Requests per second allowed per API key (0 disables the limit).
    #[arg(long, env = "CORRAL_GATEWAY_RATE_LIMIT", default_value_t = 50)]
    pub rate_limit: u32,
    /// Requests an API key may send in a burst above its rate.
    #[arg(long, env = "CORRAL_GATEWAY_RATE_BURST", default_value_t = 100)]
    pub rate_burst: u32,
    /// Bytes of request bodies per second allowed per API key (0 disables the limit); over it: 429. Sized so that one
    /// key at its cap takes a small share of a gateway and of Redis's disk (docs/limits.md).
    #[arg(long, env = "CORRAL_GATEWAY_RATE_LIMIT_BYTES", default_value_t = 512 << 10)]
    pub rate_limit_bytes: u64,
    /// Bytes of request bodies an API key may send in a burst above its byte rate.
    #[arg(long, env = "CORRAL_GATEWAY_RATE_BURST_BYTES", default_value_t = 16 << 20)]
    pub rate_burst_bytes: u64,
    /// Bytes of request bodies per second allowed per tenant (namespace), all its API keys together (0 disables
    /// the limit); over it: 429. Its event streams together may send 8 times as much.
    #[arg(long, env = "CORRAL_GATEWAY_TENANT_RATE_LIMIT_BYTES", default_value_t = 1 << 20)]
    pub tenant_rate_limit_bytes: u64,
    /// Bytes of request bodies a tenant may send in a burst above its byte rate.
    #[arg(long, env = "CORRAL_GATEWAY_TENANT_RATE_BURST_BYTES", default_value_t = 32 << 20)]
    pub tenant_rate_burst_bytes: u64,
    /// Event streams (SSE) one API key may hold open at once (0: no cap); one more is a 429.
    #[arg(long, env = "CORRAL_GATEWAY_MAX_STREAMS", default_value_t = 100)]
    pub max_streams_per_key: usize,
    /// Interval of keep-alive pings on idle SSE streams.
    #[arg(long, env = "CORRAL_GATEWAY_KEEP_ALIVE", default_value = "15s", value_parser = humantime_duration)]
    pub keep_alive: Duration,
    /// Largest request body accepted, in bytes (a bigger one is a 413 naming the limit).
    #[arg(long, env = "CORRAL_GATEWAY_MAX_BODY", default_value_t = crate::body::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Caps of events and session logs.
    #[command(flatten)]
    pub log_limits: LogLimits,
    /// The most bytes of memory the follow hub (one shared follow of every streamed session log) may hold in its
    /// windows of recent events, all logs together; past it the oldest are forgotten and streams that still need
    /// them read them from Redis.
    /// The budget is shared fairly between tenants: past it the hub forgets events of the tenant holding the most,
    /// so one tenant's many streams never trim another tenant's windows.
    #[arg(long, env = "CORRAL_GATEWAY_FOLLOW_HUB_BYTES", default_value_t = corral_session::DEFAULT_FOLLOW_HUB_BYTES)]
    pub follow_hub_bytes: usize,
    /// The most bytes of the follow hub's windows one tenant (namespace) may hold, all its streamed logs together
    /// (0: no cap of its own, only its fair share of --follow-hub-bytes).
    #[arg(long, env = "CORRAL_GATEWAY_FOLLOW_HUB_TENANT_BYTES", default_value_t = 0)]
    pub follow_hub_tenant_bytes: usize,
    /// How many reads of Redis one tenant's event streams behind the follow hub's windows may have in flight at once
    /// (0: no cap); its other lagging streams wait for one of them, never for another tenant's.
    #[arg(long, env = "CORRAL_GATEWAY_FOLLOW_CATCH_UP_READS", default_value_t = corral_session::DEFAULT_FOLLOW_CATCH_UP_READS)]
    pub follow_catch_up_reads: usize,
    /// How often the gateway reads Redis's memory use (`INFO memory`) into the `corral_gateway_redis_*_memory_bytes`
    /// gauges (0 disables it).
    #[arg(long, env = "CORRAL_GATEWAY_REDIS_MEMORY_POLL", default_value = "15s", value_parser = humantime_duration)]
    pub redis_memory_poll: Duration,
    /// Confirming a tool call (`user.tool_confirmation`) also needs Kubernetes RBAC: the request carries the
    /// approver's own Kubernetes token (header X-Corral-Approver-Token), the API server asserts its identity (a
    /// TokenReview), and that identity must be allowed --approval-rbac-verb on the Session (a SubjectAccessReview).
    #[arg(long, env = "CORRAL_GATEWAY_APPROVAL_RBAC", default_value_t = false)]
    pub approval_rbac: bool,
    /// The verb checked on `sessions.corral.dev` with --approval-rbac.
    #[arg(long, env = "CORRAL_GATEWAY_APPROVAL_RBAC_VERB", default_value = crate::approval::DEFAULT_VERB)]
    pub approval_rbac_verb: String,
    /// With --approval-rbac: the audience approver tokens must be issued for (`kubectl create token --audience`);
    /// unset accepts tokens for the API server's own audiences.
    #[arg(long, env = "CORRAL_GATEWAY_APPROVAL_TOKEN_AUDIENCE")]
    pub approval_token_audience: Option<String>,
    /// The namespace the operator runs harnesses in (the chart's release namespace): their ServiceAccounts may
    /// fetch the file resources of their own tenant's sessions (docs/files.md). Unset: no harness is served.
    #[arg(long, env = "CORRAL_HARNESS_NAMESPACE")]
    pub harness_namespace: Option<String>,
    /// The disk (ephemeral-storage limit) of a sandbox whose Environment names none: the operator's flag of the
    /// same name, set from the same chart value (`sandbox.storage.limit`). A session's file resources must fit in
    /// it (a 400 otherwise).
    #[arg(
        long,
        env = "CORRAL_SANDBOX_EPHEMERAL_STORAGE_LIMIT",
        default_value = corral_api::disk::DEFAULT_SANDBOX_DISK_LIMIT,
        value_parser = quantity
    )]
    pub sandbox_ephemeral_storage_limit: String,
    /// The Files API's object storage.
    #[command(flatten)]
    pub object_store: crate::files::args::ObjectStoreArgs,
}

/// Caps of events and session logs (see docs/limits.md). The harness takes the same flags.
#[derive(Args, Debug, Clone, Copy)]
pub struct LogLimits {
    /// Largest event accepted, in bytes of its JSON (a bigger one is a 413 naming the limit; 0: no cap).
    #[arg(long, env = "CORRAL_MAX_EVENT_BYTES", default_value_t = corral_session::DEFAULT_MAX_EVENT_BYTES)]
    pub max_event_bytes: usize,
    /// Most bytes of event JSON one session's log holds; further sends are refused with a 400 naming the cap
    /// (0: no cap).
    #[arg(long, env = "CORRAL_MAX_SESSION_BYTES", default_value_t = corral_session::DEFAULT_MAX_SESSION_BYTES)]
    pub max_session_bytes: u64,
    /// Most events one session's log holds; further sends are refused with a 400 naming the cap (0: no cap).
    #[arg(long, env = "CORRAL_MAX_SESSION_EVENTS", default_value_t = corral_session::DEFAULT_MAX_SESSION_EVENTS)]
    pub max_session_events: u64,
}

impl LogLimits {
    /// The session log's settings with these caps.
    pub fn config(&self) -> corral_session::Config {
        corral_session::Config {
            max_event_bytes: self.max_event_bytes,
            session_caps: corral_session::SessionCaps {
                max_bytes: self.max_session_bytes,
                max_events: self.max_session_events,
                ..corral_session::SessionCaps::default()
            },
            ..corral_session::Config::default()
        }
    }
}

/// `corral-gateway create-key`.
#[derive(Args, Debug, Clone)]
pub struct CreateKeyArgs {
    /// The tenant namespace the key gives access to (created if missing).
    #[arg(long)]
    pub namespace: String,
    /// Name of the Secret holding the key's hash (generated when omitted).
    #[arg(long)]
    pub name: Option<String>,
}

fn quantity(s: &str) -> Result<String, String> {
    corral_api::disk::quantity_bytes(s)
        .map(|_| s.trim().to_owned())
        .ok_or_else(|| format!("{s:?} is not a quantity such as 512Mi or 4Gi"))
}

fn humantime_duration(s: &str) -> Result<Duration, String> {
    let d = s.trim();
    let (num, unit) = d.split_at(d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 15s or 1m"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "" | "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("{s:?} is not a duration such as 15s or 1m")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags() {
        let cli = Cli::parse_from([
            "corral-gateway",
            "serve",
            "--redis-url",
            "redis://r/",
            "--keep-alive",
            "500ms",
        ]);
        let Command::Serve(args) = cli.command else {
            panic!("serve")
        };
        assert_eq!(args.keep_alive, Duration::from_millis(500));
        assert_eq!(args.rate_limit, 50);
        assert_eq!(args.max_body_bytes, 4 << 20);
        assert_eq!(args.max_streams_per_key, 100);
        assert_eq!(
            (args.rate_limit_bytes, args.rate_burst_bytes),
            (512 << 10, 16 << 20)
        );
        assert_eq!(
            (args.tenant_rate_limit_bytes, args.tenant_rate_burst_bytes),
            (1 << 20, 32 << 20)
        );
        let config = args.log_limits.config();
        assert_eq!(config.max_event_bytes, 2 << 20);
        assert_eq!(config.session_caps.max_bytes, 64 << 20);
        assert_eq!(config.session_caps.max_events, 100_000);
        assert_eq!(args.redis_memory_poll, Duration::from_secs(15));
        assert!(!args.approval_rbac);
        assert_eq!(args.approval_rbac_verb, "approve");
        assert_eq!(args.approval_token_audience, None);
        assert!(humantime_duration("soon").is_err());
        let cli = Cli::parse_from(["corral-gateway", "create-key", "--namespace", "team-a"]);
        assert!(
            matches!(cli.command, Command::CreateKey(CreateKeyArgs { ref namespace, .. }) if namespace == "team-a")
        );
    }
}
