//! Removing the daemon tokens of sandbox pods that are gone, whoever deleted them (the operator, the garbage
//! collector with a deleted Environment or Session, a person, an eviction): a watch on sandbox pods deletes a
//! pod's token as soon as the pod is gone ([`forget_pod`]), and a sweep ([`sweep`]) deletes the tokens whose pod
//! no longer exists, for deletions the watch missed.
//!
//! A session's own pod (`sandbox-<session>`) may be made again under the same name and keeps its token then
//! ([`super::token::ensure_token`]), so its deletion keeps the token while the Session lives; the Session's cleanup
//! or the sweep deletes it. The sweep deletes a token only when nobody has read or written it for
//! [`SWEEP_GRACE`], checked atomically in Redis ([`sandbox_tokens::delete_if_idle`]): a token just stored for a pod
//! about to be created, or just read again for a pod made again, is never deleted under it.

use std::{sync::Arc, time::Duration};

use corral_api::{Session, labels};
use corral_session::sandbox_tokens;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{
    Api,
    core::PartialObjectMeta,
    runtime::{WatchStreamExt, watcher},
};
use redis::aio::ConnectionManager;

use super::{naming::pods_selector, token::delete_token};
use crate::{context::Context, controllers::watched_api, error::Result};

/// How often the sweep runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How long a token must have gone untouched before the sweep may delete it.
pub const SWEEP_GRACE: Duration = Duration::from_secs(120);

/// Runs the watch and the sweep until `stop`. Nothing without a token store (no `--redis-url`).
pub async fn run(ctx: Arc<Context>, stop: tokio::sync::watch::Receiver<bool>) {
    let Some(conn) = ctx.session_log.clone() else {
        return;
    };
    tokio::join!(watch(ctx.clone(), stop.clone()), run_sweeps(ctx, conn, stop));
}

/// Forgets the token of each sandbox pod the API server reports deleted.
async fn watch(ctx: Arc<Context>, mut stop: tokio::sync::watch::Receiver<bool>) {
    // Metadata only: `Api<PartialObjectMeta<_>>` asks for no specs.
    let pods = watched_api::<PartialObjectMeta<Pod>>(&ctx.client, ctx.watch_namespace.as_deref());
    let deleted = watcher::watcher(pods, watcher::Config::default().labels(&pods_selector()))
        .default_backoff()
        .try_filter_map(|event| async move {
            Ok(match event {
                watcher::Event::Delete(pod) => Some(pod.metadata),
                _ => None,
            })
        });
    let forgotten = deleted.for_each(|pod| {
        let ctx = ctx.clone();
        async move {
            match pod {
                Ok(pod) => {
                    if let Err(e) = forget_pod(&ctx, &pod).await {
                        tracing::warn!(pod = ?pod.name, error = %e, "cannot delete the token of a deleted sandbox pod; the sweep will");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "the watch of sandbox pod deletions failed; retrying"),
            }
        }
    });
    tokio::select! {
        () = forgotten => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

/// Deletes the token of the deleted pod `pod`, unless it is a session's own pod whose Session lives on (it may be
/// made again with the same token). Returns whether the token was deleted.
pub async fn forget_pod(ctx: &Context, pod: &ObjectMeta) -> Result<bool> {
    let (Some(ns), Some(name)) = (pod.namespace.as_deref(), pod.name.as_deref()) else {
        return Ok(false);
    };
    let session = pod.labels.as_ref().and_then(|l| l.get(labels::SESSION));
    if let Some(session) = session
        && *name == super::naming::sandbox_name(session)
    {
        let sessions: Api<Session> = Api::namespaced(ctx.client.clone(), ns);
        let live = sessions
            .get_metadata_opt(session)
            .await?
            .is_some_and(|s| s.metadata.deletion_timestamp.is_none());
        if live {
            return Ok(false);
        }
    }
    delete_token(ctx, ns, name).await?;
    tracing::debug!(
        namespace = ns,
        pod = name,
        "deleted the token of a deleted sandbox pod"
    );
    Ok(true)
}

async fn run_sweeps(
    ctx: Arc<Context>,
    mut conn: ConnectionManager,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match sweep(&ctx, &mut conn, SWEEP_GRACE).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                count = n,
                "deleted the daemon tokens of sandbox pods that are gone"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot sweep the sandbox daemon tokens"),
        }
        tokio::select! {
            () = tokio::time::sleep(SWEEP_EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Deletes the tokens (in the watched namespace, or all) whose sandbox pod does not exist and that nobody touched
/// for `grace`; returns how many. The tokens are listed before the pods.
pub async fn sweep(ctx: &Context, conn: &mut ConnectionManager, grace: Duration) -> Result<usize> {
    let stored = sandbox_tokens::stored(conn, ctx.watch_namespace.as_deref()).await?;
    if stored.is_empty() {
        return Ok(0);
    }
    let alive = super::census::existing(ctx).await?;
    let mut deleted = 0;
    for (ns, pod) in stored.difference(&alive) {
        if sandbox_tokens::delete_if_idle(conn, ns, pod, grace).await? {
            deleted += 1;
            tracing::debug!(namespace = %ns, pod = %pod, "deleted the token of a sandbox pod that is gone");
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{
        test_support::{answering_client, context_with_redis, stored_token},
        token::ensure_token,
    };

    /// A pod list answer naming `pods` (namespace, name).
    fn pod_list(pods: &[(&str, &str)]) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "PodList", "metadata": {},
            "items": pods.iter().map(|(ns, name)| serde_json::json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": ns, "name": name}
            })).collect::<Vec<_>>()
        })
    }

    #[tokio::test]
    async fn the_sweep_deletes_idle_tokens_of_gone_pods_only() {
        let client =
            answering_client(|path| (path == "/api/v1/pods").then(|| pod_list(&[("team", "warm-py-alive")])));
        let (ctx, _redis) = context_with_redis(client).await;
        for pod in ["warm-py-alive", "warm-py-gone", "sandbox-s1"] {
            ensure_token(&ctx, "team", pod).await.unwrap();
        }
        let mut conn = ctx.session_log.clone().unwrap();
        // Just written: within the grace, so nothing goes (a pod may be about to be created for it).
        assert_eq!(sweep(&ctx, &mut conn, Duration::from_secs(120)).await.unwrap(), 0);
        assert!(stored_token(&ctx, "team", "warm-py-gone").await.is_some());
        // Untouched for the grace: the gone pods' tokens go, the living pod's stays.
        tokio::time::sleep(Duration::from_millis(3100)).await;
        assert_eq!(sweep(&ctx, &mut conn, Duration::from_secs(2)).await.unwrap(), 2);
        assert!(stored_token(&ctx, "team", "warm-py-alive").await.is_some());
        assert!(stored_token(&ctx, "team", "warm-py-gone").await.is_none());
        assert!(stored_token(&ctx, "team", "sandbox-s1").await.is_none());
    }

    #[tokio::test]
    async fn a_token_read_again_is_not_swept_under_its_new_pod() {
        let client = answering_client(|path| (path == "/api/v1/pods").then(|| pod_list(&[])));
        let (ctx, _redis) = context_with_redis(client).await;
        let first = ensure_token(&ctx, "team", "sandbox-s1").await.unwrap();
        tokio::time::sleep(Duration::from_millis(3100)).await;
        // The session's pod is made again: the stored token is read (and kept) just before the sweep looks.
        assert_eq!(ensure_token(&ctx, "team", "sandbox-s1").await.unwrap(), first);
        let mut conn = ctx.session_log.clone().unwrap();
        assert_eq!(sweep(&ctx, &mut conn, Duration::from_secs(2)).await.unwrap(), 0);
        assert_eq!(
            stored_token(&ctx, "team", "sandbox-s1").await.as_deref(),
            Some(first.as_str())
        );
    }

    fn deleted_pod(name: &str, session: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            namespace: Some("team".into()),
            name: Some(name.into()),
            labels: session.map(|s| [(labels::SESSION.to_owned(), s.to_owned())].into()),
            ..ObjectMeta::default()
        }
    }

    #[tokio::test]
    async fn a_deleted_pod_loses_its_token_unless_its_living_session_may_make_it_again() {
        let client = answering_client(|path| {
            (path == "/apis/corral.dev/v1alpha1/namespaces/team/sessions/s1").then(|| {
                serde_json::json!({
                    "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                    "metadata": {"name": "s1", "namespace": "team"}
                })
            })
        });
        let (ctx, _redis) = context_with_redis(client).await;
        for pod in ["warm-py-1", "warm-py-2", "sandbox-s1", "sandbox-s2"] {
            ensure_token(&ctx, "team", pod).await.unwrap();
        }
        // A warm pod, and a warm pod a session claimed: their names are never used again.
        assert!(forget_pod(&ctx, &deleted_pod("warm-py-1", None)).await.unwrap());
        assert!(
            forget_pod(&ctx, &deleted_pod("warm-py-2", Some("s1")))
                .await
                .unwrap()
        );
        // Session s1 lives: its own pod may be made again with its token. Session s2 is gone.
        assert!(
            !forget_pod(&ctx, &deleted_pod("sandbox-s1", Some("s1")))
                .await
                .unwrap()
        );
        assert!(
            forget_pod(&ctx, &deleted_pod("sandbox-s2", Some("s2")))
                .await
                .unwrap()
        );
        for (pod, kept) in [
            ("warm-py-1", false),
            ("warm-py-2", false),
            ("sandbox-s1", true),
            ("sandbox-s2", false),
        ] {
            assert_eq!(stored_token(&ctx, "team", pod).await.is_some(), kept, "{pod}");
        }
    }
}
