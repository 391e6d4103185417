//! `corral-netpol`: enforces NetworkPolicies on the local e2e cluster's node, whose bridge CNI enforces none.
//!
//! It runs inside the cluster's network namespace next to kube-proxy, watches pods, namespaces and NetworkPolicies,
//! and after every change (and every `--resync`) rewrites its iptables chains from scratch. It implements the
//! NetworkPolicy API for IPv4 pods: pod, namespace and ipBlock peers (with `except`), numbered, named and ranged
//! ports, both policy types with their defaults; replies of admitted connections pass; traffic from the node
//! itself is not filtered. Refused packets get an ICMP "administratively prohibited", so a blocked connection fails
//! at once instead of timing out.

mod cidr;
mod iptables;
mod model;

use std::{path::PathBuf, time::Duration};

use clap::Parser;
use futures::{StreamExt, stream};
use k8s_openapi::api::{
    core::v1::{Namespace, Pod},
    networking::v1::NetworkPolicy,
};
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, reflector, reflector::Store, watcher},
};

use crate::{
    iptables::Iptables,
    model::{PodView, Snapshot, ruleset},
};

/// Command-line flags.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Enforces NetworkPolicies with iptables on the local e2e cluster's node"
)]
struct Args {
    /// Rewrite the rules at least this often (seconds), changes or not.
    #[arg(long, env = "CORRAL_NETPOL_RESYNC_SECONDS", default_value_t = 10)]
    resync_seconds: u64,
    /// The `iptables` binary.
    #[arg(long, default_value = "iptables")]
    iptables: PathBuf,
    /// The `iptables-restore` binary.
    #[arg(long, default_value = "iptables-restore")]
    iptables_restore: PathBuf,
}

struct Stores {
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    policies: Store<NetworkPolicy>,
}

impl Stores {
    fn snapshot(&self) -> Snapshot {
        Snapshot {
            pods: self.pods.state().iter().filter_map(|p| PodView::of(p)).collect(),
            namespaces: self
                .namespaces
                .state()
                .iter()
                .map(|n| (n.name_any(), n.labels().clone()))
                .collect(),
            policies: self.policies.state().iter().map(|p| (**p).clone()).collect(),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let client = Client::try_default().await?;
    let tables = Iptables {
        iptables: args.iptables,
        restore: args.iptables_restore,
    };

    let (pods, pods_writer) = reflector::store();
    let (namespaces, namespaces_writer) = reflector::store();
    let (policies, policies_writer) = reflector::store();
    let config = watcher::Config::default();
    let changes = stream::select_all([
        watcher(Api::<Pod>::all(client.clone()), config.clone())
            .default_backoff()
            .reflect(pods_writer)
            .map(|r| r.map(|_| ()))
            .boxed(),
        watcher(Api::<Namespace>::all(client.clone()), config.clone())
            .default_backoff()
            .reflect(namespaces_writer)
            .map(|r| r.map(|_| ()))
            .boxed(),
        watcher(Api::<NetworkPolicy>::all(client), config)
            .default_backoff()
            .reflect(policies_writer)
            .map(|r| r.map(|_| ()))
            .boxed(),
    ]);
    let stores = Stores {
        pods,
        namespaces,
        policies,
    };
    tokio::pin!(changes);
    let mut resync = tokio::time::interval(Duration::from_secs(args.resync_seconds.max(1)));
    let mut synced_once = false;
    loop {
        tokio::select! {
            change = changes.next() => match change {
                Some(Ok(())) => {}
                Some(Err(e)) => { tracing::warn!(error = %e, "watch error; retrying"); continue; }
                None => anyhow::bail!("the watches ended"),
            },
            _ = resync.tick() => {}
        }
        // Coalesce a burst of changes (a pod's several status updates) into one rewrite.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Some(Some(_)) = futures::FutureExt::now_or_never(changes.next()) {}
        let ready = stores.pods.wait_until_ready();
        let ready = futures::FutureExt::now_or_never(async {
            ready.await.ok()?;
            stores.namespaces.wait_until_ready().await.ok()?;
            stores.policies.wait_until_ready().await.ok()
        });
        if !matches!(ready, Some(Some(()))) {
            continue;
        }
        let rules = ruleset(&stores.snapshot());
        match tables.apply(&rules).await {
            Ok(()) => {
                if !synced_once {
                    tracing::info!("enforcing NetworkPolicies");
                    synced_once = true;
                }
                tracing::debug!(isolated_chains = rules.chains.len(), "rules rewritten");
            }
            Err(e) => {
                tracing::error!(error = %e, "could not apply the rules; retrying at the next change or resync")
            }
        }
    }
}
