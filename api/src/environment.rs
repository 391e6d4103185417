//! The `Environment` custom resource: where a session's tools run.
//!
//! `config` mirrors the Managed Agents API's environment config (networking and packages); `sandbox` holds what
//! Kubernetes needs to run the sandbox pods (image, resources, scheduling, workspace, warm pool, idle timeout).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Metadata;

/// The sandbox image used when an Environment names none.
pub const DEFAULT_SANDBOX_IMAGE: &str = "corral/sandbox-base:dev";
/// The idle timeout used when an Environment names none.
pub const DEFAULT_IDLE_TIMEOUT: &str = "15m";

/// A sandbox environment: the container image, packages and network access a session's tools get.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "corral.dev",
    version = "v1alpha1",
    kind = "Environment",
    namespaced,
    label("app.kubernetes.io/part-of", "corral"),
    status = "EnvironmentStatus",
    shortname = "env",
    category = "corral",
    doc = "A sandbox environment: the container image, packages and network access a session's tools get.",
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Networking", "type": "string", "jsonPath": ".spec.config.networking.type"}"#,
    printcolumn = r#"{"name": "Warm", "type": "string", "jsonPath": ".status.warmPool.ready"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentSpec {
    /// Human-readable name (the API's `name`). Defaults to `metadata.name` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() > 0 && self.size() <= 256").message("name must be 1 to 256 characters"))]
    pub name: Option<String>,
    /// What the environment is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Network access and packages, as in the API's `config` (type `cloud`).
    #[serde(default)]
    pub config: EnvironmentConfig,
    /// How sandbox pods are run on Kubernetes.
    #[serde(default)]
    pub sandbox: SandboxSpec,
    /// The API's `scope`, stored and echoed back: `organization` or `account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// Free-form key/value pairs (at most 16; keys up to 64 characters, values up to 512).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    #[x_kube(validation = Rule::new(crate::common::METADATA_RULE).message(crate::common::METADATA_RULE_MESSAGE))]
    pub metadata: Metadata,
}

/// The API's environment config.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "!has(self.packages) || !has(self.networking) || self.networking.type != 'limited' || (has(self.networking.allowPackageManagers) && self.networking.allowPackageManagers) || ((!has(self.packages.apt) || self.packages.apt.size() == 0) && (!has(self.packages.cargo) || self.packages.cargo.size() == 0) && (!has(self.packages.gem) || self.packages.gem.size() == 0) && (!has(self.packages.go) || self.packages.go.size() == 0) && (!has(self.packages.npm) || self.packages.npm.size() == 0) && (!has(self.packages.pip) || self.packages.pip.size() == 0))"
).message("packages under limited networking require networking.allowPackageManagers: true"))]
pub struct EnvironmentConfig {
    /// What the sandbox may reach on the network. `unrestricted` when omitted (cluster-internal services stay
    /// closed either way).
    #[serde(default)]
    pub networking: Networking,
    /// Packages installed into the sandbox before its first tool call, by package manager.
    #[serde(default)]
    pub packages: Packages,
}

/// Network access of the sandbox.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'limited' || (!has(self.allowedHosts) && !has(self.allowMcpServers) && !has(self.allowPackageManagers))").message("allowedHosts, allowMcpServers and allowPackageManagers apply only to limited networking"))]
pub struct Networking {
    /// `unrestricted` (any public host) or `limited` (only `allowedHosts`, plus package managers and MCP servers
    /// when allowed).
    #[serde(rename = "type", default)]
    pub kind: NetworkingType,
    /// For `limited`: host names the sandbox may reach (a leading `*.` matches subdomains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(h, h.matches('^(\\\\*\\\\.)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?$'))").message("allowedHosts entries must be host names, optionally with a leading *. and a :port"))]
    #[schemars(length(max = 256), inner(length(max = 260)))]
    pub allowed_hosts: Option<Vec<String>>,
    /// For `limited`: also allow the agent's MCP servers. Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_mcp_servers: Option<bool>,
    /// For `limited`: also allow the public package registries. Defaults to false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_package_managers: Option<bool>,
}

/// Networking modes.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum NetworkingType {
    /// Any public host; cluster-internal addresses stay closed.
    #[default]
    Unrestricted,
    /// Only the listed hosts.
    Limited,
}

/// Packages to install, by package manager. Entries may pin versions in the manager's syntax (`pkg==1.0`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Packages {
    /// Debian packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^[^-\\\\s][^\\\\s]*$'))").message("package entries must be non-empty, without whitespace, and must not start with -"))]
    #[schemars(length(max = 128), inner(length(max = 214)))]
    pub apt: Option<Vec<String>>,
    /// Rust crates (installed with `cargo install`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^[^-\\\\s][^\\\\s]*$'))").message("package entries must be non-empty, without whitespace, and must not start with -"))]
    #[schemars(length(max = 128), inner(length(max = 214)))]
    pub cargo: Option<Vec<String>>,
    /// Ruby gems.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^[^-\\\\s][^\\\\s]*$'))").message("package entries must be non-empty, without whitespace, and must not start with -"))]
    #[schemars(length(max = 128), inner(length(max = 214)))]
    pub gem: Option<Vec<String>>,
    /// Go modules (installed with `go install`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^[^-\\\\s][^\\\\s]*$'))").message("package entries must be non-empty, without whitespace, and must not start with -"))]
    #[schemars(length(max = 128), inner(length(max = 214)))]
    pub go: Option<Vec<String>>,
    /// npm packages (installed globally).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^[^-\\\\s][^\\\\s]*$'))").message("package entries must be non-empty, without whitespace, and must not start with -"))]
    #[schemars(length(max = 128), inner(length(max = 214)))]
    pub npm: Option<Vec<String>>,
    /// Python packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(p, p.matches('^[^-\\\\s][^\\\\s]*$'))").message("package entries must be non-empty, without whitespace, and must not start with -"))]
    #[schemars(length(max = 128), inner(length(max = 214)))]
    pub pip: Option<Vec<String>>,
}

/// Environment scopes, as in the API.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Visible to the whole organization.
    Organization,
    /// Visible to one account.
    Account,
}

/// How the sandbox pods of this environment run on Kubernetes.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SandboxSpec {
    /// Container image for the sandbox. It needs nothing from Corral (the sandbox daemon is injected), only what
    /// the tools use, such as a shell for `bash`. Defaults to the operator's default sandbox image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() > 0").message("image must not be empty"))]
    pub image: Option<String>,
    /// Image pull policy: `Always`, `IfNotPresent` or `Never`. Kubernetes' default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self in ['Always', 'IfNotPresent', 'Never']").message("imagePullPolicy must be Always, IfNotPresent or Never"))]
    pub image_pull_policy: Option<String>,
    /// CPU and memory requests and limits of the sandbox container. The operator's defaults when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// RuntimeClass for stronger isolation, for example `gvisor` or `kata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// Node labels a sandbox pod's node must have.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints sandbox pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// The session's working directory: thrown away with the pod, or kept on a persistent volume.
    #[serde(default)]
    pub workspace: Workspace,
    /// Environment variables of the sandbox and of its package installation, for example package mirrors
    /// (`PIP_INDEX_URL`, `npm_config_registry`, `GOPROXY`) or proxy settings. Plain values only: credentials belong
    /// in vaults, whose values never enter the sandbox. Names starting with `CORRAL_` are reserved.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[x_kube(validation = Rule::new("self.all(e, !e.name.startsWith('CORRAL_'))").message("env names starting with CORRAL_ are reserved"))]
    #[schemars(length(max = 64))]
    pub env: Vec<SandboxEnvVar>,
    /// Number of ready, unassigned sandbox pods to keep, so that a first tool call does not wait for a pod start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 100").message("warmPool must be between 0 and 100"))]
    pub warm_pool: Option<i32>,
    /// How long a sandbox may go without a tool call before its pod is deleted (for example `15m`, `1h`).
    /// Defaults to 15m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^([0-9]+(s|m|h))+$')").message("idleTimeout must be a duration such as 90s, 15m or 1h30m"))]
    pub idle_timeout: Option<String>,
    /// When a session's sandbox is asked for: `Lazy` (the default) on the first tool call, so the model starts at
    /// once and a session that never calls a tool never gets a pod; `Eager` when a turn starts, and the turn's
    /// first model request waits until the sandbox is ready, as in designs where the agent runs inside its
    /// container. `Eager` costs time to first token (see docs/benchmarks.md); use it when the first tool call
    /// must not wait for a pod, or to measure that cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<Provisioning>,
}

/// When a session's sandbox is asked for.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Provisioning {
    /// On the session's first tool call.
    #[default]
    Lazy,
    /// When a turn starts, before its first model request.
    Eager,
}

/// A plain environment variable of the sandbox.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SandboxEnvVar {
    /// The variable's name: letters, digits and underscores, not starting with a digit.
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z_][A-Za-z0-9_]*$')").message("env names are letters, digits and underscores, not starting with a digit"))]
    #[schemars(length(max = 256))]
    pub name: String,
    /// The value.
    #[serde(default)]
    #[schemars(length(max = 4096))]
    pub value: String,
}

/// The session's working directory.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'persistent' || (!has(self.size) && !has(self.storageClassName))").message("size and storageClassName apply only to a persistent workspace"))]
pub struct Workspace {
    /// `ephemeral` (an emptyDir, gone with the pod) or `persistent` (a PersistentVolumeClaim per session that
    /// outlives idle reaping).
    #[serde(rename = "type", default)]
    pub kind: WorkspaceType,
    /// For `persistent`: the volume size, for example `5Gi`. Defaults to 1Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(Ki|Mi|Gi|Ti)$')").message("size must be a quantity such as 512Mi or 5Gi"))]
    pub size: Option<String>,
    /// For `persistent`: the StorageClass. The cluster default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Workspace kinds.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceType {
    /// Gone with the pod.
    #[default]
    Ephemeral,
    /// Kept on a PersistentVolumeClaim for the life of the session.
    Persistent,
}

/// Observed state of an Environment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Counts of the warm pool's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_pool: Option<WarmPoolStatus>,
    /// `Ready` and the reason when it is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<crate::conditions::Condition>,
}

/// Counts of an Environment's warm pool.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WarmPoolStatus {
    /// Pods the pool should hold.
    pub desired: i32,
    /// Ready, unassigned pods.
    pub ready: i32,
    /// Pods starting up.
    pub pending: i32,
}

impl Environment {
    /// The human-readable name: `spec.name`, or `metadata.name` when that is unset.
    pub fn display_name(&self) -> &str {
        self.spec
            .name
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }
}
