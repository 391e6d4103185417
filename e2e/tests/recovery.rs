//! Crash recovery on the real cluster: a turn survives its harness pod being deleted mid-stream, and its harness
//! process being killed with SIGKILL mid-tool-call. Nothing is lost or duplicated, and a tool call that was cut
//! off is reported to the model as interrupted rather than run twice.
#![cfg(feature = "e2e")]

use std::time::Duration;

use corral_api::events::EventBody;
use corral_e2e::{Cluster, TestNamespace, cluster::processes_of_pod, wait};
use corral_session::{Config, Order, SessionLog, Store, StoredEvent};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams};

const TIMEOUT: Duration = Duration::from_secs(240);

/// A slow script: a 4.5 s stream, then a 4 s tool call, then a short answer.
const SLOW_AGENT: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: slow-script}
data:
  script.yaml: |
    turns:
      - content:
          - text: ["Working", " on", " it."]
          - tool_use:
              name: bash
              input: {command: "sleep 4; echo slept"}
        delay_ms: 1500
      - content:
          - text: ["Done."]
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {name: slow}
spec:
  model:
    id: scripted
    provider: {type: scripted, scriptRef: {name: slow-script, key: script.yaml}}
  tools: [{type: agent_toolset_20260401}]
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {name: box}
---
apiVersion: corral.dev/v1alpha1
kind: Session
metadata: {name: s1}
spec:
  agent: {name: slow}
  environmentRef: {name: box}
"#;

/// The installed Redis, forwarded to this host by hack/e2e.sh.
fn redis_url() -> anyhow::Result<String> {
    std::env::var("CORRAL_E2E_REDIS_URL")
        .map_err(|_| anyhow::anyhow!("CORRAL_E2E_REDIS_URL must point at the installed Redis (hack/e2e.sh)"))
}

async fn start_turn(ns: &TestNamespace, url: &str) -> anyhow::Result<SessionLog> {
    ns.apply(SLOW_AGENT)?;
    ns.harness_available(TIMEOUT).await?;
    let store = Store::connect(url, Config::default()).await?;
    let log = store.session(&ns.name, "s1");
    let message: EventBody = serde_json::from_value(serde_json::json!({
        "type": "user.message", "content": [{"type": "text", "text": "work slowly"}]
    }))?;
    log.append_user([message]).await?;
    store.enqueue(&ns.name, "s1").await?;
    Ok(log)
}

async fn wait_for(log: &SessionLog, event_type: &str) -> anyhow::Result<Vec<StoredEvent>> {
    wait::until(&format!("a {event_type} event"), TIMEOUT, || async {
        let events = log.range(None, 1000, Order::Asc).await?.events;
        Ok(events
            .iter()
            .any(|e| e.event.body.type_name() == event_type)
            .then_some(events))
    })
    .await
}

/// The turn ended once, every event is unique, every tool use has exactly one result.
fn assert_turn_complete(events: &[StoredEvent]) -> anyhow::Result<()> {
    let types: Vec<&str> = events.iter().map(|e| e.event.body.type_name()).collect();
    let count = |t: &str| types.iter().filter(|x| **x == t).count();
    let ids: std::collections::HashSet<String> = events.iter().map(|e| e.event.id.to_string()).collect();
    anyhow::ensure!(ids.len() == events.len(), "duplicated event ids in {types:?}");
    anyhow::ensure!(count("agent.tool_use") == 1, "one tool use: {types:?}");
    anyhow::ensure!(count("agent.tool_result") == 1, "one tool result: {types:?}");
    anyhow::ensure!(
        count("agent.message") == 2,
        "two answers (before and after the tool): {types:?}"
    );
    let last_idle = events
        .iter()
        .rev()
        .find(|e| e.event.body.type_name() == "session.status_idle");
    let idle = serde_json::to_value(&last_idle.ok_or_else(|| anyhow::anyhow!("no idle"))?.event)?;
    anyhow::ensure!(
        idle["stop_reason"]["type"] == "end_turn",
        "turn ended with {idle}"
    );
    Ok(())
}

async fn finished(log: &SessionLog) -> anyhow::Result<Vec<StoredEvent>> {
    wait::until("the turn to end with end_turn", TIMEOUT, || async {
        let events = log.range(None, 1000, Order::Asc).await?.events;
        let done = events
            .iter()
            .rev()
            .find(|e| e.event.body.type_name() == "session.status_idle")
            .is_some_and(|e| {
                serde_json::to_value(&e.event).is_ok_and(|v| v["stop_reason"]["type"] == "end_turn")
            });
        Ok(done.then_some(events))
    })
    .await
}

/// Starts a turn, deletes every harness pod of the namespace with `params` while the model streams, and checks
/// that the turn still completes exactly once.
async fn turn_survives_harness_pod_deletion(test: &str, params: DeleteParams) -> anyhow::Result<()> {
    let url = redis_url()?;
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, test, |ns| async move {
        let log = start_turn(&ns, &url).await?;
        wait_for(&log, "span.model_request_start").await?;
        let pods = ns.harness_pods();
        let harness = ListParams::default().labels(&ns.harness_selector());
        for pod in pods.list(&harness).await?.items {
            pods.delete(&pod.metadata.name.unwrap_or_default(), &params)
                .await?;
        }
        let events = finished(&log).await?;
        assert_turn_complete(&events)
    })
    .await
}

#[tokio::test]
async fn deleting_the_harness_pods_mid_stream_loses_and_duplicates_nothing() -> anyhow::Result<()> {
    turn_survives_harness_pod_deletion("harness-loss", DeleteParams::default().grace_period(0)).await
}

#[tokio::test]
async fn sigterm_to_the_harness_mid_turn_finishes_or_hands_back_the_turn() -> anyhow::Result<()> {
    // A normal delete: SIGTERM, then the pod's grace period.
    turn_survives_harness_pod_deletion("harness-term", DeleteParams::default()).await
}

#[tokio::test]
async fn sigkill_of_the_harness_mid_tool_call_reports_the_tool_as_interrupted() -> anyhow::Result<()> {
    let url = redis_url()?;
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "harness-kill", |ns| async move {
        let log = start_turn(&ns, &url).await?;
        wait_for(&log, "agent.tool_use").await?;
        let pods = ns
            .harness_pods()
            .list(&ListParams::default().labels(&ns.harness_selector()))
            .await?;
        let mut killed = 0;
        for pod in pods.items {
            for pid in processes_of_pod(&pod.metadata.uid.unwrap_or_default(), "harness") {
                std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()?;
                killed += 1;
            }
        }
        anyhow::ensure!(killed > 0, "found no harness process to kill");
        let events = finished(&log).await?;
        assert_turn_complete(&events)?;
        let result = events
            .iter()
            .find(|e| e.event.body.type_name() == "agent.tool_result")
            .unwrap();
        let text = serde_json::to_string(&result.event)?;
        // Killed mid-call: the model is told the call was interrupted (not silently re-run). If the kill landed
        // after the result was stored, the result is the real one; both are correct, neither may repeat.
        assert!(text.contains("interrupted") || text.contains("slept"), "{text}");
        Ok(())
    })
    .await
}

const SANDBOX_LOSS_AGENT: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: loss-script}
data:
  script.yaml: |
    turns:
      - content:
          - tool_use: {name: bash, input: {command: "sleep 8; echo first"}}
      - content:
          - tool_use: {name: bash, input: {command: "echo again"}}
      - content:
          - text: ["Done."]
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {name: loss}
spec:
  model:
    id: scripted
    provider: {type: scripted, scriptRef: {name: loss-script, key: script.yaml}}
  tools: [{type: agent_toolset_20260401}]
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {name: box}
---
apiVersion: corral.dev/v1alpha1
kind: Session
metadata: {name: s2}
spec:
  agent: {name: loss}
  environmentRef: {name: box}
"#;

#[tokio::test]
async fn a_sandbox_pod_lost_mid_tool_call_is_a_tool_error_and_the_next_call_gets_a_new_one()
-> anyhow::Result<()> {
    let url = redis_url()?;
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "sandbox-lost", |ns| async move {
        ns.apply(SANDBOX_LOSS_AGENT)?;
        let store = Store::connect(&url, Config::default()).await?;
        let log = store.session(&ns.name, "s2");
        let message: EventBody = serde_json::from_value(serde_json::json!({
            "type": "user.message", "content": [{"type": "text", "text": "run two commands"}]
        }))?;
        log.append_user([message]).await?;
        store.enqueue(&ns.name, "s2").await?;

        // Wait until the first command is running in the sandbox pod, then delete the pod under it.
        let pods = ns.api::<Pod>();
        let sandbox = ListParams::default().labels("corral.dev/session=s2");
        let first = wait::until("the sandbox pod to run the first command", TIMEOUT, || async {
            let events = log.range(None, 1000, Order::Asc).await?.events;
            let started = events
                .iter()
                .any(|e| e.event.body.type_name() == "agent.tool_use");
            let running = pods
                .list(&sandbox)
                .await?
                .items
                .into_iter()
                .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"));
            Ok(running.filter(|_| started))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        pods.delete(
            &first.metadata.name.clone().unwrap_or_default(),
            &DeleteParams::default().grace_period(0),
        )
        .await?;

        let events = wait::until("the turn to end", TIMEOUT, || async {
            let events = log.range(None, 1000, Order::Asc).await?.events;
            let done = events
                .iter()
                .any(|e| e.event.body.type_name() == "session.status_idle");
            Ok(done.then_some(events))
        })
        .await?;
        let results: Vec<serde_json::Value> = events
            .iter()
            .filter(|e| e.event.body.type_name() == "agent.tool_result")
            .map(|e| serde_json::to_value(&e.event))
            .collect::<Result<_, _>>()?;
        anyhow::ensure!(results.len() == 2, "two tool results: {results:?}");
        anyhow::ensure!(
            results[0]["is_error"] == true,
            "the lost sandbox is a tool error: {}",
            results[0]
        );
        anyhow::ensure!(
            results[1].to_string().contains("again"),
            "the next call ran in a new sandbox: {}",
            results[1]
        );
        let second = pods.list(&sandbox).await?.items;
        anyhow::ensure!(
            second.iter().all(|p| p.metadata.uid != first.metadata.uid) && !second.is_empty(),
            "a new pod replaced the lost one"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_redis_restart_loses_no_acknowledged_event() -> anyhow::Result<()> {
    let Ok(url) = std::env::var("CORRAL_E2E_REDIS_URL") else {
        eprintln!("skipped: needs CORRAL_E2E_REDIS_URL (hack/e2e.sh)");
        return Ok(());
    };
    let cluster = Cluster::connect().await?;
    let corral_ns = cluster.corral_namespace.clone();
    TestNamespace::run(&cluster, "redis-restart", |ns| async move {
        let store = Store::connect(&url, Config::default()).await?;
        let log = store.session(&ns.name, "durable");
        let mut acknowledged = vec![];
        for i in 0..100 {
            let message: EventBody = serde_json::from_value(serde_json::json!({
                "type": "user.message", "content": [{"type": "text", "text": format!("event {i}")}]
            }))?;
            acknowledged.extend(
                log.append_user([message])
                    .await?
                    .into_iter()
                    .map(|e| e.event.id.to_string()),
            );
        }

        // SIGKILL redis-server: no shutdown save, only what the append-only file already holds survives.
        let pods: kube::Api<Pod> = kube::Api::namespaced(ns.cluster().client.clone(), &corral_ns);
        let redis = pods.get("corral-redis-0").await?;
        let uid = redis.metadata.uid.clone().unwrap_or_default();
        let restarts = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .map_or(0, |c| c.iter().map(|c| c.restart_count).sum::<i32>())
        };
        let before = restarts(&redis);
        let pids = processes_of_pod(&uid, "redis-server");
        anyhow::ensure!(!pids.is_empty(), "found no redis-server process of pod {uid}");
        for pid in pids {
            std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()?;
        }
        wait::object(
            &pods,
            "corral-redis-0",
            TIMEOUT,
            "redis restarted and ready",
            |p: &Pod| {
                restarts(p) > before
                    && p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            },
        )
        .await?;

        // Read through a new connection each time: what is tested is what the restarted server kept, not how this
        // test's own client reconnects (the gateway's reconnection has its own test). Errors are printed, so a
        // timeout says why.
        let stored = wait::until("the log to be readable again", TIMEOUT, || async {
            let read = async {
                let fresh = Store::connect(&url, Config::default()).await?;
                Ok::<_, anyhow::Error>(
                    fresh
                        .session(&ns.name, "durable")
                        .range(None, 1000, Order::Asc)
                        .await?,
                )
            };
            match read.await {
                Ok(page) => Ok(Some(page.events)),
                Err(err) => {
                    eprintln!("the log is not readable yet: {err:#}");
                    Ok(None)
                }
            }
        })
        .await?;
        let ids: Vec<String> = stored.iter().map(|e| e.event.id.to_string()).collect();
        assert_eq!(ids, acknowledged, "every acknowledged event survives, in order");
        Ok(())
    })
    .await
}
