//! What an Environment's sandboxes need from its reconcile: the NetworkPolicy they all fall under, and the warm pool.

use corral_api::{Environment, environment::WarmPoolStatus, labels};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};

use super::{network_policy::build_network_policy, warm_pool};
use crate::{
    context::Context,
    error::{Error, Result},
};

/// Applies the Environment's sandbox NetworkPolicy, then brings its warm pool to size; returns the pool's counts.
pub async fn reconcile_environment(ctx: &Context, ns: &str, env: &Environment) -> Result<WarmPoolStatus> {
    apply_network_policy(ctx, ns, env).await?;
    warm_pool::reconcile(ctx, ns, env).await
}

/// Applies the NetworkPolicy every sandbox pod of the Environment falls under.
pub async fn apply_network_policy(ctx: &Context, ns: &str, env: &Environment) -> Result<()> {
    let owner = env
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("uid"))?;
    let policy = build_network_policy(
        ns,
        env,
        &owner,
        ctx.sandbox.egress.as_ref(),
        ctx.harness.as_ref().map(|h| h.namespace.as_str()),
    );
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(
        &policy.name_any(),
        &PatchParams::apply(labels::OPERATOR_FIELD_MANAGER).force(),
        &Patch::Apply(&policy),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::test_support::{context_with_redis, env, recording_client, stored_token};

    #[tokio::test]
    async fn warm_pods_are_created_after_their_network_policy() {
        let (client, calls) = recording_client();
        let (ctx, _redis) = context_with_redis(client).await;
        let pool = reconcile_environment(
            &ctx,
            "team",
            &env(serde_json::json!({"sandbox": {"warmPool": 1}})),
        )
        .await
        .unwrap();
        assert_eq!((pool.desired, pool.ready, pool.pending), (1, 0, 1));
        let calls = calls.lock().unwrap().clone();
        let expected = [
            "PATCH /apis/networking.k8s.io/v1/namespaces/team/networkpolicies/sandbox-py",
            "GET /api/v1/namespaces/team/pods",
            "PATCH /api/v1/namespaces/team/pods/warm-py-",
        ];
        assert_eq!(calls.len(), expected.len(), "{calls:?}");
        for (call, prefix) in calls.iter().zip(expected) {
            assert!(
                call.starts_with(prefix),
                "the walls, the pool's listing, then the pod, and no Secret: {calls:?}"
            );
        }
        let pod = calls[2].rsplit('/').next().unwrap();
        assert!(
            stored_token(&ctx, "team", pod).await.is_some(),
            "the warm pod's token is in Redis before the pod"
        );
    }
}
