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
    directory::{ClusterDirectory, Directory},
    metrics,
    proxy::Proxy,
};

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
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "CORRAL_EGRESS_HEALTH_ADDR", default_value = "0.0.0.0:8080")]
    health_addr: SocketAddr,
    /// Logging.
    #[command(flatten)]
    log: LogArgs,
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
                corral_egress::tls::Interceptor::new(&read("tls.crt")?, &read("tls.key")?, extra.as_deref())?;
            tracing::info!("HTTPS to hosts with a bound credential is intercepted");
            Some(Arc::new(interceptor))
        }
        None => {
            tracing::warn!("no --ca-dir: credentials are injected into plain HTTP requests only");
            None
        }
    };
    let client = kube::Client::try_default().await?;
    let (directory, watches) = ClusterDirectory::start(client);
    tokio::spawn(watches);

    let mut registry = Registry::default();
    let metrics = metrics::Metrics::default();
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
    let proxy = Arc::new(Proxy {
        interceptor,
        directory,
        key,
        metrics,
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
