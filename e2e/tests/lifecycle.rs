//! Lifecycle across components: a deleted Session's event log leaves Redis, a namespace's harness goes at once
//! with its last Agent or with the namespace, GitOps-style re-applies see no drift, and losing the operator pod
//! disturbs nothing.
#![cfg(feature = "e2e")]

use std::time::Duration;

use corral_api::{Agent, Session};
use corral_e2e::{Cluster, TestNamespace, turns::session_ready, wait};
use k8s_openapi::api::{
    apps::v1::Deployment,
    coordination::v1::Lease,
    core::v1::{Namespace, Pod, Secret, ServiceAccount},
};
use kube::api::{DeleteParams, ListParams};
use redis::AsyncCommands;

const TIMEOUT: Duration = Duration::from_secs(90);

const MANIFESTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: script}
data: {script.yaml: "turns: []"}
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {name: helper}
spec:
  model:
    id: scripted
    provider: {type: scripted, scriptRef: {name: script, key: script.yaml}}
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {name: sandbox}
---
apiVersion: corral.dev/v1alpha1
kind: Session
metadata: {name: s1}
spec:
  agent: {name: helper}
  environmentRef: {name: sandbox}
"#;

#[tokio::test]
async fn deleting_a_session_removes_its_event_log() -> anyhow::Result<()> {
    let url = std::env::var("CORRAL_E2E_REDIS_URL").map_err(|_| {
        anyhow::anyhow!("CORRAL_E2E_REDIS_URL must point at the installed Redis (hack/e2e.sh forwards it)")
    })?;
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "delete", |ns| async move {
        ns.apply(MANIFESTS)?;
        let sessions = ns.api::<Session>();
        let s = wait::object(
            &sessions,
            "s1",
            TIMEOUT,
            "session Ready with finalizer",
            |s: &Session| {
                session_ready(s)
                    && s.metadata
                        .finalizers
                        .as_ref()
                        .is_some_and(|f| f.iter().any(|f| f == "corral.dev/session-log"))
            },
        )
        .await?;
        assert!(s.metadata.finalizers.is_some());

        let mut redis = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        let key = corral_session::SessionKeys::new(&ns.name, "s1").events();
        let _: String = redis.xadd(&key, "*", &[("event", "{}")]).await?;
        assert!(redis.exists::<_, bool>(&key).await?);

        sessions.delete("s1", &DeleteParams::default()).await?;
        wait::until("session gone", TIMEOUT, || async {
            Ok(sessions.get_opt("s1").await?.is_none().then_some(()))
        })
        .await?;
        assert!(
            !redis.exists::<_, bool>(&key).await?,
            "the event stream {key} must be deleted with the session"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn reapplying_the_same_manifests_shows_no_drift() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "drift", |ns| async move {
        ns.apply(MANIFESTS)?;
        wait::object(
            &ns.api::<Session>(),
            "s1",
            TIMEOUT,
            "session Ready",
            session_ready,
        )
        .await?;
        // `kubectl diff` exits 0 when the live objects match the manifests: the operator wrote no spec field.
        ns.cluster().kubectl_with_input(
            &["-n", &ns.name, "diff", "--server-side", "-f", "-"],
            Some(MANIFESTS),
        )?;
        let out = ns.apply(MANIFESTS)?;
        assert!(!out.contains("conflict"), "{out}");
        let agent = ns.api::<Agent>().get("helper").await?;
        assert_eq!(
            agent.status.and_then(|s| s.version),
            Some(1),
            "re-applying is not a new version"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn losing_the_leading_operator_pod_disturbs_nothing() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let operator_ns = cluster.corral_namespace.clone();
    TestNamespace::run(&cluster, "operator-loss", |ns| async move {
        ns.apply(MANIFESTS)?;
        let sessions = ns.api::<Session>();
        let before = wait::object(&sessions, "s1", TIMEOUT, "session Ready", session_ready).await?;

        // Two replicas run (hack/e2e.sh); the Lease names the leader. Delete it: the standby must take over.
        let leases: kube::Api<Lease> = kube::Api::namespaced(ns.cluster().client.clone(), &operator_ns);
        let leader = leases
            .get("corral-operator")
            .await?
            .spec
            .and_then(|s| s.holder_identity)
            .ok_or_else(|| anyhow::anyhow!("the operator Lease has no holder"))?;
        let pods: kube::Api<Pod> = kube::Api::namespaced(ns.cluster().client.clone(), &operator_ns);
        let selector = ListParams::default().labels("app.kubernetes.io/component=operator");
        let names: Vec<String> = pods.list(&selector).await?.items.into_iter().filter_map(|p| p.metadata.name).collect();
        assert!(names.contains(&leader), "the leader {leader} is one of the operator pods {names:?}");
        pods.delete(&leader, &DeleteParams::default().grace_period(0)).await?;
        let after = sessions.get("s1").await?;
        assert_eq!(before.status, after.status, "nothing changes while the operator is gone");

        // The replacement operator picks up new work.
        ns.apply(
            "apiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {name: s2}\nspec:\n  agent: {name: helper}\n  environmentRef: {name: sandbox}\n",
        )?;
        wait::object(&sessions, "s2", TIMEOUT, "new session Ready after the operator restarted", session_ready).await?;
        let s1 = sessions.get("s1").await?;
        assert_eq!(s1.status.and_then(|s| s.agent_version), Some(1));
        Ok(())
    })
    .await
}

/// The harness objects of namespace `ns` in Corral's namespace that still exist (Deployment, ServiceAccount,
/// Secret), by kind.
async fn harness_objects(ns: &TestNamespace) -> anyhow::Result<Vec<&'static str>> {
    let (client, system, name) = (
        ns.cluster().client.clone(),
        ns.cluster().corral_namespace.clone(),
        ns.harness_name(),
    );
    let mut found = Vec::new();
    if kube::Api::<Deployment>::namespaced(client.clone(), &system)
        .get_opt(&name)
        .await?
        .is_some()
    {
        found.push("Deployment");
    }
    if kube::Api::<ServiceAccount>::namespaced(client.clone(), &system)
        .get_opt(&name)
        .await?
        .is_some()
    {
        found.push("ServiceAccount");
    }
    if kube::Api::<Secret>::namespaced(client, &system)
        .get_opt(&name)
        .await?
        .is_some()
    {
        found.push("Secret");
    }
    Ok(found)
}

/// Within this time of the last Agent's deletion the harness is gone: well under the operator's 20 s sweep, so the
/// sweep alone would mostly miss it.
const REMOVED_WITHIN: Duration = Duration::from_secs(5);

/// The operator's leader now: the Lease's holder (a pod name) and how often leadership changed hands.
async fn leader(cluster: &Cluster) -> anyhow::Result<(Option<String>, i32)> {
    let leases: kube::Api<Lease> = kube::Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
    let spec = leases.get("corral-operator").await?.spec.unwrap_or_default();
    Ok((spec.holder_identity, spec.lease_transitions.unwrap_or(0)))
}

/// Whether the leader seen before is still leading: the same holder, no transition since, and its pod neither gone
/// nor being deleted. Another test deletes the leader; until the standby takes the Lease (a lease period later) the
/// Lease still names the deleted pod, so the holder's pod is what shows the leadership lapsed.
async fn still_leading(cluster: &Cluster, before: &(Option<String>, i32)) -> anyhow::Result<bool> {
    if leader(cluster).await? != *before {
        return Ok(false);
    }
    let Some(holder) = &before.0 else { return Ok(false) };
    let pods: kube::Api<Pod> = kube::Api::namespaced(cluster.client.clone(), &cluster.corral_namespace);
    Ok(pods
        .get_opt(holder)
        .await?
        .is_some_and(|p| p.metadata.deletion_timestamp.is_none()))
}

/// Waits [`REMOVED_WITHIN`] for `ns`'s harness objects to be gone. When the operator's leader went meanwhile
/// (another test deletes it), the new leader gets a lease period and its sweep more to see the deletion.
async fn until_removed(ns: &TestNamespace, what: &str) -> anyhow::Result<()> {
    let before = leader(ns.cluster()).await?;
    let gone = || async { Ok(harness_objects(ns).await?.is_empty().then_some(())) };
    match wait::until(what, REMOVED_WITHIN, gone).await {
        Ok(()) => Ok(()),
        Err(e) if still_leading(ns.cluster(), &before).await? => Err(e),
        Err(_) => {
            eprintln!("the operator's leader went while waiting for {what}: waiting longer");
            wait::until(what, Duration::from_secs(60), gone).await
        }
    }
}

#[tokio::test]
async fn the_harness_goes_at_once_with_the_last_agent_and_with_the_namespace() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let gone_with_namespace = TestNamespace::create(&cluster, "harness-ns").await?;
    gone_with_namespace.apply(MANIFESTS)?;
    TestNamespace::run(&cluster, "harness-gone", |ns| async move {
        ns.apply(MANIFESTS)?;
        ns.apply(
            "apiVersion: corral.dev/v1alpha1\nkind: Agent\nmetadata: {name: helper-2}\nspec:\n  model:\n    id: scripted\n    provider: {type: scripted, scriptRef: {name: script, key: script.yaml}}\n",
        )?;
        for tenant in [&ns, &gone_with_namespace] {
            wait::until("the harness objects made", TIMEOUT, || async {
                Ok((harness_objects(tenant).await?.len() == 3).then_some(()))
            })
            .await?;
        }

        // One Agent of two deleted: the harness stays for the other.
        let agents = ns.api::<Agent>();
        agents.delete("helper", &DeleteParams::default()).await?;
        tokio::time::sleep(REMOVED_WITHIN).await;
        assert_eq!(harness_objects(&ns).await?.len(), 3, "the harness serves the remaining Agent");

        // The last one deleted: gone at once.
        agents.delete("helper-2", &DeleteParams::default()).await?;
        let deleted = tokio::time::Instant::now();
        until_removed(&ns, "the harness removed with the last Agent").await?;
        eprintln!("harness removed {:?} after the last Agent's deletion", deleted.elapsed());

        // A deleted namespace takes its Agents, and the harness goes with them.
        kube::Api::<Namespace>::all(ns.cluster().client.clone())
            .delete(&gone_with_namespace.name, &DeleteParams::background())
            .await?;
        let deleted = tokio::time::Instant::now();
        let agents_gone = gone_with_namespace.api::<Agent>();
        wait::until("the namespace's Agents deleted", TIMEOUT, || async {
            Ok(agents_gone.list(&ListParams::default()).await?.items.is_empty().then_some(()))
        })
        .await?;
        until_removed(&gone_with_namespace, "the harness removed with the namespace's Agents").await?;
        eprintln!("harness removed {:?} after the namespace's deletion", deleted.elapsed());
        Ok(())
    })
    .await
}
