//! Names and labels of the objects around a sandbox pod, and who a pod is for.

use std::collections::BTreeMap;

use corral_api::labels;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

pub use super::contract::{POD_COMPONENT as COMPONENT, sandbox_name};

/// Label marking a warm pool pod that no session has claimed.
pub const WARM_LABEL: &str = "corral.dev/warm";

/// Who a sandbox pod is for: a session, or the warm pool of an environment.
#[derive(Debug, Clone, PartialEq)]
pub enum SandboxOwner {
    /// A session's own pod.
    Session {
        /// The session's name.
        name: String,
        /// Owner reference to the Session.
        owner: OwnerReference,
    },
    /// An unassigned pod of an Environment's warm pool.
    WarmPool {
        /// A unique suffix for the pod.
        suffix: String,
        /// Owner reference to the Environment.
        owner: OwnerReference,
    },
}

/// The name of a warm pool pod (and of its token's Redis key).
pub fn warm_pod_name(environment: &str, suffix: &str) -> String {
    format!("warm-{environment}-{suffix}")
}

/// The name of a session's persistent workspace claim.
pub fn workspace_claim_name(session: &str) -> String {
    format!("workspace-{session}")
}

/// The label selector of every sandbox pod.
pub fn pods_selector() -> String {
    format!("{}={COMPONENT}", labels::COMPONENT)
}

/// The label selector of the session's own sandbox pod.
pub fn session_pod_selector(session: &str) -> String {
    format!("{}={session},{}={COMPONENT}", labels::SESSION, labels::COMPONENT)
}

/// The label selector of the unclaimed warm pods of an Environment.
pub fn warm_pods_selector(environment: &str) -> String {
    format!("{}={environment},{WARM_LABEL}=true", labels::ENVIRONMENT)
}

/// Labels of every sandbox pod; `component` and `environment` select all of an Environment's sandboxes for its
/// NetworkPolicy.
pub fn sandbox_labels(environment: &str, owner: &SandboxOwner) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::COMPONENT.to_owned(), COMPONENT.to_owned()),
        (
            labels::MANAGED_BY.to_owned(),
            labels::OPERATOR_FIELD_MANAGER.to_owned(),
        ),
        (labels::ENVIRONMENT.to_owned(), environment.to_owned()),
    ]);
    match owner {
        SandboxOwner::Session { name, .. } => l.insert(labels::SESSION.to_owned(), name.clone()),
        SandboxOwner::WarmPool { .. } => l.insert(WARM_LABEL.to_owned(), "true".to_owned()),
    };
    l
}

/// Whether a pod waits unclaimed in a warm pool.
pub fn is_warm(meta: &ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .is_some_and(|l| l.get(WARM_LABEL).is_some_and(|v| v == "true"))
}

/// The metadata of a sandbox object owned by `owner`.
pub fn meta(
    name: String,
    namespace: &str,
    labels: BTreeMap<String, String>,
    owner: &OwnerReference,
) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_owned()),
        labels: Some(labels),
        owner_references: Some(vec![owner.clone()]),
        ..ObjectMeta::default()
    }
}
