//! Giving a session a sandbox pod: claim a ready warm pod of its Environment (its token, stored under the pod's
//! name, goes with it), or create the session's own pod with its token (in Redis, see [`super::token`]) and
//! workspace claim, always after the NetworkPolicy the pod falls under (a pod never runs a moment without its walls;
//! warm pods get theirs from [`super::environment`] in the same order).

use corral_api::{Environment, Session, environment::WorkspaceType, labels};
use corral_sandbox_protocol::pod::token_sha256;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};

use super::{
    build_sandbox_pod,
    environment::apply_network_policy,
    naming::{SandboxOwner, WARM_LABEL, sandbox_name, warm_pods_selector},
    pod_state::PodView,
    token::ensure_token,
    workspace::build_workspace_claim,
};
use crate::{
    context::Context,
    error::{Error, Result},
};

/// Claims a warm pod of the Environment, or creates the session's own pod. Returns the pod's name.
pub async fn provision(ctx: &Context, ns: &str, session: &Session, env: &Environment) -> Result<String> {
    let name = session.name_any();
    let owner = session
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("uid"))?;
    let apply = PatchParams::apply(labels::OPERATOR_FIELD_MANAGER).force();

    if env.spec.sandbox.workspace.kind == WorkspaceType::Ephemeral
        && let Some(pod) = claim_warm(ctx, ns, session, env).await?
    {
        return Ok(pod);
    }

    // Applied before the pod exists, whatever the Environment controller has done so far.
    apply_network_policy(ctx, ns, env).await?;
    let token = ensure_token(ctx, ns, &sandbox_name(&name)).await?;
    if let Some(claim) = build_workspace_claim(&name, ns, env, &owner) {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
        if claims.get_opt(&claim.name_any()).await?.is_none() {
            claims
                .patch(&claim.name_any(), &apply, &Patch::Apply(&claim))
                .await?;
        }
    }
    let pod = build_sandbox_pod(
        ns,
        env,
        &SandboxOwner::Session {
            name: name.clone(),
            owner,
        },
        &token_sha256(&token),
        &ctx.sandbox,
    );
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    pods.patch(&pod.name_any(), &apply, &Patch::Apply(&pod)).await?;
    tracing::info!(session = %name, pod = %pod.name_any(), "created sandbox pod");
    Ok(pod.name_any())
}

/// Assigns a ready warm pod to the session. The claim is a patch conditioned on the pod's resourceVersion, so two
/// sessions can never get the same pod: the loser gets a 409 and tries the next one.
async fn claim_warm(ctx: &Context, ns: &str, session: &Session, env: &Environment) -> Result<Option<String>> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let selector = warm_pods_selector(&env.name_any());
    let candidates = pods.list(&ListParams::default().labels(&selector)).await?.items;
    let owner = session
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("uid"))?;
    for pod in candidates {
        if !PodView::from_pod(&pod).state.is_ready() || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let pod_name = pod.name_any();
        let patch = serde_json::json!({
            "metadata": {
                "resourceVersion": pod.resource_version(),
                "labels": { WARM_LABEL: null, labels::SESSION: session.name_any() },
                "ownerReferences": [owner],
            }
        });
        match pods
            .patch(&pod_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(ae)) if ae.code == 409 || ae.code == 404 => continue,
            Err(e) => return Err(e.into()),
        }
        // The warm pod keeps its name, and so its token: the harness finds both through the Session status.
        tracing::info!(session = %session.name_any(), pod = %pod_name, "claimed a warm sandbox pod");
        return Ok(Some(pod_name));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use corral_api::SessionSpec;

    use super::*;
    use crate::sandbox::test_support::{context_with_redis, env, recording_client, stored_token};

    #[tokio::test]
    async fn the_network_policy_is_applied_before_the_pod_is_created() {
        let (client, calls) = recording_client();
        let (ctx, _redis) = context_with_redis(client).await;
        let spec: SessionSpec = serde_json::from_value(
            serde_json::json!({"agent": {"name": "a"}, "environmentRef": {"name": "py"}}),
        )
        .unwrap();
        let mut session = Session::new("s1", spec);
        session.metadata.namespace = Some("team".into());
        session.metadata.uid = Some("session-uid".into());

        let pod = provision(&ctx, "team", &session, &env(serde_json::json!({})))
            .await
            .unwrap();

        assert_eq!(pod, "sandbox-s1");
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "GET /api/v1/namespaces/team/pods",
                "PATCH /apis/networking.k8s.io/v1/namespaces/team/networkpolicies/sandbox-py",
                "PATCH /api/v1/namespaces/team/pods/sandbox-s1",
            ],
            "no warm pod to claim; then the walls and the pod, and no Secret"
        );
        let token = stored_token(&ctx, "team", "sandbox-s1")
            .await
            .expect("the token is stored");
        assert_eq!(
            ensure_token(&ctx, "team", "sandbox-s1").await.unwrap(),
            token,
            "a pod made again keeps its token"
        );
    }
}
