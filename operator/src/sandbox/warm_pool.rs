//! An Environment's warm pool: keeps `spec.sandbox.warmPool` ready, unassigned sandbox pods (each with its own
//! token, in Redis under the pod's name), deletes extras, and counts them for the status. Sessions claim them in
//! [`super::provision`].

use corral_api::{Environment, environment::WarmPoolStatus, labels};
use corral_sandbox_protocol::pod::token_sha256;
use k8s_openapi::api::core::v1::Pod;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};

use super::{
    build_sandbox_pod,
    naming::{SandboxOwner, warm_pod_name, warm_pods_selector},
    pod_state::{PodState, PodView},
    reconcile::ignore_not_found,
    token::{delete_token, ensure_token, new_token},
};
use crate::{
    context::Context,
    error::{Error, Result},
};

/// A pod of the pool with its summarised state.
type Member = (Pod, PodView);

/// Brings the warm pool to its desired size and returns its counts.
pub async fn reconcile(ctx: &Context, ns: &str, env: &Environment) -> Result<WarmPoolStatus> {
    let desired = env.spec.sandbox.warm_pool.unwrap_or(0).max(0);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let selector = warm_pods_selector(&env.name_any());
    let (mut alive, dead): (Vec<Member>, Vec<Member>) = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let view = PodView::from_pod(&p);
            (p, view)
        })
        .partition(|(_, v)| !matches!(v.state, PodState::Ended { .. }));
    for (pod, _) in dead {
        delete_pod_and_token(ctx, &pods, ns, &pod.name_any()).await?;
    }
    // Extras go first among those not yet ready, so ready capacity is kept.
    alive.sort_by_key(|(_, v)| v.state.is_ready());
    while alive.len() > desired as usize {
        let (pod, _) = alive.remove(0);
        delete_pod_and_token(ctx, &pods, ns, &pod.name_any()).await?;
    }
    let owner = env
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("uid"))?;
    let apply = PatchParams::apply(labels::OPERATOR_FIELD_MANAGER).force();
    for _ in alive.len()..desired as usize {
        let suffix: String = new_token()?.chars().take(8).collect();
        let pod_name = warm_pod_name(&env.name_any(), &suffix);
        let sandbox_owner = SandboxOwner::WarmPool {
            suffix,
            owner: owner.clone(),
        };
        let token = ensure_token(ctx, ns, &pod_name).await?;
        let pod = build_sandbox_pod(ns, env, &sandbox_owner, &token_sha256(&token), &ctx.sandbox);
        pods.patch(&pod_name, &apply, &Patch::Apply(&pod)).await?;
        tracing::info!(environment = %env.name_any(), pod = %pod_name, "created warm sandbox pod");
    }
    let ready = alive.iter().filter(|(_, v)| v.state.is_ready()).count() as i32;
    let existing = alive.len() as i32;
    Ok(WarmPoolStatus {
        desired,
        ready,
        pending: desired.max(existing) - ready,
    })
}

async fn delete_pod_and_token(ctx: &Context, pods: &Api<Pod>, ns: &str, name: &str) -> Result<()> {
    ignore_not_found(pods.delete(name, &DeleteParams::default()).await)?;
    delete_token(ctx, ns, name).await
}
