//! The sandbox pods as the gauges count them (a read-only view for [`crate::gauges`]), and which exist (for the
//! sweeps of what outlives a pod: credential grants and daemon tokens).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;
use kube::{ResourceExt, api::ListParams};

use crate::{context::Context, controllers::watched_api, error::Result};

use super::{
    naming::is_warm,
    pod_state::{PodState, PodView},
};

/// Every state a sandbox pod is counted in.
pub const POD_STATES: [&str; 5] = ["warm_starting", "warm_ready", "starting", "ready", "failed"];

/// The state a sandbox pod is counted in: a warm pod waiting in its pool (`warm_*`), a session's pod (`starting`,
/// `ready`), or a pod that cannot run (`failed`: unschedulable, container error, ended).
pub fn counted_state(pod: &Pod) -> &'static str {
    match (PodView::from_pod(pod).state, is_warm(&pod.metadata)) {
        (PodState::Ready { .. }, true) => "warm_ready",
        (PodState::Starting, true) => "warm_starting",
        (PodState::Ready { .. }, false) => "ready",
        (PodState::Starting, false) => "starting",
        _ => "failed",
    }
}

/// The label selector of every sandbox pod.
pub fn selector() -> String {
    super::naming::pods_selector()
}

/// The (namespace, name) of every sandbox pod that exists, in the watched namespace or in all.
pub async fn existing(ctx: &Context) -> Result<BTreeSet<(String, String)>> {
    let pods = watched_api::<Pod>(&ctx.client, ctx.watch_namespace.as_deref())
        .list_metadata(&ListParams::default().labels(&selector()))
        .await?
        .items;
    Ok(pods
        .iter()
        .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
        .collect())
}
