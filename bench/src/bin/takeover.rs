//! Takeover on the real cluster: with the namespace's two harness replicas up, a slow turn starts, and only the
//! process of the replica holding the session's lease is SIGKILLed while the model streams (its pod stays: no
//! pod-deletion path helps). Measured: the kill → the next event on the session's SSE stream (the surviving
//! replica's `session.status_rescheduled`), over KILLS kills; then the turn must still end with `end_turn`.
//! Between kills the killed pod is deleted so its replacement starts without a crash-loop back-off.
//!
//! Needs KUBECONFIG (Corral installed with the gateway and harness, `E2E_INSTALL_ONLY=1 hack/e2e.sh`) and
//! `CORRAL_E2E_REDIS_URL` (the installed Redis forwarded to this host, to read the lease holder).
//!
//! `cargo run --release -p corral-bench --bin takeover -- [KILLS]` (default 20).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use corral_bench::{next_event, p50_p95, until_idle};
use corral_e2e::gateway::{Client, gateway_url, tenant};
use corral_e2e::{Cluster, TestNamespace, cluster::processes_of_pod, wait};
use corral_session::{Config, Store};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::DeleteParams;
use serde_json::json;

const TIMEOUT: Duration = Duration::from_secs(240);

const AGENTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: scripts}
data:
  slow.yaml: |
    turns:
      - content: [{text: ["Working", " on", " it", " slowly."]}]
        delay_ms: 1500
---
apiVersion: corral.dev/v1alpha1
kind: Agent
metadata: {name: slow}
spec:
  model: {id: scripted, provider: {type: scripted, scriptRef: {name: scripts, key: slow.yaml}}}
  tools: [{type: agent_toolset_20260401}]
---
apiVersion: corral.dev/v1alpha1
kind: Environment
metadata: {name: lazy}
"#;

/// Waits until the namespace's harness Deployment has `n` ready replicas that beat (registered a while ago).
async fn replicas_ready(ns: &TestNamespace, n: i32) -> anyhow::Result<()> {
    let deployments: Api<Deployment> =
        Api::namespaced(ns.cluster().client.clone(), &ns.cluster().corral_namespace);
    wait::object(
        &deployments,
        &ns.harness_name(),
        TIMEOUT,
        "harness replicas ready",
        |d: &Deployment| d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0) >= n,
    )
    .await?;
    // A new replica reaps others only after 2 s of its own beats.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(())
}

/// One takeover: returns the time from the SIGKILL of the lease holder's process to the next SSE event, and that
/// event's type.
async fn one_takeover(ns: &TestNamespace, api: &Client, store: &Store) -> anyhow::Result<(Duration, String)> {
    let session: String = api
        .create(
            "/v1/sessions",
            json!({ "agent": "slow", "environment_id": "lazy" }),
        )
        .await?;
    let mut stream = api.stream(&session, None).await?;
    api.post(
        &format!("/v1/sessions/{session}/events"),
        json!({ "events": [{ "type": "user.message", "content": [{ "type": "text", "text": "hi" }] }] }),
    )
    .await?;
    while next_event(&mut stream).await?.event != "span.model_request_start" {}
    let log = store.session(&ns.name, &session);
    let holder: String = redis::cmd("HGET")
        .arg(log.keys().lease())
        .arg("holder")
        .query_async(&mut store.connection())
        .await
        .context("reading the lease holder")?;
    let pod_name = holder
        .rsplit_once('-')
        .map(|(pod, _)| pod.to_owned())
        .context("a replica id")?;
    let pods = ns.harness_pods();
    let pod: Pod = pods
        .get(&pod_name)
        .await
        .with_context(|| format!("the holder's pod {pod_name}"))?;
    let pids = processes_of_pod(pod.metadata.uid.as_deref().unwrap_or_default(), "harness");
    anyhow::ensure!(!pids.is_empty(), "no harness process in {pod_name}");
    for pid in &pids {
        std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
    }
    let killed = Instant::now();
    let next = next_event(&mut stream).await?;
    let took = killed.elapsed();
    until_idle(&mut stream).await?;
    drop(stream);
    pods.delete(&pod_name, &DeleteParams::default().grace_period(0))
        .await?;
    api.ok(reqwest::Method::DELETE, &format!("/v1/sessions/{session}"), None)
        .await?;
    Ok((took, next.event))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let kills: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20);
    let redis_url =
        std::env::var("CORRAL_E2E_REDIS_URL").context("CORRAL_E2E_REDIS_URL (hack/e2e.sh forwards Redis)")?;
    let store = Store::connect(&redis_url, Config::default()).await?;
    let cluster = Cluster::connect().await?;
    let (base, _forward) = gateway_url(&cluster, "bench-takeover").await?;
    TestNamespace::run(&cluster, "bench-takeover", |ns| async move {
        ns.apply(AGENTS)?;
        let api = tenant(&base, ns.cluster(), &ns.name).await?;
        let mut samples = Vec::with_capacity(kills);
        for k in 0..kills {
            replicas_ready(&ns, 2).await?;
            let (took, event) = one_takeover(&ns, &api, &store).await?;
            println!("kill {k}: next event {event} after {:.0} ms", took.as_secs_f64() * 1000.0);
            samples.push(took);
        }
        let (p50, p95) = p50_p95(&samples).context("samples")?;
        println!(
            "takeover: lease holder SIGKILLed mid-stream → next SSE event, {} kills: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            samples.len(),
            p50.as_secs_f64() * 1000.0,
            p95.as_secs_f64() * 1000.0,
            samples.iter().max().unwrap_or(&Duration::ZERO).as_secs_f64() * 1000.0
        );
        Ok(())
    })
    .await
}
