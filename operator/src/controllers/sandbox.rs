//! Carrying out sandbox decisions: finding the session's pod, claiming a warm one or creating one (with its token
//! Secret and workspace claim), and deleting pods that are idle, dead or no longer wanted.

use std::time::Duration;

use corral_api::{Environment, Session, environment::WorkspaceType, labels};
use k8s_openapi::{
    api::core::v1::{PersistentVolumeClaim, Pod, Secret},
    jiff::Timestamp,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};

use super::sandbox_state::{Action, Decision, Observed, PodView, decide};
use crate::{
    builders::sandbox::{
        SandboxOwner, TOKEN_KEY, WARM_LABEL, build_sandbox_pod, build_token_secret, build_workspace_claim,
        sandbox_name,
    },
    context::Context,
    error::{Error, Result},
};

/// Reconciles the sandbox of `session` (whose references resolved to `env`) and returns the decision, whose status
/// and condition the caller writes.
pub async fn reconcile(ctx: &Context, ns: &str, session: &Session, env: &Environment) -> Result<Decision> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let name = session.name_any();
    let selector = format!("{}={name},{}=sandbox", labels::SESSION, labels::COMPONENT);
    let pod = pods
        .list(&ListParams::default().labels(&selector))
        .await?
        .items
        .into_iter()
        .next();
    let status = session.status.clone().unwrap_or_default();
    let observed = Observed {
        phase: status.phase,
        sandbox: status.sandbox.as_ref(),
        last_event_time: status.last_event_time.as_deref().and_then(|t| t.parse().ok()),
        pod: pod.as_ref().map(PodView::from_pod),
        idle_timeout: corral_api::validation::idle_timeout(&env.spec).unwrap_or(Duration::from_secs(900)),
        now: Timestamp::now(),
    };
    let mut decision = decide(&observed);
    match &decision.action {
        Action::Keep => {}
        Action::Delete { pod } => {
            ignore_not_found(pods.delete(pod, &DeleteParams::default().grace_period(2)).await)?;
            tracing::info!(session = %name, pod, reason = decision.condition.1, "deleted sandbox pod");
        }
        Action::Provision => {
            let pod = provision(ctx, ns, session, env).await?;
            if let Some(s) = decision.status.as_mut() {
                s.pod = Some(pod);
            }
        }
    }
    Ok(decision)
}

/// Deleting what is already gone is success.
fn ignore_not_found<T>(result: std::result::Result<T, kube::Error>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(ae)) if ae.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Claims a warm pod of the Environment, or creates the session's own pod. Returns the pod's name.
async fn provision(ctx: &Context, ns: &str, session: &Session, env: &Environment) -> Result<String> {
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
    let selector = format!("{}={},{WARM_LABEL}=true", labels::ENVIRONMENT, env.name_any());
    let candidates = pods.list(&ListParams::default().labels(&selector)).await?.items;
    let owner = session
        .controller_owner_ref(&())
        .ok_or(Error::MissingObjectKey("uid"))?;
    for pod in candidates {
        if !matches!(
            PodView::from_pod(&pod).state,
            super::sandbox_state::PodState::Ready { .. }
        ) || pod.metadata.deletion_timestamp.is_some()
        {
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
            .and_then(|s| s.data)
            .and_then(|d| {
                d.get(TOKEN_KEY)
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            })
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

/// A fresh random token for a sandbox daemon (256 bits, hex).
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Randomness(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
