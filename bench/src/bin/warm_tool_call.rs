//! Warm-pool claim → first tool call answered, through the installed harness, on the cluster in KUBECONFIG (the
//! local one of `make cluster-up` by default): a new session of the scripted agent (`examples/agent-scripted.yaml`,
//! whose first model turn calls `bash`) in an Environment with a warm pool; the figure is the time from the
//! harness's `agent.tool_use` to its `agent.tool_result` (both stamped by the harness, millisecond resolution): it
//! spans asking for the sandbox, the operator's claim of a warm pod, the harness learning of it, the file-resource
//! sync and the command itself.
//!
//! `cargo run -p corral-bench --bin warm_tool_call -- [ROUNDS]` (default 10).

use std::time::Duration;

use corral_api::{Environment, Session};
use corral_bench::p50_p95;
use corral_e2e::{Cluster, TestNamespace, turns, wait};
use corral_session::{Config, Store};

const TIMEOUT: Duration = Duration::from_secs(180);

async fn one_round(ns: &TestNamespace, store: &Store, i: usize) -> anyhow::Result<Duration> {
    let name = format!("s{i}");
    ns.apply(&format!(
        "apiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {{name: {name}}}\nspec:\n  agent: {{name: scripted}}\n  environmentRef: {{name: warm}}\n"
    ))?;
    let sessions = ns.api::<Session>();
    turns::wait_session_ready(&sessions, &name, TIMEOUT).await?;
    let events = turns::run_turn(store, &ns.name, &name, "check the sandbox", TIMEOUT).await?;
    let at = |kind: &str| {
        events
            .iter()
            .find(|e| e.event.body.type_name() == kind)
            .and_then(|e| e.event.processed_at)
            .ok_or_else(|| anyhow::anyhow!("no {kind} in round {i}"))
    };
    let (asked, answered) = (at("agent.tool_use")?, at("agent.tool_result")?);
    let sandbox = sessions
        .get(&name)
        .await?
        .status
        .and_then(|s| s.sandbox)
        .unwrap_or_default();
    let stamp = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok())
    };
    if let (Some(requested), Some(ready)) = (stamp(&sandbox.requested_at), stamp(&sandbox.since)) {
        let ms = |a: k8s_openapi::jiff::Timestamp, b: k8s_openapi::jiff::Timestamp| {
            b.duration_since(a).as_millis()
        };
        println!(
            "round {i}: tool_use -> requestedAt {} ms, -> Ready (operator) {} ms, -> tool_result {} ms",
            ms(asked, requested),
            ms(requested, ready),
            ms(ready, answered)
        );
    }
    let pod = sandbox.pod.unwrap_or_default();
    anyhow::ensure!(
        pod.starts_with("warm-warm-"),
        "round {i} was not served from the pool: {pod:?}"
    );
    // Free the node for the next round.
    sessions.delete(&name, &Default::default()).await?;
    Ok(answered.duration_since(asked).unsigned_abs())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let url = corral_e2e::installed_redis_url()?;
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "bench-warm-call", |ns| async move {
        let example =
            std::fs::read_to_string(corral_e2e::cluster::repo_root().join("examples/agent-scripted.yaml"))?;
        ns.apply(&example)?;
        ns.apply(
            "apiVersion: corral.dev/v1alpha1\nkind: Environment\nmetadata: {name: warm}\nspec: {sandbox: {idleTimeout: 1h, warmPool: 2}}\n",
        )?;
        ns.harness_available(TIMEOUT).await?;
        let store = Store::connect(&url, Config::default()).await?;
        let envs = ns.api::<Environment>();
        let mut samples = vec![];
        for i in 0..rounds {
            wait::object(&envs, "warm", TIMEOUT, "warm pool full", |e: &Environment| {
                e.status
                    .as_ref()
                    .and_then(|s| s.warm_pool.as_ref())
                    .is_some_and(|w| w.ready >= 2)
            })
            .await?;
            let sample = one_round(&ns, &store, i).await?;
            println!("round {i}: {:.0} ms", sample.as_secs_f64() * 1000.0);
            samples.push(sample);
        }
        let (p50, p95) = p50_p95(&samples).unwrap_or_default();
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        println!(
            "warm claim -> first tool call answered (agent.tool_use -> agent.tool_result), {rounds} rounds: p50 {}, p95 {}",
            ms(p50),
            ms(p95)
        );
        Ok(())
    })
    .await
}
