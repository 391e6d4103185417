//! A full node on the real cluster: Corral's own pods come first, and a sandbox that cannot be scheduled is told to
//! the client instead of minutes of silence.
//!
//! Both tests take every free CPU request of the node, so `hack/e2e.sh` runs them alone, after the others.
#![cfg(feature = "e2e")]

use std::time::{Duration, Instant};

use corral_api::events::EventBody;
use corral_e2e::{Cluster, TestNamespace, wait};
use corral_session::{Config, Order, Store, StoredEvent};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams};

const TIMEOUT: Duration = Duration::from_secs(180);

/// Millicores of a CPU quantity (`250m`, `2`, `1.5`).
fn millicores(quantity: &str) -> anyhow::Result<i64> {
    Ok(match quantity.strip_suffix('m') {
        Some(milli) => milli.parse()?,
        None => (quantity.parse::<f64>()? * 1000.0).round() as i64,
    })
}

/// The node's free CPU (see [`free_cpu`]) once nothing on it is going away: these tests run right after the rest
/// of the suite, whose namespaces may still be terminating, and a pod that goes later would leave room the test
/// counted as taken.
async fn settled_free_cpu(cluster: &Cluster) -> anyhow::Result<(String, i64)> {
    let pods: Api<Pod> = Api::all(cluster.client.clone());
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(cluster.client.clone());
    wait::until(
        "no pod or namespace going away",
        Duration::from_secs(300),
        || async {
            let leaving_pods = pods
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .any(|p| p.metadata.deletion_timestamp.is_some());
            let leaving_namespaces = namespaces
                .list(&ListParams::default())
                .await?
                .items
                .iter()
                .any(|n| n.metadata.deletion_timestamp.is_some());
            Ok((!leaving_pods && !leaving_namespaces).then_some(()))
        },
    )
    .await?;
    free_cpu(cluster).await
}

/// The node's CPU that no running or pending pod has requested yet, in millicores (the local cluster has one node).
async fn free_cpu(cluster: &Cluster) -> anyhow::Result<(String, i64)> {
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node = nodes.list(&ListParams::default()).await?.items.remove(0);
    let name = node.metadata.name.clone().unwrap_or_default();
    let allocatable = node
        .status
        .and_then(|s| s.allocatable)
        .and_then(|a| a.get("cpu").cloned())
        .ok_or_else(|| anyhow::anyhow!("node {name} has no allocatable cpu"))?;
    let pods: Api<Pod> = Api::all(cluster.client.clone());
    let mut requested = 0;
    for pod in pods.list(&ListParams::default()).await?.items {
        let done = matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        let spec = pod.spec.unwrap_or_default();
        if done || spec.node_name.as_deref() != Some(name.as_str()) {
            continue;
        }
        // A pod's request is the larger of its containers' sum and its largest init container.
        let cpu = |c: &k8s_openapi::api::core::v1::Container| -> anyhow::Result<i64> {
            let request = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("cpu"));
            request.map(|q| millicores(&q.0)).unwrap_or(Ok(0))
        };
        let containers: i64 = spec.containers.iter().map(cpu).sum::<anyhow::Result<i64>>()?;
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .map(cpu)
            .collect::<anyhow::Result<Vec<_>>>()?;
        requested += containers.max(init.into_iter().max().unwrap_or(0));
    }
    Ok((name, millicores(&allocatable.0)? - requested))
}

/// A pod that holds `cpu_millis` of the node's CPU requests and does nothing, at the default priority.
fn filler(cpu_millis: i64) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": { "name": "filler" },
        "spec": {
            "automountServiceAccountToken": false,
            "terminationGracePeriodSeconds": 0,
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 999, "seccompProfile": { "type": "RuntimeDefault" }
            },
            "containers": [{
                "name": "filler",
                "image": "corral/redis:dev",
                "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "infinity"],
                "resources": { "requests": { "cpu": format!("{cpu_millis}m"), "memory": "16Mi" } },
                "securityContext": { "allowPrivilegeEscalation": false, "capabilities": { "drop": ["ALL"] } }
            }]
        }
    }))?)
}

fn running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

#[tokio::test]
async fn a_harness_rollout_on_a_full_node_completes_by_preempting_sandboxes() -> anyhow::Result<()> {
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "capacity-harness", |ns| async move {
        let example = std::fs::read_to_string(corral_e2e::cluster::repo_root().join("examples/agent-scripted.yaml"))?;
        ns.apply(&example)?;
        ns.harness_available(TIMEOUT).await?;
        let harness_pods = ns.harness_pods();
        let selector = ListParams::default().labels(&ns.harness_selector());
        wait::until("both harness pods running", TIMEOUT, || async {
            let pods = harness_pods.list(&selector).await?.items;
            Ok((pods.iter().filter(|p| running(p)).count() == 2).then_some(()))
        })
        .await?;

        // A warm sandbox that takes every CPU request the node has left.
        let (node, free) = settled_free_cpu(ns.cluster()).await?;
        anyhow::ensure!(free > 0, "node {node} has no CPU left before the test");
        ns.apply(&format!(
            "apiVersion: corral.dev/v1alpha1\nkind: Environment\nmetadata: {{name: hog}}\nspec:\n  sandbox:\n    warmPool: 1\n    resources: {{requests: {{cpu: {free}m, memory: 64Mi}}, limits: {{memory: 256Mi}}}}\n"
        ))?;
        let pods = ns.api::<Pod>();
        let warm = ListParams::default().labels("corral.dev/environment=hog,corral.dev/warm=true");
        let hog = wait::until("the warm sandbox running", TIMEOUT, || async {
            let list = pods.list(&warm).await?.items;
            Ok(list.into_iter().find(running))
        })
        .await?;
        let hog_uid = hog.metadata.uid.clone().unwrap_or_default();
        let (_, left) = free_cpu(ns.cluster()).await?;
        assert!(left < 100, "the warm sandbox holds the node's CPU ({left}m left)");
        let sandbox_priority = hog.spec.as_ref().and_then(|s| s.priority);
        assert!(sandbox_priority.is_some_and(|p| p < 0), "sandboxes run below ordinary pods: {sandbox_priority:?}");

        // Roll the harness (as an upgrade does): the surge pod needs CPU that only the sandbox holds.
        let before: Vec<String> =
            harness_pods.list(&selector).await?.items.iter().filter_map(|p| p.metadata.name.clone()).collect();
        let harness = ns.harness_name();
        let rolled = Instant::now();
        ns.cluster().kubectl(&["-n", &ns.cluster().corral_namespace, "rollout", "restart", &format!("deployment/{harness}")])?;
        let deployments: Api<Deployment> = Api::namespaced(ns.cluster().client.clone(), &ns.cluster().corral_namespace);
        wait::until("the harness rolled to two new running replicas", Duration::from_secs(120), || async {
            let pods = harness_pods.list(&selector).await?.items;
            let new = pods.iter().filter(|p| running(p) && !before.iter().any(|b| p.metadata.name.as_ref() == Some(b))).count();
            let status = deployments.get(&harness).await?.status.unwrap_or_default();
            let done = status.updated_replicas == Some(2) && status.ready_replicas == Some(2) && status.replicas == Some(2);
            Ok((new == 2 && done).then_some(()))
        })
        .await?;
        let back_after = rolled.elapsed();
        let replacement = harness_pods.list(&selector).await?.items;
        assert!(
            replacement.iter().all(|p| p.spec.as_ref().and_then(|s| s.priority) > sandbox_priority),
            "Corral's own pods run above sandboxes"
        );
        let still_there = pods.list(&warm).await?.items.into_iter().any(|p| p.metadata.uid.as_deref() == Some(&hog_uid) && running(&p));
        assert!(!still_there, "the warm sandbox was preempted to make room");
        eprintln!("harness rolled in {back_after:?}, by preempting the warm sandbox");
        Ok(())
    })
    .await
}

fn text_of(event: &StoredEvent) -> String {
    serde_json::to_string(&event.event).unwrap_or_default()
}

#[tokio::test]
async fn a_tool_call_on_a_full_node_tells_the_client_and_fails_with_the_schedulers_reason()
-> anyhow::Result<()> {
    let url = corral_e2e::installed_redis_url()?;
    let cluster = Cluster::connect().await?;
    TestNamespace::run(&cluster, "capacity-tool", |ns| async move {
        let example = std::fs::read_to_string(corral_e2e::cluster::repo_root().join("examples/agent-scripted.yaml"))?;
        ns.apply(&example)?;
        ns.apply(
            "apiVersion: corral.dev/v1alpha1\nkind: Environment\nmetadata: {name: box}\n---\napiVersion: corral.dev/v1alpha1\nkind: Session\nmetadata: {name: s1}\nspec:\n  agent: {name: scripted}\n  environmentRef: {name: box}\n",
        )?;
        ns.harness_available(TIMEOUT).await?;
        // An ordinary pod takes what the node has left; sandboxes may not preempt it.
        let (_, free) = settled_free_cpu(ns.cluster()).await?;
        let pods = ns.api::<Pod>();
        if free > 0 {
            pods.create(&PostParams::default(), &filler(free)?).await?;
            wait::object(&pods, "filler", TIMEOUT, "filler running", running).await?;
        }

        let store = Store::connect(&url, Config::default()).await?;
        let log = store.session(&ns.name, "s1");
        let message: EventBody = serde_json::from_value(serde_json::json!({
            "type": "user.message", "content": [{"type": "text", "text": "say hello and check the sandbox"}]
        }))?;
        log.append_user([message]).await?;
        store.enqueue(&ns.name, "s1").await?;
        let asked = Instant::now();

        let told = wait::until("the client told the sandbox cannot be scheduled", Duration::from_secs(60), || async {
            let page = log.range(None, 1000, Order::Asc).await?;
            Ok(page.events.into_iter().find(|e| e.event.body.type_name() == "session.error"))
        })
        .await?;
        let told_after = asked.elapsed();
        let told = serde_json::to_value(&told.event)?;
        assert_eq!(told["error"]["retry_status"]["type"], "retrying", "{told}");
        let message = told["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("cannot be scheduled") && message.contains("Insufficient cpu"), "{message}");

        let events = wait::until("the turn to end", TIMEOUT, || async {
            let page = log.range(None, 1000, Order::Asc).await?;
            let done = page.events.iter().any(|e| e.event.body.type_name() == "session.status_idle");
            Ok(done.then_some(page.events))
        })
        .await?;
        let result = events
            .iter()
            .find(|e| e.event.body.type_name() == "agent.tool_result")
            .ok_or_else(|| anyhow::anyhow!("no tool result"))?;
        let result = text_of(result);
        assert!(result.contains("\"is_error\":true"), "{result}");
        assert!(
            result.contains("could not be scheduled within") && result.contains("Insufficient cpu"),
            "the tool error names the scheduler's reason: {result}"
        );
        let errors = events.iter().filter(|e| e.event.body.type_name() == "session.error").count();
        assert_eq!(errors, 1, "told once per wait");
        eprintln!("told after {told_after:?}; the call failed after {:?}", asked.elapsed());
        pods.delete("filler", &DeleteParams::default()).await?;
        Ok(())
    })
    .await
}
