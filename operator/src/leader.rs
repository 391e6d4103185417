//! Leader election through a `coordination.k8s.io` Lease, for running more than one operator replica.

use std::future::Future;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use crate::Args;

/// Seconds a lease stays valid without renewal.
const LEASE_SECONDS: u64 = 15;

/// Waits until this replica holds the lease. Returns a future that completes if the lease is lost, or `None` when
/// `stop` fired first.
pub async fn acquire(
    client: Client,
    args: &Args,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Option<impl Future<Output = ()> + use<>>> {
    let manager = LeaseManagerBuilder::new(client, &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&args.identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(5)
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("setting up leader election: {e}"))?;
    let (mut leading, task) = manager.watch().await;
    tracing::info!(lease = %args.lease_name, identity = %args.identity, "waiting to become the leader");
    loop {
        if *leading.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leading.changed() => {
                if changed.is_err() {
                    anyhow::bail!("leader election stopped unexpectedly");
                }
            }
            _ = stop.wait_for(|s| *s) => {
                drop(leading);
                let _ = task.await;
                return Ok(None);
            }
        }
    }
    tracing::info!("became the leader");
    Ok(Some(async move {
        let _ = leading.wait_for(|l| !*l).await;
        drop(task);
    }))
}
