//! One turn end to end on the real cluster: the harness Deployment the operator runs takes the wake-up, calls the
//! scripted model, gets a sandbox pod on the first tool call (not before), runs `bash` in it, and ends the turn;
//! the session log holds the whole turn in order and the Session status follows.
//! The test plays the gateway's part (append the user message, enqueue the wake-up) through the session library.
#![cfg(feature = "e2e")]

use std::time::Duration;

use corral_api::{Session, session::SessionPhase};
use corral_e2e::{Cluster, TestNamespace, turns, wait};
use corral_session::{Config, Store};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;

const TIMEOUT: Duration = Duration::from_secs(180);

fn types(events: &[corral_session::StoredEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| e.event.body.type_name().to_owned())
        .collect()
}

#[tokio::test]
async fn a_turn_runs_through_the_harness_with_a_lazy_sandbox() -> anyhow::Result<()> {
    let url = corral_e2e::installed_redis_url()?;
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "turn", |ns| async move {
        let example = std::fs::read_to_string(corral_e2e::cluster::repo_root().join("examples/agent-scripted.yaml"))?;
        ns.apply(&example)?;
        ns.apply(
            "apiVersion: corral.dev/v1alpha1\nkind: Environment\nmetadata: {name: box}\n---\napiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {name: s1}\nspec:\n  agent: {name: scripted}\n  environmentRef: {name: box}\n",
        )?;
        ns.harness_available(TIMEOUT).await?;
        let sessions = ns.api::<Session>();
        turns::wait_session_ready(&sessions, "s1", TIMEOUT).await?;
        let pods = ns.api::<Pod>();
        let sandbox_pods = ListParams::default().labels("corral.dev/session=s1");
        assert!(pods.list(&sandbox_pods).await?.items.is_empty(), "no sandbox before the first tool call");

        let store = Store::connect(&url, Config::default()).await?;
        let events = turns::run_turn(&store, &ns.name, "s1", "say hello and check the sandbox", TIMEOUT).await?;
        let seen = types(&events);
        for expected in [
            "user.message",
            "session.status_running",
            "span.model_request_start",
            "agent.message",
            "agent.tool_use",
            "agent.tool_result",
            "span.model_request_end",
            "session.status_idle",
        ] {
            assert!(seen.iter().any(|t| t == expected), "missing {expected} in {seen:?}");
        }
        let pos = |t: &str| seen.iter().position(|s| s == t).unwrap_or(usize::MAX);
        assert!(pos("agent.tool_use") < pos("agent.tool_result") && pos("agent.tool_result") < pos("session.status_idle"));
        let result = events.iter().find(|e| e.event.body.type_name() == "agent.tool_result").unwrap();
        let result_json = serde_json::to_string(&result.event)?;
        assert!(result_json.contains("hello"), "bash ran in the sandbox: {result_json}");
        assert!(!result_json.contains("\"is_error\":true"), "{result_json}");
        let idle = serde_json::to_value(&events.iter().rev().find(|e| e.event.body.type_name() == "session.status_idle").unwrap().event)?;
        assert_eq!(idle["stop_reason"]["type"], "end_turn");
        let ids: std::collections::HashSet<_> = events.iter().map(|e| e.event.id.to_string()).collect();
        assert_eq!(ids.len(), events.len(), "no duplicated events");

        assert_eq!(pods.list(&sandbox_pods).await?.items.len(), 1, "the first tool call brought the sandbox pod");
        wait::object(&sessions, "s1", TIMEOUT, "session idle with usage", |s: &Session| {
            s.status.as_ref().is_some_and(|st| st.phase == Some(SessionPhase::Idle) && st.usage.as_ref().is_some_and(|u| u.output_tokens > 0))
        })
        .await?;
        Ok(())
    })
    .await
}

/// An agent that only answers: its turns never call a tool.
const TALKER: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: talk-script}
data:
  script.yaml: |
    turns:
      - content:
          - text: ["Hello."]
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {name: talker}
spec:
  model:
    id: scripted
    provider: {type: scripted, scriptRef: {name: talk-script, key: script.yaml}}
  tools: [{type: agent_toolset_20260401}]
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {name: eager}
spec:
  sandbox: {provisioning: Eager}
---
apiVersion: corral.dev/v1alpha1
kind: Session
metadata: {name: s1}
spec:
  agent: {name: talker}
  environmentRef: {name: eager}
"#;

#[tokio::test]
async fn an_eager_environment_readies_the_sandbox_before_the_model_is_called() -> anyhow::Result<()> {
    let url = corral_e2e::installed_redis_url()?;
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "eager", |ns| async move {
        ns.apply(TALKER)?;
        let sessions = ns.api::<Session>();
        turns::wait_session_ready(&sessions, "s1", TIMEOUT).await?;
        let store = Store::connect(&url, Config::default()).await?;
        let events = turns::run_turn(&store, &ns.name, "s1", "hi", TIMEOUT).await?;
        let seen = types(&events);
        assert!(
            !seen.iter().any(|t| t == "agent.tool_use"),
            "the agent only talks: {seen:?}"
        );

        // No tool was called, yet the sandbox is there, and it was ready before the model request started.
        let pods = ns
            .api::<Pod>()
            .list(&ListParams::default().labels("corral.dev/session=s1"))
            .await?;
        assert_eq!(pods.items.len(), 1, "the turn brought the sandbox pod up front");
        let session = sessions.get("s1").await?;
        let sandbox = session.status.and_then(|s| s.sandbox).unwrap_or_default();
        assert_eq!(sandbox.phase, Some(corral_api::session::SandboxPhase::Ready));
        let ready_at: k8s_openapi::jiff::Timestamp = sandbox.since.as_deref().unwrap_or_default().parse()?;
        let model_start = events
            .iter()
            .find(|e| e.event.body.type_name() == "span.model_request_start")
            .and_then(|e| e.event.processed_at)
            .ok_or_else(|| anyhow::anyhow!("no model request in {seen:?}"))?;
        assert!(
            ready_at <= model_start,
            "sandbox ready at {ready_at}, model request started at {model_start}"
        );
        Ok(())
    })
    .await
}

/// The sum of a counter's samples whose labels contain every one of `labels` (`name="value"`).
fn counter_sum(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_warm_claim_reaches_the_harness_through_its_watch_without_reading_the_session() -> anyhow::Result<()>
{
    let url = corral_e2e::installed_redis_url()?;
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "watch", |ns| async move {
        let example = std::fs::read_to_string(corral_e2e::cluster::repo_root().join("examples/agent-scripted.yaml"))?;
        ns.apply(&example)?;
        ns.apply(
            "apiVersion: corral.dev/v1alpha1\nkind: Environment\nmetadata: {name: box}\nspec: {sandbox: {warmPool: 1}}\n---\napiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {name: s1}\nspec:\n  agent: {name: scripted}\n  environmentRef: {name: box}\n",
        )?;
        ns.harness_available(TIMEOUT).await?;
        let sessions = ns.api::<Session>();
        turns::wait_session_ready(&sessions, "s1", TIMEOUT).await?;
        let envs = ns.api::<corral_api::Environment>();
        wait::object(&envs, "box", TIMEOUT, "one warm pod ready", |e: &corral_api::Environment| {
            e.status.as_ref().and_then(|s| s.warm_pool.as_ref()).is_some_and(|w| w.ready == 1)
        })
        .await?;
        for replica in ns.harness_metrics().await? {
            assert!(
                replica.lines().any(|l| l == "corral_harness_session_watch_up 1"),
                "every harness replica watches the namespace's Sessions:\n{replica}"
            );
        }

        let store = Store::connect(&url, Config::default()).await?;
        let events = turns::run_turn(&store, &ns.name, "s1", "say hello and check the sandbox", TIMEOUT).await?;
        let result = events
            .iter()
            .find(|e| e.event.body.type_name() == "agent.tool_result")
            .ok_or_else(|| anyhow::anyhow!("no tool result in {:?}", types(&events)))?;
        let result_json = serde_json::to_string(&result.event)?;
        assert!(result_json.contains("hello"), "bash ran in the sandbox: {result_json}");
        assert!(!result_json.contains("\"is_error\":true"), "{result_json}");
        let pod = sessions
            .get("s1")
            .await?
            .status
            .and_then(|s| s.sandbox)
            .and_then(|b| b.pod)
            .unwrap_or_default();
        assert!(pod.starts_with("warm-box-"), "the call ran in a pod claimed from the pool: {pod:?}");

        // The harness read the session at its wake-up, learned of the claimed pod and read the session's resources
        // from its watch: not one read of the Session from the API server for the agent, the sandbox or its files.
        let after = ns.harness_metrics().await?.join("\n");
        let reads = "corral_harness_session_api_reads_total";
        for purpose in ["purpose=\"agent\"", "purpose=\"sandbox\"", "purpose=\"files\""] {
            assert_eq!(
                counter_sum(&after, reads, &[purpose]),
                0.0,
                "API-server reads of the Session ({purpose}):\n{}",
                after.lines().filter(|l| l.starts_with(reads)).collect::<Vec<_>>().join("\n")
            );
        }
        let calls = counter_sum(&after, "corral_harness_tool_calls_total", &["tool=\"bash\"", "outcome=\"ok\""]);
        assert_eq!(calls, 1.0, "the replicas' metrics count this turn's call");
        Ok(())
    })
    .await
}
