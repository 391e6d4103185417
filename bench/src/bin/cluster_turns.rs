//! Turns on the real cluster, measured as a client sees them through the installed gateway (KUBECONFIG names a
//! cluster with Corral installed, gateway and harness enabled; `make e2e` leaves one):
//!
//! 1. the runtime overhead of time to first token: a scripted model that answers at once, so the time from sending
//!    a `user.message` to the first `agent.*` event on the session's SSE stream is Corral's own (gateway, session
//!    log, wake-up queue, harness);
//! 2. time to first token of a new session's first turn with lazy sandbox provisioning (the default) versus eager
//!    (`sandbox.provisioning: Eager`, the turn waits for a cold sandbox pod before calling the model);
//! 3. recovery after every harness process of the namespace is SIGKILLed mid-turn (their pods deleted too, so
//!    the replacements are new pods): the time until the turn ends, taken over by a new replica.
//!
//! `cargo run -p corral-bench --bin cluster_turns -- [TURNS] [ROUNDS] [KILLS]` (defaults 30, 8, 3).

use std::time::{Duration, Instant};

use corral_bench::hops::{self, Hops, TurnStamps};
use corral_bench::{delete_session, next_event, p50_p95, until_idle};
use corral_e2e::gateway::{Client, Events, gateway_url, tenant};
use corral_e2e::{Cluster, TestNamespace, cluster::processes_of_pod};
use kube::api::{DeleteParams, ListParams};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(240);

/// The agents: `quick` answers every turn at once with a few words; `slow` streams its answer over 4.5 s.
fn agents(turns: usize) -> String {
    let quick: String = (0..turns)
        .map(|_| "      - content: [{text: [\"Hi.\"]}]\n")
        .collect();
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: scripts}}
data:
  quick.yaml: |
    turns:
{quick}  slow.yaml: |
    turns:
      - content: [{{text: ["Working", " on", " it."]}}]
        delay_ms: 1500
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {{name: quick}}
spec:
  model: {{id: scripted, provider: {{type: scripted, scriptRef: {{name: scripts, key: quick.yaml}}}}}}
  tools: [{{type: agent_toolset_20260401}}]
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {{name: slow}}
spec:
  model: {{id: scripted, provider: {{type: scripted, scriptRef: {{name: scripts, key: slow.yaml}}}}}}
  tools: [{{type: agent_toolset_20260401}}]
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {{name: lazy}}
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {{name: eager}}
spec: {{sandbox: {{provisioning: Eager}}}}
"#
    )
}

/// Sends a user message and returns the time until the first `agent.*` event on `stream` with the turn's hops up
/// to it (see [`hops`]), then reads to the end of the turn.
async fn timed_turn(
    api: &Client,
    session: &str,
    stream: &mut Events,
) -> anyhow::Result<(Duration, Option<Hops>)> {
    let mut stamps = TurnStamps {
        sent: hops::wall_millis(),
        ..TurnStamps::default()
    };
    let start = Instant::now();
    send_message(api, session).await?;
    stamps.answered = hops::wall_millis();
    loop {
        let event = next_event(stream).await?;
        let arrived = hops::wall_millis();
        if let Some(log) = hops::cursor_millis(&event.id) {
            stamps.events.push((event.event.clone(), log, arrived));
        }
        if event.event.starts_with("agent.") {
            let first = start.elapsed();
            until_idle(stream).await?;
            return Ok((first, stamps.hops()));
        }
        anyhow::ensure!(
            event.event != "session.status_idle",
            "the turn ended without an agent event"
        );
    }
}

async fn send_message(api: &Client, session: &str) -> anyhow::Result<Value> {
    api.post(
        &format!("/v1/sessions/{session}/events"),
        json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "hi" }] }] }),
    )
    .await
}

async fn new_session(api: &Client, agent: &str, environment: &str) -> anyhow::Result<String> {
    api.create(
        "/v1/sessions",
        json!({ "agent": agent, "environment_id": environment }),
    )
    .await
}

fn ms(d: Duration) -> String {
    format!("{:.1}ms", d.as_secs_f64() * 1000.0)
}

fn report(what: &str, samples: &[Duration]) -> Option<(Duration, Duration)> {
    let (p50, p95) = p50_p95(samples)?;
    println!(
        "{what} over {} samples: p50 {}, p95 {}",
        samples.len(),
        ms(p50),
        ms(p95)
    );
    Some((p50, p95))
}

/// Kills every harness process of the namespace (SIGKILL, as a crash would) and deletes their pods, returning when
/// it did. The Deployment replaces the pods.
async fn kill_harnesses(ns: &TestNamespace) -> anyhow::Result<Instant> {
    let pods = ns.harness_pods();
    let harness = pods
        .list(&ListParams::default().labels(&ns.harness_selector()))
        .await?;
    let mut killed = 0;
    for pod in &harness.items {
        for pid in processes_of_pod(pod.metadata.uid.as_deref().unwrap_or_default(), "harness") {
            std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()?;
            killed += 1;
        }
    }
    let at = Instant::now();
    anyhow::ensure!(killed > 0, "found no harness process to kill");
    for pod in harness.items {
        pods.delete(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &DeleteParams::default().grace_period(0),
        )
        .await?;
    }
    Ok(at)
}

/// One recovery: a slow turn, every harness killed while the model streams; returns the time from the kill to the
/// end of the turn. The turn's model call is replayed from its start by the replica that takes the session over,
/// so the figure includes that call's 4.5 s.
async fn one_recovery(ns: &TestNamespace, api: &Client) -> anyhow::Result<Duration> {
    let session = new_session(api, "slow", "lazy").await?;
    let mut stream = api.stream(&session, None).await?;
    send_message(api, &session).await?;
    while next_event(&mut stream).await?.event != "span.model_request_start" {}
    let killed = kill_harnesses(ns).await?;
    until_idle(&mut stream).await?;
    let ended = killed.elapsed();
    ns.harness_available(TIMEOUT).await?;
    delete_session(ns, api, &session).await?;
    Ok(ended)
}

fn arg(n: usize, default: usize) -> anyhow::Result<usize> {
    Ok(std::env::args()
        .nth(n)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(default))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (turns, rounds, kills) = (arg(1, 30)?, arg(2, 8)?, arg(3, 3)?);
    let cluster = Cluster::connect().await?;
    let (base, _forward) = gateway_url(&cluster, "bench-turns").await?;
    TestNamespace::run(&cluster, "bench-turns", |ns| async move {
        ns.apply(&agents(turns + 1))?;
        let api = tenant(&base, ns.cluster(), &ns.name).await?;
        ns.harness_available(TIMEOUT).await?;

        // 1. Many turns of one session; the first (loading the agent, opening connections) is not counted.
        let session = new_session(&api, "quick", "lazy").await?;
        let mut stream = api.stream(&session, None).await?;
        timed_turn(&api, &session, &mut stream).await?;
        let (mut ttft, mut hops_of) = (Vec::with_capacity(turns), Vec::with_capacity(turns));
        for _ in 0..turns {
            let (first, turn_hops) = timed_turn(&api, &session, &mut stream).await?;
            ttft.push(first);
            hops_of.extend(turn_hops);
        }
        drop(stream);
        report("time to first token through the gateway, runtime overhead", &ttft);
        hops::report(&hops_of);

        // 2. A new session's first turn, lazy and eager alternately, each on a node without other sandboxes.
        let (mut lazy, mut eager) = (vec![], vec![]);
        for _ in 0..rounds {
            for (environment, samples) in [("lazy", &mut lazy), ("eager", &mut eager)] {
                let session = new_session(&api, "quick", environment).await?;
                let mut stream = api.stream(&session, None).await?;
                samples.push(timed_turn(&api, &session, &mut stream).await?.0);
                drop(stream);
                delete_session(&ns, &api, &session).await?;
            }
        }
        let lazy_p = report("time to first token of a new session, lazy provisioning", &lazy);
        let eager_p = report("time to first token of a new session, eager provisioning", &eager);
        if let (Some((l50, l95)), Some((e50, e95))) = (lazy_p, eager_p) {
            println!(
                "lazy/eager: p50 {:.2}, p95 {:.2}",
                l50.as_secs_f64() / e50.as_secs_f64(),
                l95.as_secs_f64() / e95.as_secs_f64()
            );
        }

        // 3. Recovery after the harness is killed mid-turn.
        let mut ended = vec![];
        for _ in 0..kills {
            ended.push(one_recovery(&ns, &api).await?);
        }
        report(
            "recovery: every harness SIGKILLed mid-turn → the turn ends (replaying its 4.5 s model call)",
            &ended,
        );
        Ok(())
    })
    .await
}
