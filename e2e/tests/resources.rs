//! The custom resources on a real API server with the Helm-installed operator: schema and CEL rejections, docs in
//! `kubectl explain`, reconciliation to Ready, reasons for unresolved references, versions, immutability.
#![cfg(feature = "e2e")]

use std::time::Duration;

use corral_api::{
    Agent, Environment, Session,
    conditions::{self, types},
};
use corral_e2e::{Cluster, TestNamespace, wait};
use k8s_openapi::api::apps::v1::ControllerRevision;
use kube::api::ListParams;

const TIMEOUT: Duration = Duration::from_secs(60);

fn ready_reason<K>(status_conditions: Option<&[conditions::Condition]>) -> Option<(String, String)> {
    let _ = std::marker::PhantomData::<K>;
    status_conditions
        .and_then(|c| conditions::find(c, types::READY))
        .map(|c| (c.status.clone(), c.reason.clone()))
}

const SCRIPTED_AGENT: &str = r#"
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
  system: be brief
  tools: [{type: agent_toolset_20260401}]
"#;

const ENVIRONMENT: &str = r#"
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {name: sandbox}
spec:
  sandbox: {idleTimeout: 1m}
"#;

#[tokio::test]
async fn kubectl_explain_documents_the_api() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    let out = cluster.kubectl(&["explain", "agent.spec.model.provider"])?;
    assert!(out.contains("Which provider serves the model"), "{out}");
    assert!(out.contains("apiKeySecretRef"), "{out}");
    let out = cluster.kubectl(&["explain", "session.spec.agent.version"])?;
    assert!(out.contains("pinned"), "{out}");
    let out = cluster.kubectl(&["explain", "environment.spec.sandbox.warmPool"])?;
    assert!(out.contains("ready, unassigned sandbox pods"), "{out}");
    Ok(())
}

#[tokio::test]
async fn invalid_agents_are_rejected_with_clear_messages() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "invalid", |ns| async move {
        let bad = r#"
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {name: bad}
spec:
  model: {id: m, provider: {type: openai}}
  tools:
  - {type: mcp_toolset, mcpServerName: missing}
  - {type: custom, name: "has space", description: d, inputSchema: {type: object}}
"#;
        let err = ns.apply(bad).expect_err("the API server must reject the agent").to_string();
        for expected in [
            "an openai-compatible provider needs baseUrl",
            "every mcp_toolset must name a server listed in mcpServers",
            "custom tool names are 1 to 128 characters",
        ] {
            assert!(err.contains(expected), "missing {expected:?} in: {err}");
        }
        let unknown_enum = "apiVersion: corral.dev/v1alpha1\nkind: Agent\nmetadata: {name: bad2}\nspec:\n  model: {id: m, provider: {type: gemini}}\n";
        let err = ns.apply(unknown_enum).expect_err("unknown provider type").to_string();
        assert!(err.contains("spec.model.provider.type"), "{err}");
        assert!(ns.api::<Agent>().get_opt("bad").await?.is_none());
        Ok(())
    })
    .await
}

#[tokio::test]
async fn sessions_with_resources_the_sandbox_cannot_take_are_refused_by_kubectl() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "given", |ns| async move {
        let session = |resource: &str| {
            format!(
                "apiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {{name: given}}\nspec:\n  agent: {{name: helper}}\n  environmentRef: {{name: sandbox}}\n  resources:\n  - {resource}\n"
            )
        };
        let err = ns
            .apply(&session("{type: file, fileId: file_01JABCDEFGHJKMNPQRSTVWXYZ0, mountPath: /etc/passwd}"))
            .expect_err("a file outside the sandbox's writable volumes must be refused")
            .to_string();
        assert!(err.contains("spec.resources[0]"), "{err}");
        assert!(err.contains(corral_api::session::FILE_MOUNT_PATH_RULE), "{err}");
        assert!(ns.api::<Session>().get_opt("given").await?.is_none(), "nothing was stored");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn agent_environment_and_session_reconcile_to_ready() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "ready", |ns| async move {
        ns.apply(SCRIPTED_AGENT)?;
        ns.apply(ENVIRONMENT)?;
        ns.apply(
            "apiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {name: s1}\nspec:\n  agent: {name: helper}\n  environmentRef: {name: sandbox}\n",
        )?;
        let agent = wait::object(&ns.api::<Agent>(), "helper", TIMEOUT, "agent Ready", |a: &Agent| {
            a.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, types::READY))
        })
        .await?;
        assert_eq!(agent.status.as_ref().and_then(|s| s.version), Some(1));
        wait::object(&ns.api::<Environment>(), "sandbox", TIMEOUT, "environment Ready", |e: &Environment| {
            e.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, types::READY))
        })
        .await?;
        let session = wait::object(&ns.api::<Session>(), "s1", TIMEOUT, "session Ready", |s: &Session| {
            s.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, types::READY))
        })
        .await?;
        let status = session.status.unwrap_or_default();
        assert_eq!(status.agent_version, Some(1));
        assert_eq!(status.phase.map(|p| p.as_str()), Some("idle"), "new sessions start idle");
        let printed = ns.cluster().kubectl(&["-n", &ns.name, "get", "corral"])?;
        assert!(printed.contains("helper") && printed.contains("s1") && printed.contains("idle"), "{printed}");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn unresolved_references_get_reasons_and_recover() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "refs", |ns| async move {
        ns.apply(
            "apiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {name: orphan}\nspec:\n  agent: {name: helper}\n  environmentRef: {name: sandbox}\n",
        )?;
        let sessions = ns.api::<Session>();
        let has_reason = |reason: &'static str| {
            move |s: &Session| {
                ready_reason::<Session>(s.status.as_ref().map(|s| &s.conditions[..]))
                    == Some(("False".into(), reason.into()))
            }
        };
        wait::object(&sessions, "orphan", TIMEOUT, "AgentNotFound", has_reason("AgentNotFound")).await?;
        let events = ns.cluster().kubectl(&["-n", &ns.name, "get", "events", "-o", "wide"])?;
        assert!(events.contains("AgentNotFound"), "a Warning Event names the reason: {events}");

        ns.apply(SCRIPTED_AGENT)?;
        wait::object(&sessions, "orphan", TIMEOUT, "EnvironmentNotFound", has_reason("EnvironmentNotFound")).await?;
        ns.apply(ENVIRONMENT)?;
        wait::object(&sessions, "orphan", TIMEOUT, "session Ready", |s: &Session| {
            s.status.as_ref().is_some_and(|s| conditions::is_true(&s.conditions, types::READY))
        })
        .await?;

        ns.apply(
            "apiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {name: pinned}\nspec:\n  agent: {name: helper, version: 7}\n  environmentRef: {name: sandbox}\n",
        )?;
        wait::object(&sessions, "pinned", TIMEOUT, "AgentVersionNotFound", has_reason("AgentVersionNotFound")).await?;

        ns.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: script}\ndata: {other: x}\n")?;
        let err = ns.apply(
            "apiVersion: corral.dev/v1alpha1\nkind: Agent\nmetadata: {name: nokey}\nspec:\n  model: {id: m, provider: {type: anthropic, apiKeySecretRef: {name: absent, key: k}}}\n",
        );
        assert!(err.is_ok(), "{err:?}");
        wait::object(&ns.api::<Agent>(), "nokey", TIMEOUT, "SecretNotFound", |a: &Agent| {
            ready_reason::<Agent>(a.status.as_ref().map(|s| &s.conditions[..]))
                == Some(("False".into(), "SecretNotFound".into()))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test]
async fn every_spec_change_is_a_new_version_and_sessions_stay_pinned() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "versions", |ns| async move {
        ns.apply(SCRIPTED_AGENT)?;
        ns.apply(ENVIRONMENT)?;
        let agents = ns.api::<Agent>();
        let version_is = |v: i64| move |a: &Agent| a.status.as_ref().and_then(|s| s.version) == Some(v);
        wait::object(&agents, "helper", TIMEOUT, "version 1", version_is(1)).await?;
        ns.apply(
            "apiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {name: early}\nspec:\n  agent: {name: helper}\n  environmentRef: {name: sandbox}\n",
        )?;
        wait::object(&ns.api::<Session>(), "early", TIMEOUT, "pinned to 1", |s: &Session| {
            s.status.as_ref().and_then(|s| s.agent_version) == Some(1)
        })
        .await?;

        // Re-applying the same manifest is not a change: no new version, no drift.
        ns.apply(SCRIPTED_AGENT)?;
        ns.cluster().kubectl(&["-n", &ns.name, "patch", "agent", "helper", "--type=merge", "-p", r#"{"spec":{"system":"be thorough"}}"#])?;
        wait::object(&agents, "helper", TIMEOUT, "version 2", version_is(2)).await?;

        let revisions = ns.api::<ControllerRevision>().list(&ListParams::default().labels("corral.dev/agent=helper")).await?;
        let mut stored: Vec<i64> = revisions.items.iter().map(|r| r.revision).collect();
        stored.sort_unstable();
        assert_eq!(stored, vec![1, 2], "every version's spec is kept");
        let v1 = revisions.items.iter().find(|r| r.revision == 1).and_then(|r| r.data.clone()).unwrap();
        assert_eq!(v1.0["system"], "be brief");

        let early = ns.api::<Session>().get("early").await?;
        assert_eq!(early.status.and_then(|s| s.agent_version), Some(1), "an existing session keeps its version");

        let err = ns.cluster()
            .kubectl(&["-n", &ns.name, "patch", "session", "early", "--type=merge", "-p", r#"{"spec":{"agent":{"name":"other"}}}"#])
            .expect_err("agent is immutable")
            .to_string();
        assert!(err.contains("agent is immutable"), "{err}");
        Ok(())
    })
    .await
}
