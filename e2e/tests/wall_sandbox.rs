//! The sandbox wall on the real cluster, tried from an API user's position (an Environment is what a tenant
//! writes): placement the platform did not allow (a RuntimeClass, a toleration, a node selector) gets no pod; a
//! sandbox that fills its disk is evicted instead of filling the node; and the operator notices when the cluster
//! does not enforce the sandbox's NetworkPolicy (hack/e2e.sh turns the probe on every 5 s). Each probe also runs
//! from the permitted position, so it can fail.
#![cfg(feature = "e2e")]

use corral_api::{
    Environment, Session,
    conditions::{self, types},
    session::SandboxPhase,
};
use corral_e2e::{
    Cluster, TestNamespace,
    sandbox::{TIMEOUT, bash, client, request_sandbox, sandbox_phase, session_pods, wait_ready},
    wait,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};

/// The condition `kind` of a list, as (status, reason).
fn condition_of(
    list: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    kind: &str,
) -> Option<(String, String)> {
    list.iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// Environment `name`'s Ready condition as (status, reason, message).
async fn environment_ready(ns: &TestNamespace, name: &str) -> anyhow::Result<(String, String, String)> {
    wait::until(&format!("environment {name} reports Ready"), TIMEOUT, || async {
        let env = ns.api::<Environment>().get(name).await?;
        Ok(env.status.and_then(|s| {
            s.conditions
                .into_iter()
                .find(|c| c.type_ == types::READY)
                .map(|c| (c.status, c.reason, c.message))
        }))
    })
    .await
}

#[tokio::test]
async fn an_environment_cannot_place_sandboxes_where_the_platform_did_not_allow() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "wall-placement", |ns| async move {
        ns.apply(&corral_e2e::sandbox::manifests("{sandbox: {runtimeClassName: runc}}", ""))?;
        ns.apply(
            r#"
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {name: tolerant}
spec: {sandbox: {tolerations: [{key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}]}}
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {name: picky}
spec: {sandbox: {nodeSelector: {kubernetes.io/hostname: anything}}}
"#,
        )?;
        for (name, field) in [
            ("box", "spec.sandbox.runtimeClassName"),
            ("tolerant", "spec.sandbox.tolerations"),
            ("picky", "spec.sandbox.nodeSelector"),
        ] {
            let (status, reason, message) = environment_ready(&ns, name).await?;
            assert_eq!((status.as_str(), reason.as_str()), ("False", "NotAllowed"), "{name}: {message}");
            assert!(message.contains(field), "{name}'s refusal names {field}: {message}");
        }

        // The Session says why it cannot run, and a tool call asking for a sandbox anyway gets no pod.
        // (It may say AgentNotReady for a moment first, until the Agent's version is stored.)
        wait::object(&ns.api::<Session>(), "s1", TIMEOUT, "session EnvironmentNotReady", |s: &Session| {
            s.status.as_ref().and_then(|s| condition_of(&s.conditions, types::READY))
                == Some(("False".to_owned(), "EnvironmentNotReady".to_owned()))
        })
        .await?;
        request_sandbox(&ns, "s1").await?;
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        assert!(session_pods(&ns).await?.is_empty(), "no pod for a refused placement");
        let phase = sandbox_phase(&ns.api::<Session>().get("s1").await?);
        assert_ne!(phase, Some(SandboxPhase::Ready), "no sandbox is ready");

        // The permitted position: the same Environment without the RuntimeClass gets its sandbox.
        ns.cluster().kubectl(&[
            "-n",
            &ns.name,
            "patch",
            "environment",
            "box",
            "--type=json",
            "-p",
            r#"[{"op": "remove", "path": "/spec/sandbox/runtimeClassName"}]"#,
        ])?;
        let (status, _, message) = wait::until("environment box Ready again", TIMEOUT, || async {
            let (status, reason, message) = environment_ready(&ns, "box").await?;
            Ok((status == "True").then_some((status, reason, message)))
        })
        .await?;
        assert_eq!(status, "True", "{message}");
        request_sandbox(&ns, "s1").await?;
        wait_ready(&ns, "sandbox Ready once the placement is allowed").await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_sandbox_that_fills_its_disk_is_evicted_not_the_node() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "wall-disk", |ns| async move {
        ns.apply(&corral_e2e::sandbox::manifests("{}", ""))?;
        request_sandbox(&ns, "s1").await?;
        let ready = wait_ready(&ns, "sandbox Ready").await?;
        let pod = session_pods(&ns)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("the sandbox pod exists"))?;
        let spec = pod.spec.clone().unwrap_or_default();
        for volume in spec.volumes.iter().flatten() {
            if let Some(dir) = &volume.empty_dir {
                assert!(
                    dir.size_limit.is_some(),
                    "emptyDir {} has a sizeLimit",
                    volume.name
                );
            }
        }
        for container in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let limits = container
                .resources
                .as_ref()
                .and_then(|r| r.limits.clone())
                .unwrap_or_default();
            assert!(
                limits.contains_key("ephemeral-storage"),
                "container {} has an ephemeral-storage limit",
                container.name
            );
        }

        // Writing within the limit works (the permitted position), past /tmp's 1Gi sizeLimit gets the pod evicted.
        let c = client(&ns, &ready, &format!("{}-a", ns.name)).await?;
        let small = bash(
            &c,
            "dd if=/dev/zero of=/tmp/small bs=1M count=16 2>&1 | tail -1; rm /tmp/small; echo ok",
        )
        .await?;
        assert!(small.trim().ends_with("ok"), "{small}");
        let _ = bash(&c, "dd if=/dev/zero of=/tmp/fill bs=1M count=1200 2>&1 | tail -1").await;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let evicted = wait::until(
            "the kubelet evicts the sandbox pod",
            std::time::Duration::from_secs(180),
            || async {
                let pod = match ns.api::<Pod>().get_opt(&name).await? {
                    Some(pod) => pod,
                    None => return Ok(Some("deleted".to_owned())),
                };
                let status = pod.status.unwrap_or_default();
                Ok((status.phase.as_deref() == Some("Failed")).then(|| status.reason.unwrap_or_default()))
            },
        )
        .await?;
        assert!(
            evicted == "Evicted" || evicted == "deleted",
            "the pod ended as {evicted}"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_operator_reports_whether_the_sandbox_network_policy_is_enforced() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "wall-probe", |ns| async move {
        ns.apply(&corral_e2e::sandbox::manifests("{}", ""))?;
        request_sandbox(&ns, "s1").await?;
        wait_ready(&ns, "sandbox Ready").await?;
        let isolated = |want: &'static str| {
            let ns = &ns;
            async move {
                wait::until(&format!("NetworkIsolated={want}"), TIMEOUT, || async {
                    // The condition is written on the Session's next reconcile after a probe: nudge it.
                    let nudge = serde_json::json!({"metadata": {"annotations": {"corral.dev/e2e-nudge": chrono_now()}}});
                    ns.api::<Session>()
                        .patch("s1", &PatchParams::default(), &Patch::Merge(&nudge))
                        .await?;
                    let session = ns.api::<Session>().get("s1").await?;
                    let found = session
                        .status
                        .as_ref()
                        .and_then(|s| condition_of(&s.conditions, "NetworkIsolated"));
                    Ok(found.filter(|(status, _)| status == want).map(|(_, reason)| reason))
                })
                .await
            }
        };
        assert_eq!(isolated("True").await?, "ProbeRefused");
        assert!(
            conditions::is_true(
                &ns.api::<Session>().get("s1").await?.status.unwrap_or_default().conditions,
                "NetworkIsolated"
            ),
            "the enforcer keeps the operator out"
        );

        // A policy a tenant adds that opens the sandbox to everyone: the probe now gets in, and says so.
        ns.apply(
            r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: open-everything}
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress: [{}]
"#,
        )?;
        assert_eq!(isolated("False").await?, "NetworkPolicyNotEnforced");
        Ok(())
    })
    .await
}

/// Now, as a string that changes every call (for nudging an object).
fn chrono_now() -> String {
    format!("{:?}", std::time::SystemTime::now())
}
