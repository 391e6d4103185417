//! `corral-gateway`: serves Corral's HTTP API, or creates an API key.

use clap::Parser;
use corral_gateway::{
    admin,
    auth::KeyIndex,
    config::{Cli, Command, ServeArgs},
    ratelimit::Limiter,
    server,
    state::Settings,
};
use corral_runtime::health::Readiness;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init()?;
    match cli.command {
        Command::Serve(args) => serve(*args).await,
        Command::CreateKey(args) => {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| anyhow::anyhow!("connecting to Kubernetes: {e}"))?;
            let (key, name) = admin::create_key(&client, &args.namespace, args.name.as_deref()).await?;
            let id = corral_gateway::keys::key_id(&corral_gateway::keys::hash_key(&key));
            eprintln!(
                "stored the key's hash in Secret {}/{name} (key id {id}, as memory versions name it); the key is shown only now:",
                args.namespace
            );
            println!("{key}");
            Ok(())
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| anyhow::anyhow!("connecting to Kubernetes: {e}"))?;
    let config = corral_session::Config {
        follow_hub_bytes: args.follow_hub_bytes,
        follow_hub_tenant_bytes: args.follow_hub_tenant_bytes,
        follow_catch_up_reads: args.follow_catch_up_reads,
        ..args.log_limits.config()
    };
    let store =
        corral_session::Store::connect_waiting(&args.redis_url, config, corral_session::STARTUP_PATIENCE)
            .await
            .map_err(|e| anyhow::anyhow!("connecting to Redis: {e}"))?;
    let (keys, watch) = KeyIndex::watch(client.clone());
    tokio::spawn(watch);
    let readiness = Readiness::default();
    {
        let keys = keys.clone();
        let readiness = readiness.clone();
        tokio::spawn(async move {
            if keys.ready().await {
                readiness.set(true);
                tracing::info!("API keys loaded; ready");
            }
        });
    }
    let settings = Settings {
        keep_alive: args.keep_alive,
        max_body_bytes: args.max_body_bytes,
        approval: args.approval_rbac.then(|| corral_gateway::approval::Policy {
            verb: args.approval_rbac_verb.clone(),
            audience: args.approval_token_audience.clone(),
        }),
        files: args.object_store.storage()?,
        harness_namespace: args.harness_namespace.clone(),
        sandbox_disk_limit: args.sandbox_ephemeral_storage_limit.clone(),
    };
    let state = server::state(
        client,
        store,
        keys,
        Limiter::new(args.rate_limit, args.rate_burst)
            .with_bytes(args.rate_limit_bytes, args.rate_burst_bytes)
            .with_tenant_bytes(args.tenant_rate_limit_bytes, args.tenant_rate_burst_bytes)
            .with_streams(args.max_streams_per_key),
        settings,
    );
    if !args.redis_memory_poll.is_zero() {
        tokio::spawn(corral_gateway::metrics::watch_redis_memory(
            state.log.clone(),
            state.metrics.clone(),
            args.redis_memory_poll,
        ));
    }
    tokio::spawn(corral_gateway::metrics::watch_follow_hub(
        state.log.clone(),
        state.metrics.clone(),
    ));
    let stopped = state.shutdown.clone();
    let metrics = server::metrics_server(&state, readiness.clone());
    tokio::spawn(async move {
        if let Err(err) = metrics
            .serve(args.metrics_addr, async move { stopped.cancelled().await })
            .await
        {
            tracing::error!("the metrics server stopped: {err:#}");
        }
    });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", args.listen))?;
    let result = server::serve(listener, state, readiness, corral_runtime::shutdown::signal()).await;
    corral_runtime::telemetry::flush();
    result
}
