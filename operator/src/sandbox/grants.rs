//! Carrying out credential grants: apply a session's grant for the pod it is bound to (again whenever its credential
//! Secrets change), delete it when the pod goes, and sweep the grants whose pod is gone, since a grant in the grants
//! namespace cannot be owned by a pod of another namespace. Only with a grants namespace configured.

use std::{collections::BTreeMap, time::Duration};

use corral_api::{Session, labels};
use k8s_openapi::{api::core::v1::Secret, jiff::Timestamp};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};

use super::{
    grant::{build_grant, credentials_selector, grants_selector, orphaned},
    reconcile::ignore_not_found,
    repository_grant::{add_to_grant, repository_credentials, token_secret_names},
};
use crate::{context::Context, error::Result};

/// How often grants whose pod is gone are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How old a grant must be before the sweep may delete it (its pod may not be listed yet).
const SWEEP_GRACE: Duration = Duration::from_secs(120);

/// Applies the grant of pod `ns/pod`, bound to `session`, in namespace `grants`, from the session's credential
/// Secrets and the Secrets of its repository tokens. A session with neither gets none.
pub async fn apply_grant(ctx: &Context, grants: &str, ns: &str, pod: &str, session: &Session) -> Result<()> {
    let selector = credentials_selector(session);
    let token_names = token_secret_names(session);
    if selector.is_none() && token_names.is_empty() {
        return Ok(());
    }
    let credentials: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secrets = match &selector {
        Some(selector) => {
            credentials
                .list(&ListParams::default().labels(selector))
                .await?
                .items
        }
        None => vec![],
    };
    // A missing Secret is reported by the Session's RepositoryTokens condition.
    let tokens = token_secrets(ctx, ns, session).await?;
    let mut grant = build_grant(grants, ns, pod, session, &secrets);
    add_to_grant(&mut grant, repository_credentials(session, &tokens));
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), grants);
    api.patch(
        &grant.name_any(),
        &PatchParams::apply(labels::OPERATOR_FIELD_MANAGER).force(),
        &Patch::Apply(&grant),
    )
    .await?;
    Ok(())
}

/// The Secrets of namespace `ns` that the session's repository resources name, by name (a missing one is absent).
pub async fn token_secrets(ctx: &Context, ns: &str, session: &Session) -> Result<BTreeMap<String, Secret>> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut found = BTreeMap::new();
    for name in token_secret_names(session) {
        if let Some(secret) = secrets.get_opt(&name).await? {
            found.insert(name, secret);
        }
    }
    Ok(found)
}

/// Deletes the grant of pod `ns/pod` (nothing when there is none).
pub async fn delete_grant(ctx: &Context, grants: &str, ns: &str, pod: &str) -> Result<()> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), grants);
    let name = corral_api::egress::grant_name(ns, pod);
    ignore_not_found(api.delete(&name, &DeleteParams::default()).await)
}

/// Deletes the grants whose sandbox pod no longer exists; returns how many. Grants are listed before pods, so a
/// grant written for a new pod after the pod listing is never seen without it.
pub async fn sweep(ctx: &Context, grants: &str) -> Result<usize> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), grants);
    let listed = api
        .list_metadata(&ListParams::default().labels(&grants_selector()))
        .await?
        .items;
    let written: Vec<_> = listed.into_iter().map(|m| m.metadata).collect();
    let alive = super::census::existing(ctx).await?;
    let gone = orphaned(
        &written,
        &alive,
        ctx.watch_namespace.as_deref(),
        Timestamp::now(),
        SWEEP_GRACE,
    );
    for name in &gone {
        ignore_not_found(api.delete(name, &DeleteParams::default()).await)?;
        tracing::info!(grant = name, "deleted the credential grant of a pod that is gone");
    }
    Ok(gone.len())
}

/// Sweeps the grants every [`SWEEP_EVERY`] until `stop` says so.
pub async fn run(ctx: std::sync::Arc<Context>, grants: String, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(err) = sweep(&ctx, &grants).await {
            tracing::warn!(error = %err, "cannot sweep the credential grants");
        }
        tokio::select! {
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use corral_api::{SessionSpec, SessionStatus, session::SandboxStatus};

    use super::*;
    use corral_session::testing::RedisServer;

    use crate::sandbox::test_support::{context_with_redis, env, recording_client, recording_client_with};

    fn session(vaults: serde_json::Value) -> Session {
        let spec: SessionSpec = serde_json::from_value(serde_json::json!({
            "agent": {"name": "a"}, "environmentRef": {"name": "py"}, "vaultRefs": vaults
        }))
        .unwrap();
        let mut s = Session::new("s1", spec);
        s.metadata.namespace = Some("team".into());
        s.metadata.uid = Some("session-uid".into());
        s
    }

    /// The session, asking for a sandbox.
    fn requesting(mut s: Session) -> Session {
        s.status = Some(SessionStatus {
            sandbox: Some(SandboxStatus {
                requested_at: Some("2026-01-01T00:00:00Z".into()),
                ..SandboxStatus::default()
            }),
            ..SessionStatus::default()
        });
        s
    }

    /// A context with grants on, and the Redis its sandbox tokens go to (kept alive by the handle).
    async fn granting(client: kube::Client) -> (Context, RedisServer) {
        let (mut ctx, redis) = context_with_redis(client).await;
        ctx.sandbox.grants_namespace = Some("corral-grants".into());
        (ctx, redis)
    }

    #[tokio::test]
    async fn a_new_sandbox_gets_its_grant_before_the_session_hears_of_it() {
        let (client, calls) = recording_client();
        let (ctx, _redis) = granting(client).await;
        let session = requesting(session(serde_json::json!([{"name": "v1"}])));

        let decision = crate::sandbox::reconcile(&ctx, "team", &session, &env(serde_json::json!({})))
            .await
            .unwrap();

        assert_eq!(decision.status.and_then(|s| s.pod).as_deref(), Some("sandbox-s1"));
        let calls = calls.lock().unwrap();
        assert_eq!(
            calls[calls.len() - 3..],
            [
                "PATCH /api/v1/namespaces/team/pods/sandbox-s1",
                "GET /api/v1/namespaces/team/secrets",
                "PATCH /api/v1/namespaces/corral-grants/secrets/team.sandbox-s1",
            ],
            "the pod, then the session's credentials, then its grant"
        );
    }

    #[tokio::test]
    async fn the_grant_goes_with_the_pod() {
        let pod = serde_json::json!({"metadata": {"name": "sandbox-s1", "namespace": "team"}});
        let (client, calls) =
            recording_client_with(&[("/api/v1/namespaces/team/pods", serde_json::json!([pod]))]);
        let (ctx, _redis) = granting(client).await;
        let mut session = session(serde_json::json!([{"name": "v1"}]));
        session.status = Some(SessionStatus {
            phase: Some(corral_api::session::SessionPhase::Terminated),
            ..SessionStatus::default()
        });

        crate::sandbox::reconcile(&ctx, "team", &session, &env(serde_json::json!({})))
            .await
            .unwrap();

        assert_eq!(
            *calls.lock().unwrap(),
            [
                "GET /api/v1/namespaces/team/pods",
                "DELETE /api/v1/namespaces/team/pods/sandbox-s1",
                "DELETE /api/v1/namespaces/corral-grants/secrets/team.sandbox-s1",
            ]
        );
    }

    #[tokio::test]
    async fn a_session_without_vaults_or_an_operator_without_grants_writes_none() {
        let (client, calls) = recording_client();
        let (ctx, _redis) = granting(client).await;
        apply_grant(
            &ctx,
            "corral-grants",
            "team",
            "sandbox-s1",
            &session(serde_json::json!([])),
        )
        .await
        .unwrap();
        assert!(calls.lock().unwrap().is_empty(), "no vaults, no grant");

        let (client, calls) = recording_client();
        let (ctx, _redis) = context_with_redis(client).await;
        let s = requesting(session(serde_json::json!([{"name": "v1"}])));
        crate::sandbox::reconcile(&ctx, "team", &s, &env(serde_json::json!({})))
            .await
            .unwrap();
        assert!(
            !calls
                .lock()
                .unwrap()
                .iter()
                .any(|c| c.contains("corral-grants") || c.ends_with("/secrets")),
            "without a grants namespace the proxy reads vaults itself"
        );
    }

    #[tokio::test]
    async fn the_sweep_deletes_the_grants_of_pods_that_are_gone_only() {
        let grant = |name: &str| {
            serde_json::json!({"metadata": {"name": name, "namespace": "corral-grants",
                "creationTimestamp": "2026-01-01T00:00:00Z"}})
        };
        let (client, calls) = recording_client_with(&[
            (
                "/api/v1/namespaces/corral-grants/secrets",
                serde_json::json!([grant("team.sandbox-s1"), grant("team.sandbox-gone")]),
            ),
            (
                "/api/v1/pods",
                serde_json::json!([{"metadata": {"name": "sandbox-s1", "namespace": "team"}}]),
            ),
        ]);
        let (ctx, _redis) = granting(client).await;

        assert_eq!(sweep(&ctx, "corral-grants").await.unwrap(), 1);
        assert_eq!(
            *calls.lock().unwrap(),
            [
                "GET /api/v1/namespaces/corral-grants/secrets",
                "GET /api/v1/pods",
                "DELETE /api/v1/namespaces/corral-grants/secrets/team.sandbox-gone",
            ],
            "grants listed before pods; only the orphan deleted"
        );
    }
}
