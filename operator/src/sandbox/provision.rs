//! Giving a session a sandbox pod: claim a ready warm pod of its Environment, or create the session's own pod with
//! its token Secret and workspace claim, always after the NetworkPolicy the pod falls under (a pod never runs a
//! moment without its walls; warm pods get theirs from [`super::environment`] in the same order).

use corral_api::{Environment, Session, environment::WorkspaceType, labels};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};

use super::{
    build_sandbox_pod,
    environment::apply_network_policy,
    naming::{SandboxOwner, WARM_LABEL, sandbox_name, warm_pods_selector},
    pod_state::PodView,
    reconcile::ignore_not_found,
    token::{build_token_secret, new_token, token_of},
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
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let apply = PatchParams::apply(labels::OPERATOR_FIELD_MANAGER).force();

    if env.spec.sandbox.workspace.kind == WorkspaceType::Ephemeral
        && let Some(pod) = claim_warm(ctx, ns, session, env).await?
    {
        return Ok(pod);
    }

    // Applied before the pod exists, whatever the Environment controller has done so far.
    apply_network_policy(ctx, ns, env).await?;
    let secret_name = sandbox_name(&name);
    if secrets.get_opt(&secret_name).await?.is_none() {
        let secret = build_token_secret(&secret_name, ns, &owner, &new_token()?);
        secrets
            .patch(&secret_name, &apply, &Patch::Apply(&secret))
            .await?;
    }
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
        &secret_name,
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
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
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
        // The warm pod's daemon already holds its token; hand the same token to the session.
        let token = secrets
            .get_opt(&pod_name)
            .await?
            .as_ref()
            .and_then(token_of)
            .unwrap_or_default();
        let secret_name = sandbox_name(&session.name_any());
        let secret = build_token_secret(&secret_name, ns, &owner, &token);
        secrets
            .patch(
                &secret_name,
                &PatchParams::apply(labels::OPERATOR_FIELD_MANAGER).force(),
                &Patch::Apply(&secret),
            )
            .await?;
        ignore_not_found(secrets.delete(&pod_name, &DeleteParams::default()).await)?;
        tracing::info!(session = %session.name_any(), pod = %pod_name, "claimed a warm sandbox pod");
        return Ok(Some(pod_name));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use corral_api::SessionSpec;

    use super::*;
    use crate::sandbox::test_support::{context, env, recording_client};

    #[tokio::test]
    async fn the_network_policy_is_applied_before_the_pod_is_created() {
        let (client, calls) = recording_client();
        let ctx = context(client);
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
                "GET /api/v1/namespaces/team/secrets/sandbox-s1",
                "PATCH /api/v1/namespaces/team/secrets/sandbox-s1",
                "PATCH /api/v1/namespaces/team/pods/sandbox-s1",
            ],
            "no warm pod to claim; then the walls, the token and the pod, in that order"
        );
    }
}
