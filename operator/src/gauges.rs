//! Gauges sampled from the cluster every 15 seconds by the leading operator: Sessions by phase and sandbox pods by
//! state. Counting is pure (unit tested); sampling lists the objects of the watched namespace(s).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use corral_api::Session;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;

use crate::context::Context;
use crate::controllers::watched_api;
use crate::sandbox::census;

/// How often the gauges are sampled.
pub const EVERY: Duration = Duration::from_secs(15);

/// Every phase a Session may report (a Session without a phase yet counts as `idle`).
pub const PHASES: [&str; 4] = ["idle", "running", "rescheduling", "terminated"];

/// Every state a sandbox pod is counted in.
pub const POD_STATES: [&str; 5] = census::POD_STATES;

/// Sessions by phase, every phase present (zero when none).
pub fn sessions_by_phase(sessions: &[Session]) -> BTreeMap<&'static str, i64> {
    let mut out: BTreeMap<&'static str, i64> = PHASES.iter().map(|p| (*p, 0)).collect();
    for s in sessions {
        let phase = s.status.as_ref().and_then(|s| s.phase).unwrap_or_default();
        *out.entry(phase.as_str()).or_default() += 1;
    }
    out
}

/// Sandbox pods by state: a warm pod waiting in its pool (`warm_*`), a session's pod (`starting`, `ready`), or a pod
/// that cannot run (`failed`: unschedulable, container error, ended).
pub fn pods_by_state(pods: &[Pod]) -> BTreeMap<&'static str, i64> {
    let mut out: BTreeMap<&'static str, i64> = POD_STATES.iter().map(|p| (*p, 0)).collect();
    for pod in pods {
        *out.entry(census::counted_state(pod)).or_default() += 1;
    }
    out
}

/// Samples the gauges every [`EVERY`] until `stop` says so.
pub async fn run(ctx: Arc<Context>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(err) = sample(&ctx).await {
            tracing::debug!(error = %err, "cannot sample the session and pod gauges");
        }
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn sample(ctx: &Context) -> Result<(), kube::Error> {
    let ns = ctx.watch_namespace.as_deref();
    let sessions = watched_api::<Session>(&ctx.client, ns)
        .list(&ListParams::default())
        .await?
        .items;
    for (phase, n) in sessions_by_phase(&sessions) {
        ctx.metrics.set_sessions(phase, n);
    }
    let pods = watched_api::<Pod>(&ctx.client, ns)
        .list(&ListParams::default().labels(&census::selector()))
        .await?
        .items;
    for (state, n) in pods_by_state(&pods) {
        ctx.metrics.set_sandbox_pods(state, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::naming::WARM_LABEL;
    use serde_json::json;

    #[test]
    fn sessions_are_counted_by_phase_with_every_phase_present() {
        let session = |phase: Option<&str>| -> Session {
            let mut v = json!({"apiVersion": "corral.dev/v1alpha1", "kind": "Session", "metadata": {"name": "s"},
                "spec": {"agent": {"name": "a"}, "environmentRef": {"name": "e"}}});
            if let Some(p) = phase {
                v["status"] = json!({"phase": p});
            }
            serde_json::from_value(v).unwrap()
        };
        let counts = sessions_by_phase(&[session(None), session(Some("running")), session(Some("idle"))]);
        assert_eq!(counts["idle"], 2);
        assert_eq!(counts["running"], 1);
        assert_eq!(counts["terminated"], 0);
    }

    #[test]
    fn pods_are_counted_by_state() {
        let pod = |warm: bool, phase: &str, ready: bool| -> Pod {
            let mut labels = json!({});
            if warm {
                labels[WARM_LABEL] = json!("true");
            }
            serde_json::from_value(json!({"metadata": {"name": "p", "labels": labels},
                "status": {"phase": phase, "podIP": "10.0.0.1",
                    "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}}))
            .unwrap()
        };
        let counts = pods_by_state(&[
            pod(true, "Running", true),
            pod(true, "Pending", false),
            pod(false, "Running", true),
            pod(false, "Failed", false),
        ]);
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [
                ("failed", 1),
                ("ready", 1),
                ("starting", 0),
                ("warm_ready", 1),
                ("warm_starting", 1)
            ]
        );
    }
}
