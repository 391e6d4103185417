//! The Corral operator: controllers for `Agent`, `Environment` and `Session`.
//!
//! Each controller follows the same pipeline: fetch what the object references, validate, compute the desired
//! children with pure builders, apply them with server-side apply under the `corral-operator` field manager, and
//! write the status with conditions. Invalid specs wait for a change; transient errors back off per object.

pub mod args;
pub mod backoff;
pub mod builders;
pub mod context;
pub mod controllers;
pub mod crds;
pub mod egress_ca;
pub mod error;
pub mod gauges;
pub mod leader;
pub mod metrics;
pub mod revisions;
pub mod sandbox;
pub mod status;
pub mod sweeper;

use std::sync::{Arc, Mutex};

pub use args::Args;
use corral_runtime::{HealthServer, Readiness};
use kube::Client;

use crate::{context::Context, metrics::Metrics};

/// Runs the operator until SIGTERM: the health server at once, the controllers once this replica leads (or at
/// once without leader election) and the CRDs are established.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let storage = args.sandbox_storage()?;
    let client = Client::try_default()
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the Kubernetes API: {e}"))?;
    let mut registry = prometheus_client::registry::Registry::with_prefix("corral");
    let metrics = Metrics::register(&mut registry);
    let registry = Arc::new(Mutex::new(registry));
    let readiness = Readiness::default();

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let shutdown = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let server =
        tokio::spawn(HealthServer::new(registry, readiness.clone()).serve(args.metrics_addr, shutdown));
    tokio::spawn(async move {
        corral_runtime::shutdown::signal().await;
        let _ = stop_tx.send(true);
    });

    let log = match &args.redis_url {
        Some(url) => Some(context::connect_session_log(url).await?),
        None => {
            tracing::warn!("no --redis-url: the logs of deleted sessions will not be removed from Redis");
            None
        }
    };
    let mut egress = context::egress_config(&args)?;
    if let (Some(egress), Some(secret)) = (egress.as_mut(), &args.egress_ca_secret) {
        egress.ca_pem = Some(egress_ca::ensure(client.clone(), &egress.namespace, secret).await?);
    }
    if egress.is_none() {
        tracing::warn!(
            "no --egress-proxy-address: limited sandboxes reach nothing and credentials are not injected"
        );
    }
    let ctx = Arc::new(Context::new(client.clone(), metrics, log, &args, egress, storage));
    {
        // Earlier versions kept sandbox daemon tokens in Secrets of the tenant's namespace: remove them.
        let (client, namespace) = (client.clone(), ctx.watch_namespace.clone());
        tokio::spawn(async move {
            match sandbox::token::delete_legacy_token_secrets(client, namespace.as_deref()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    count = n,
                    "deleted the sandbox token Secrets of an earlier version"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot delete the sandbox token Secrets of an earlier version")
                }
            }
        });
    }

    let stop = {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    crds::wait_established(client.clone(), stop_rx.clone()).await?;
    // A standby replica is ready too: it is healthy and takes over within a lease period.
    readiness.set(true);
    let leadership = if args.leader_election {
        match leader::acquire(client.clone(), &args, stop_rx.clone()).await? {
            Some(lost) => Some(lost),
            None => {
                server.await??;
                return Ok(());
            }
        }
    } else {
        None
    };
    tracing::info!("starting controllers");
    tokio::spawn(gauges::run(ctx.clone(), stop_rx.clone()));
    tokio::spawn(controllers::harness::run_sweeper(ctx.clone(), stop_rx.clone()));
    tokio::spawn(controllers::harness::run_removals(ctx.clone(), stop_rx.clone()));
    tokio::spawn(sandbox::token_reaper::run(ctx.clone(), stop_rx.clone()));
    if args.network_policy_probe_seconds > 0 {
        // Outside the cluster, pod addresses may be unroutable, and every probe would look refused.
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            let every = std::time::Duration::from_secs(args.network_policy_probe_seconds);
            tokio::spawn(sandbox::isolation::run(ctx.clone(), every, stop_rx.clone()));
        } else {
            tracing::warn!("not in a pod: the NetworkPolicy enforcement probe does not run");
        }
    }

    if let Some(grants) = ctx.sandbox.grants_namespace.clone() {
        tokio::spawn(sandbox::grants::run(ctx.clone(), grants, stop_rx.clone()));
    }
    match (&args.redis_url, args.sweep_interval_seconds) {
        (Some(url), every @ 1..) => {
            // Only the sweeper needs Redis: it waits for it in its own task, so reconciling (sandboxes too) goes on
            // while Redis starts.
            let (ctx, url, stop_rx) = (ctx.clone(), url.clone(), stop_rx.clone());
            tokio::spawn(async move {
                match corral_session::Store::connect_waiting(
                    &url,
                    corral_session::Config::default(),
                    corral_session::STARTUP_PATIENCE,
                )
                .await
                {
                    Ok(store) => {
                        sweeper::run(ctx, store, std::time::Duration::from_secs(every), stop_rx).await;
                    }
                    Err(e) => tracing::error!(
                        error = %e,
                        "the sweeper cannot reach the session log's Redis: lost wake-ups are not swept until the \
                         operator restarts"
                    ),
                }
            });
        }
        (None, 1..) => tracing::warn!("no --redis-url: the sweeper of lost wake-ups does not run"),
        _ => {}
    }
    let controllers = controllers::run_all(ctx, stop);
    match leadership {
        Some(lost) => {
            tokio::select! {
                () = controllers => {}
                () = lost => anyhow::bail!("lost the leader election lease; exiting so that a new leader takes over"),
            }
        }
        None => controllers.await,
    }
    readiness.set(false);
    server.await??;
    tracing::info!("stopped");
    corral_runtime::telemetry::flush();
    Ok(())
}
