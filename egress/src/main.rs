//! `corral-egress`: the egress proxy of sandboxes. See the crate description and docs/trust.md.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use clap::Parser;
use corral_runtime::{HealthServer, LogArgs, Readiness};
use prometheus_client::registry::Registry;

use corral_egress::{
    directory::{ClusterDirectory, Credentials, Directory},
    limits::Limits,
    metrics,
    proxy::Proxy,
    walls::Walls,
};

/// Where vault credentials come from.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CredentialSource {
    /// Per-sandbox grant Secrets in one namespace.
    Grants,
    /// Every vault credential Secret of the cluster.
    Vaults,
}

/// The egress proxy of Corral's sandboxes.
#[derive(Parser, Debug)]
#[command(name = "corral-egress", version, about)]
struct Args {
    /// Where sandboxes connect.
    #[arg(long, env = "CORRAL_EGRESS_LISTEN", default_value = "0.0.0.0:3128")]
    listen: SocketAddr,
    /// The file holding the key of sandbox proxy identities (shared with the operator).
    #[arg(long, env = "CORRAL_EGRESS_KEY_FILE")]
    key_file: PathBuf,
    /// A directory holding the egress CA (`tls.crt`, `tls.key`): with it, HTTPS requests to hosts a credential is
    /// bound to are intercepted so the credential can be injected. Without it, every `CONNECT` is tunnelled.
    #[arg(long, env = "CORRAL_EGRESS_CA_DIR")]
    ca_dir: Option<PathBuf>,
    /// Extra PEM certificates trusted for upstream hosts besides the public web roots (a private CA).
    #[arg(long, env = "CORRAL_EGRESS_UPSTREAM_CA_FILE")]
    upstream_ca_file: Option<PathBuf>,
    /// Host patterns (`name`, `*.domain`, an IP, each optionally `:port`) the platform operator opens although they
    /// resolve to internal addresses (in-cluster git servers, mirrors). Comma-separated. Tenants cannot add to it.
    #[arg(long, env = "CORRAL_EGRESS_INTERNAL_HOSTS", value_delimiter = ',')]
    internal_hosts: Vec<String>,
    /// Further address ranges no sandbox reaches: the cluster's Service and Pod CIDRs. Comma-separated.
    #[arg(long, env = "CORRAL_EGRESS_CLUSTER_RANGES", value_delimiter = ',', value_parser = range)]
    cluster_ranges: Vec<Option<ipnet::IpNet>>,
    /// The ports destinations may have (a host list entry `host:port` opens another for that host). Comma-separated.
    #[arg(
        long,
        env = "CORRAL_EGRESS_PORTS",
        value_delimiter = ',',
        default_value = "443,80"
    )]
    ports: Vec<u16>,
    /// Client connections open at once (one more is answered 503).
    #[arg(long, env = "CORRAL_EGRESS_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Client connections open at once per sandbox (one more request is answered 429).
    #[arg(
        long,
        env = "CORRAL_EGRESS_MAX_CONNECTIONS_PER_SANDBOX",
        default_value_t = 256
    )]
    max_connections_per_sandbox: usize,
    /// Client connections open at once per source address, counted before any request (one more is answered 429).
    #[arg(long, env = "CORRAL_EGRESS_MAX_CONNECTIONS_PER_SOURCE", default_value_t = 512)]
    max_connections_per_source: usize,
    /// How long a client may take to send a request head, or keep an idle connection open (then 408).
    #[arg(long, env = "CORRAL_EGRESS_HEADER_READ_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    header_read_timeout: Duration,
    /// How long a tunnel or forwarded exchange may go without traffic before it is closed.
    #[arg(long, env = "CORRAL_EGRESS_IDLE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// How long resolving and connecting to a destination may take (then 504).
    #[arg(long, env = "CORRAL_EGRESS_CONNECT_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// Interception leaf certificates kept (least recently used first out).
    #[arg(long, env = "CORRAL_EGRESS_CERTIFICATE_CACHE", default_value = "1024")]
    certificate_cache: std::num::NonZeroUsize,
    /// Where vault credentials come from: `grants` (per-sandbox grant Secrets the operator writes into one namespace;
    /// the proxy reads no other Secret) or `vaults` (every vault credential Secret of the cluster).
    #[arg(long, env = "CORRAL_EGRESS_CREDENTIALS", value_enum, default_value = "vaults")]
    credentials: CredentialSource,
    /// The namespace of grant Secrets (with `--credentials grants`).
    #[arg(long, env = "CORRAL_EGRESS_GRANTS_NAMESPACE")]
    grants_namespace: Option<String>,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "CORRAL_EGRESS_HEALTH_ADDR", default_value = "0.0.0.0:8080")]
    health_addr: SocketAddr,
    /// Logging.
    #[command(flatten)]
    log: LogArgs,
}

/// A CIDR; nothing for an empty item (an empty list in the environment).
fn range(text: &str) -> Result<Option<ipnet::IpNet>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| format!("{text} is not a CIDR range: {e}"))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let key = std::fs::read(&args.key_file)
        .map_err(|e| anyhow::anyhow!("reading the proxy key {}: {e}", args.key_file.display()))?;
    let key = String::from_utf8_lossy(&key).trim().as_bytes().to_vec();
    anyhow::ensure!(
        key.len() >= 16,
        "the proxy key in {} is shorter than 16 bytes",
        args.key_file.display()
    );
    let metrics = metrics::Metrics::default();
    let interceptor = match &args.ca_dir {
        Some(dir) => {
            let read = |name: &str| {
                std::fs::read_to_string(dir.join(name))
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", dir.join(name).display()))
            };
            let extra = match &args.upstream_ca_file {
                Some(file) => Some(
                    std::fs::read(file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?,
                ),
                None => None,
            };
            let interceptor =
                corral_egress::tls::Interceptor::new(&read("tls.crt")?, &read("tls.key")?, extra.as_deref())?
                    .with_cache(args.certificate_cache, metrics.clone());
            tracing::info!("HTTPS to hosts with a bound credential is intercepted");
            Some(Arc::new(interceptor))
        }
        None => {
            tracing::warn!("no --ca-dir: credentials are injected into plain HTTP requests only");
            None
        }
    };
    let client = kube::Client::try_default().await?;
    let credentials = match (args.credentials, args.grants_namespace.clone()) {
        (CredentialSource::Vaults, _) => Credentials::Vaults,
        (CredentialSource::Grants, Some(namespace)) => Credentials::Grants { namespace },
        (CredentialSource::Grants, None) => anyhow::bail!("--credentials grants needs --grants-namespace"),
    };
    let (directory, watches) = ClusterDirectory::start(client, credentials);
    tokio::spawn(watches);

    let mut registry = Registry::default();
    metrics.register(&mut registry);
    let readiness = Readiness::default();
    let health = HealthServer::new(Arc::new(Mutex::new(registry)), readiness.clone());
    tokio::spawn(health.serve(args.health_addr, corral_runtime::shutdown::signal()));

    let ready_directory = directory.clone();
    let ready = readiness.clone();
    tokio::spawn(async move {
        while !ready_directory.ready() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        ready.set(true);
        tracing::info!("watches synced; serving sandboxes");
    });

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", args.listen))?;
    tracing::info!(addr = %args.listen, "egress proxy listening");
    let walls = Walls {
        cluster_ranges: args.cluster_ranges.iter().flatten().copied().collect(),
        internal_hosts: args
            .internal_hosts
            .iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect(),
        ports: args.ports.clone(),
    };
    let limits = Limits {
        max_connections: args.max_connections,
        max_connections_per_sandbox: args.max_connections_per_sandbox,
        max_connections_per_source: args.max_connections_per_source,
        header_read_timeout: args.header_read_timeout,
        idle_timeout: args.idle_timeout,
        connect_timeout: args.connect_timeout,
    };
    tracing::info!(?walls, ?limits, "egress walls and limits");
    let proxy = Arc::new(Proxy {
        interceptor,
        walls,
        limits,
        ..Proxy::new(directory, key, metrics)
    });
    tokio::select! {
        () = proxy.serve(listener) => {}
        () = corral_runtime::shutdown::signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Err(e) = args.log.init() {
        eprintln!("corral-egress: {e:#}");
        return std::process::ExitCode::FAILURE;
    }
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("corral-egress: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
