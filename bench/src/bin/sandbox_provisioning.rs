//! Warm-pool claim latency versus cold pod creation on the cluster in KUBECONFIG (the local one of
//! `make cluster-up` by default), with Corral installed: the time from a harness-style sandbox request
//! (`status.sandbox.requestedAt`) until the Session reports the sandbox Ready with its endpoint.
//!
//! `cargo run -p corral-bench --bin sandbox_provisioning -- [ROUNDS]` (default 10 rounds of each).

use std::time::{Duration, Instant};

use corral_api::{Environment, Session, labels::HARNESS_FIELD_MANAGER, session::SandboxPhase};
use corral_bench::p50_p95;
use corral_e2e::{Cluster, TestNamespace, turns, wait};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(180);

async fn one_round(ns: &TestNamespace, env: &str, i: usize) -> anyhow::Result<Duration> {
    let name = format!("{env}-{i}");
    ns.apply(&format!(
        "apiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {{name: {name}}}\nspec:\n  agent: {{name: helper}}\n  environmentRef: {{name: {env}}}\n"
    ))?;
    let sessions = ns.api::<Session>();
    turns::wait_session_ready(&sessions, &name, TIMEOUT).await?;
    let patch = json!({
        "apiVersion": "corral.dev/v1alpha1", "kind": "Session",
        "status": { "sandbox": { "requestedAt": Timestamp::now().to_string() } }
    });
    let start = Instant::now();
    sessions
        .patch_status(
            &name,
            &PatchParams::apply(HARNESS_FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    wait::object(&sessions, &name, TIMEOUT, "sandbox Ready", |s: &Session| {
        s.status
            .as_ref()
            .and_then(|s| s.sandbox.as_ref())
            .and_then(|b| b.phase)
            == Some(SandboxPhase::Ready)
    })
    .await?;
    let elapsed = start.elapsed();
    // Free the node for the next round (2 cores hold only a handful of sandbox requests).
    sessions.delete(&name, &Default::default()).await?;
    wait::until("session deleted", TIMEOUT, || async {
        Ok(sessions.get_opt(&name).await?.is_none().then_some(()))
    })
    .await?;
    Ok(elapsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10);
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "bench-sandbox", |ns| async move {
        ns.apply(
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: script}
data: {script.yaml: "turns: []"}
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {name: helper}
spec: {model: {id: scripted, provider: {type: scripted, scriptRef: {name: script, key: script.yaml}}}}
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {name: cold}
spec: {sandbox: {idleTimeout: 1h}}
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {name: warm}
spec: {sandbox: {idleTimeout: 1h, warmPool: 2}}
"#,
        )?;
        let envs = ns.api::<Environment>();
        let (mut cold, mut warm) = (vec![], vec![]);
        for i in 0..rounds {
            cold.push(one_round(&ns, "cold", i).await?);
            wait::object(&envs, "warm", TIMEOUT, "warm pool full", |e: &Environment| {
                e.status
                    .as_ref()
                    .and_then(|s| s.warm_pool.as_ref())
                    .is_some_and(|w| w.ready >= 2)
            })
            .await?;
            warm.push(one_round(&ns, "warm", i).await?);
        }
        let (c50, c95) = p50_p95(&cold).unwrap_or_default();
        let (w50, w95) = p50_p95(&warm).unwrap_or_default();
        println!("sandbox provisioning, {rounds} rounds each (request -> Ready with endpoint)");
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        println!("cold creation: p50 {}, p95 {}", ms(c50), ms(c95));
        println!("warm claim:    p50 {}, p95 {}", ms(w50), ms(w95));
        println!(
            "ratio warm/cold p50: {:.2}",
            w50.as_secs_f64() / c50.as_secs_f64().max(f64::EPSILON)
        );
        Ok(())
    })
    .await
}
