//! The NetworkPolicy enforcement probe: a sandbox's NetworkPolicy admits only the harness of its namespace on the
//! daemon port, so the operator, which is not the harness, must not be able to open a connection to that port.
//! Every probe period the leading operator tries, with a short timeout, to connect to the daemon port of each ready
//! sandbox pod; a connection that opens proves the cluster does not enforce the policy for that pod, and the Session
//! reports it in its `NetworkIsolated` condition. A connection that fails is what an enforcing CNI gives (it is also
//! what an unreachable pod gives: the probe can prove the walls missing, never prove them sound).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::{ResourceExt, api::ListParams};

use super::{
    census,
    contract::DAEMON_PORT,
    pod_state::{PodState, PodView},
};
use crate::{context::Context, controllers::watched_api};

/// The condition type a Session reports the probe's verdict in.
pub const CONDITION: &str = "NetworkIsolated";
/// How long a connection may take before the probe counts it as refused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Pods probed at the same time.
const CONCURRENCY: usize = 16;

/// What the probe found for one pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// The operator could not connect to the daemon port.
    Refused,
    /// The operator connected to the daemon port: the NetworkPolicy is not enforced.
    Reached,
}

/// The verdicts of the last probe, by `namespace/pod`.
#[derive(Debug, Default)]
pub struct Verdicts(Mutex<HashMap<String, Isolation>>);

impl Verdicts {
    /// The verdict on pod `namespace/pod`, if it was probed.
    pub fn get(&self, namespace: &str, pod: &str) -> Option<Isolation> {
        let map = self.0.lock().ok()?;
        map.get(&key(namespace, pod)).copied()
    }

    fn replace(&self, verdicts: HashMap<String, Isolation>) {
        if let Ok(mut map) = self.0.lock() {
            *map = verdicts;
        }
    }
}

fn key(namespace: &str, pod: &str) -> String {
    format!("{namespace}/{pod}")
}

/// The `NetworkIsolated` condition for a verdict: ok, reason, message.
pub fn condition(verdict: Isolation) -> (bool, &'static str, String) {
    match verdict {
        Isolation::Refused => (
            true,
            "ProbeRefused",
            "the operator could not connect to the sandbox's daemon port, as its NetworkPolicy requires"
                .into(),
        ),
        Isolation::Reached => (
            false,
            "NetworkPolicyNotEnforced",
            "the operator connected to the sandbox's daemon port although its NetworkPolicy admits only the \
             harness: the cluster does not enforce NetworkPolicy, so the sandbox is not walled off (see \
             docs/sandbox-policy.md)"
                .into(),
        ),
    }
}

/// The `NetworkIsolated` condition of a session whose sandbox this decision left ready, once its pod was probed.
pub fn for_decision(
    verdicts: &Verdicts,
    namespace: &str,
    decision: &super::Decision,
) -> Option<(bool, &'static str, String)> {
    let status = decision.status.as_ref()?;
    if status.phase != Some(corral_api::session::SandboxPhase::Ready) {
        return None;
    }
    verdicts.get(namespace, status.pod.as_deref()?).map(condition)
}

/// The address to probe of a ready sandbox pod.
pub fn target(pod: &Pod) -> Option<SocketAddr> {
    match PodView::from_pod(pod).state {
        PodState::Ready { ip } if pod.metadata.deletion_timestamp.is_none() => Some(SocketAddr::new(
            ip.parse().ok()?,
            u16::try_from(DAEMON_PORT).ok()?,
        )),
        _ => None,
    }
}

/// Tries to connect to `addr`.
pub async fn probe(addr: SocketAddr) -> Isolation {
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Isolation::Reached,
        _ => Isolation::Refused,
    }
}

/// Probes every ready sandbox pod every `every` until `stop` says so.
pub async fn run(ctx: Arc<Context>, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match probe_all(&ctx).await {
            Ok(found) => {
                let reached = found.values().filter(|v| **v == Isolation::Reached).count();
                if reached > 0 {
                    tracing::warn!(
                        pods = reached,
                        "sandbox pods are reachable around their NetworkPolicy: the cluster does not enforce it"
                    );
                }
                ctx.isolation.replace(found);
            }
            Err(err) => tracing::debug!(error = %err, "cannot list sandbox pods to probe"),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn probe_all(ctx: &Context) -> Result<HashMap<String, Isolation>, kube::Error> {
    let pods = watched_api::<Pod>(&ctx.client, ctx.watch_namespace.as_deref())
        .list(&ListParams::default().labels(&census::selector()))
        .await?
        .items;
    let targets: Vec<(String, SocketAddr)> = pods
        .iter()
        .filter_map(|p| Some((key(&p.namespace()?, &p.name_any()), target(p)?)))
        .collect();
    Ok(futures::stream::iter(targets)
        .map(|(key, addr)| async move { (key, probe(addr).await) })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_that_answers_is_reached_and_one_that_does_not_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        assert_eq!(probe(open).await, Isolation::Reached);
        drop(listener);
        assert_eq!(probe(open).await, Isolation::Refused);
        assert!(!condition(Isolation::Reached).0);
        assert!(condition(Isolation::Refused).0);
    }

    #[test]
    fn only_ready_pods_are_probed_on_the_daemon_port() {
        let pod = |phase: &str, ready: &str| -> Pod {
            serde_json::from_value(
                serde_json::json!({"metadata": {"name": "sandbox-s1", "namespace": "team"},
                "status": {"phase": phase, "podIP": "10.0.0.7",
                    "conditions": [{"type": "Ready", "status": ready}]}}),
            )
            .unwrap()
        };
        assert_eq!(
            target(&pod("Running", "True")),
            Some("10.0.0.7:7070".parse().unwrap())
        );
        assert_eq!(target(&pod("Running", "False")), None);
        assert_eq!(target(&pod("Failed", "False")), None);
    }

    #[test]
    fn verdicts_are_kept_per_pod() {
        let v = Verdicts::default();
        v.replace(HashMap::from([(key("team", "sandbox-s1"), Isolation::Reached)]));
        assert_eq!(v.get("team", "sandbox-s1"), Some(Isolation::Reached));
        assert_eq!(v.get("other", "sandbox-s1"), None);
    }
}
