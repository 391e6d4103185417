//! The operator's configuration of sandboxes (from its flags): images, the egress proxy sandboxes go through, their
//! storage defaults and the platform's sandbox policy.

use corral_api::environment::DEFAULT_SANDBOX_IMAGE;

use super::{policy::SandboxPolicy, storage::StorageDefaults};

/// Operator configuration for sandboxes.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxConfig {
    /// Image holding the static daemon binary at [`super::contract::DAEMON_IMAGE_BINARY`].
    pub daemon_image: String,
    /// Pull policy of the daemon image.
    pub daemon_image_pull_policy: String,
    /// Sandbox image when the Environment names none.
    pub default_image: String,
    /// The egress proxy sandboxes reach the network through; `None` runs sandboxes without it (no host lists
    /// by name, no credential injection: `limited` sandboxes then reach nothing).
    pub egress: Option<EgressConfig>,
    /// Ephemeral-storage request and limit, and emptyDir sizes, where the Environment names none.
    pub storage: StorageDefaults,
    /// What Environments may ask for: RuntimeClasses, tolerations, node selectors.
    pub policy: SandboxPolicy,
    /// The egress proxy's grants namespace: when set, each pod bound to a session with vaults gets a credential
    /// grant there ([`super::grants`]); when not, the proxy reads vault credentials itself.
    pub grants_namespace: Option<String>,
    /// PriorityClass of every sandbox pod (`None`: the cluster's default priority).
    pub priority_class: Option<String>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            daemon_image: "corral/sandbox:dev".into(),
            daemon_image_pull_policy: "IfNotPresent".into(),
            default_image: DEFAULT_SANDBOX_IMAGE.into(),
            egress: None,
            storage: StorageDefaults::default(),
            policy: SandboxPolicy::default(),
            grants_namespace: None,
            priority_class: None,
        }
    }
}

/// Where the egress proxy is and the key of sandbox proxy identities.
#[derive(Clone, PartialEq)]
pub struct EgressConfig {
    /// `host:port` of the proxy's Service as sandboxes reach it.
    pub address: String,
    /// The namespace the proxy pods run in (for the sandboxes' NetworkPolicy).
    pub namespace: String,
    /// The key proxy identities are derived from (shared with the proxy).
    pub key: Vec<u8>,
    /// The egress CA's certificate (PEM), which sandboxes trust; `None` when HTTPS is not intercepted.
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for EgressConfig {
    // The key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressConfig")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}
