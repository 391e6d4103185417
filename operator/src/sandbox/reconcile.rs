//! Carrying out a Session's sandbox decision: observe the session's pod, decide, then provision one or delete it
//! (reaping an idle pod, removing a dead one, or the pod of a terminated session), and keep the egress proxy's
//! credential grant in step with the pod the session is bound to.

use std::time::Duration;

use corral_api::{Environment, Session};
use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams},
};

use super::{
    decide::{Action, Decision, Observed, decide},
    grants::{apply_grant, delete_grant},
    naming::session_pod_selector,
    pod_state::PodView,
    provision::provision,
    token::delete_token,
};
use crate::{context::Context, error::Result};

/// How long a sandbox may go unused when its Environment does not say.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(900);

/// Reconciles the sandbox of `session` (whose references resolved to `env`) and returns the decision, whose status
/// and condition the caller writes.
pub async fn reconcile(ctx: &Context, ns: &str, session: &Session, env: &Environment) -> Result<Decision> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let name = session.name_any();
    let pod = pods
        .list(&ListParams::default().labels(&session_pod_selector(&name)))
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
        idle_timeout: corral_api::validation::idle_timeout(&env.spec).unwrap_or(DEFAULT_IDLE_TIMEOUT),
        now: Timestamp::now(),
        refused: ctx
            .sandbox
            .policy
            .check(&env.spec.sandbox)
            .err()
            .map(|e| e.to_string()),
    };
    let mut decision = decide(&observed);
    let grants = ctx.sandbox.grants_namespace.as_deref();
    match &decision.action {
        Action::Keep => {
            // Bound and alive: its grant follows the session's credentials.
            let live = pod.filter(|p| p.metadata.deletion_timestamp.is_none());
            if let (Some(grants), Some(pod)) = (grants, live) {
                apply_grant(ctx, grants, ns, &pod.name_any(), session).await?;
            }
        }
        Action::Delete { pod } => {
            ignore_not_found(pods.delete(pod, &DeleteParams::default().grace_period(2)).await)?;
            delete_token(ctx, ns, pod).await?;
            tracing::info!(session = %name, pod, reason = decision.condition.1, "deleted sandbox pod");
            if let Some(grants) = grants {
                delete_grant(ctx, grants, ns, pod).await?;
            }
        }
        Action::Provision => {
            let pod = provision(ctx, ns, session, env).await?;
            // Before the status says Ready: the sandbox is used only once it does.
            if let Some(grants) = grants {
                apply_grant(ctx, grants, ns, &pod, session).await?;
            }
            if let Some(s) = decision.status.as_mut() {
                s.pod = Some(pod);
            }
        }
    }
    Ok(decision)
}

/// Deleting what is already gone is success.
pub(super) fn ignore_not_found<T>(result: std::result::Result<T, kube::Error>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(ae)) if ae.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
