//! The `Session` custom resource: one conversation of an agent in an environment.
//!
//! The spec holds what the API fixes at creation (agent, environment, vaults) and what it lets a user change
//! (title, metadata, resources). The event log itself lives in Redis, never in etcd: the status only carries
//! coarse state written at phase changes and turn ends.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{LocalObjectRef, Metadata, SecretKeyRef};

/// A session: an agent at a pinned version working in an environment, with a durable event log.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "corral.dev",
    version = "v1alpha1",
    kind = "Session",
    namespaced,
    label("app.kubernetes.io/part-of", "corral"),
    status = "SessionStatus",
    shortname = "sess",
    shortname = "sesn",
    category = "corral",
    doc = "A session: an agent at a pinned version working in an environment, with a durable event log.",
    printcolumn = r#"{"name": "Phase", "type": "string", "jsonPath": ".status.phase"}"#,
    printcolumn = r#"{"name": "Agent", "type": "string", "jsonPath": ".spec.agent.name"}"#,
    printcolumn = r#"{"name": "Version", "type": "integer", "jsonPath": ".status.agentVersion"}"#,
    printcolumn = r#"{"name": "Environment", "type": "string", "jsonPath": ".spec.environmentRef.name"}"#,
    printcolumn = r#"{"name": "Sandbox", "type": "string", "jsonPath": ".status.sandbox.phase"}"#,
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status", "priority": 1}"#,
    printcolumn = r#"{"name": "Active-s", "type": "number", "jsonPath": ".status.activeSeconds", "priority": 1}"#,
    printcolumn = r#"{"name": "Cost-USD-cents", "type": "string", "jsonPath": ".status.listCost.amount", "priority": 1}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SessionSpec {
    /// The agent that runs the session. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("agent is immutable"))]
    pub agent: SessionAgentRef,
    /// The Environment whose sandbox runs the session's tools (the API's `environment_id`). Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("environmentRef is immutable"))]
    pub environment_ref: LocalObjectRef,
    /// A title for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Free-form key/value pairs (at most 16; keys up to 64 characters, values up to 512).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    #[x_kube(validation = Rule::new(crate::common::METADATA_RULE).message(crate::common::METADATA_RULE_MESSAGE))]
    pub metadata: Metadata,
    /// Vaults whose credentials the session may use (the API's `vault_ids`). Immutable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("vaultRefs is immutable"))]
    #[schemars(length(max = 16))]
    pub vault_refs: Vec<LocalObjectRef>,
    /// Files and repositories mounted into the sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.size() <= 64").message("at most 64 resources"))]
    #[schemars(length(max = 64))]
    pub resources: Vec<SessionResource>,
    /// A spending limit for this session (the API's `budget`); the agent's budget applies when omitted. When it is
    /// reached the session goes idle with `stop_reason: budget_reached` instead of calling the model again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::budget::Budget>,
}

/// Which agent a session runs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SessionAgentRef {
    /// The Agent's name (its API id), in the session's namespace.
    #[x_kube(validation = Rule::new("self.size() > 0").message("agent name must not be empty"))]
    pub name: String,
    /// The agent version to run. When omitted, the version current at the session's creation is pinned and
    /// recorded in `status.agentVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("agent version must be at least 1"))]
    pub version: Option<i64>,
}

/// Where a `file` resource appears when it names no `mountPath`: `/mnt/session/uploads/<fileId>`.
pub fn default_file_mount_path(file_id: &str) -> String {
    format!("{FILE_UPLOADS_DIR}/{file_id}")
}

/// The directory of `file` resources without a `mountPath`.
pub const FILE_UPLOADS_DIR: &str = "/mnt/session/uploads";

/// The directories a `file` resource's `mountPath` may be under: the sandbox's root filesystem is read-only, so
/// only its writable volumes can receive a file (`/mnt/session` is a volume of its own for them).
pub const FILE_MOUNT_ROOTS: [&str; 2] = corral_sandbox_protocol::pod::FILE_RESOURCE_ROOTS;

/// What the schema says of a `file` resource's `mountPath` out of bounds.
pub const FILE_MOUNT_PATH_RULE: &str = "a file's mountPath must be a file path under /mnt/session/ or /workspace/ (the sandbox's writable volumes), without empty, . or .. segments";

/// A file or repository mounted into the sandbox, discriminated by `type` as in the API. Repositories are cloned
/// when the sandbox comes up (docs/trust.md, Repositories); files are copied into the sandbox by the harness
/// (docs/files.md).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'github_repository' ? has(self.url) : !has(self.url) && !has(self.checkout) && !has(self.authorizationSecretRef)").message("url, checkout and authorizationSecretRef apply only to github_repository resources, which need url"))]
#[x_kube(validation = Rule::new("self.type == 'file' ? has(self.fileId) : !has(self.fileId)").message("fileId applies only to file resources, which need it"))]
#[x_kube(validation = Rule::new("self.type != 'file' || !has(self.mountPath) || ((self.mountPath.startsWith('/mnt/session/') || self.mountPath.startsWith('/workspace/')) && !self.mountPath.contains('/../') && !self.mountPath.endsWith('/..') && !self.mountPath.contains('/./') && !self.mountPath.endsWith('/.') && !self.mountPath.contains('//') && !self.mountPath.endsWith('/'))").message(crate::session::FILE_MOUNT_PATH_RULE))]
pub struct SessionResource {
    /// `github_repository` (any git repository reachable over HTTPS) or `file`.
    #[serde(rename = "type")]
    pub kind: SessionResourceType,
    /// For `github_repository`: the repository's clone URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')").message("repository url must be an http(s) URL"))]
    pub url: Option<String>,
    /// For `github_repository`: what to check out. The default branch when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<Checkout>,
    /// For `github_repository`: the Secret key (in the session's namespace) holding a token for private
    /// repositories. The egress proxy sends it to the repository's host only; it never enters the sandbox. The API
    /// fills it in with a Secret of its own when a client sends `authorization_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_secret_ref: Option<SecretKeyRef>,
    /// For `file`: the file's id (a file of the session's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub file_id: Option<String>,
    /// Where the resource appears in the sandbox. Defaults to `/workspace/<repo-name>` for repositories and
    /// `/mnt/session/uploads/<file_id>` for files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("mountPath must be absolute"))]
    #[schemars(length(max = 1024))]
    pub mount_path: Option<String>,
}

/// Session resource kinds.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionResourceType {
    /// A git repository cloned into the workspace.
    #[serde(rename = "github_repository")]
    GithubRepository,
    /// An uploaded file.
    #[serde(rename = "file")]
    File,
}

/// What to check out of a repository.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'branch' ? (has(self.name) && !has(self.sha)) : (has(self.sha) && !has(self.name))").message("a branch checkout needs name, a commit checkout needs sha"))]
pub struct Checkout {
    /// `branch` or `commit`.
    #[serde(rename = "type")]
    pub kind: CheckoutType,
    /// For `branch`: the branch name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For `commit`: the commit SHA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha: Option<String>,
}

/// Checkout kinds.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CheckoutType {
    /// A branch.
    Branch,
    /// A commit.
    Commit,
}

/// Observed state of a Session. The operator owns `agentVersion`, `sandbox` (but for `sandbox.requestedAt`),
/// `conditions` and `observedGeneration`; the harness owns `phase`, `usage`, `listCost`, `activeSeconds`, `lastEventTime` and
/// `sandbox.requestedAt`. Each writes its fields with server-side apply under its own field manager.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// The API's session status: `idle` (waiting for input; new sessions start idle), `running`,
    /// `rescheduling` (retrying after a transient error) or `terminated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SessionPhase>,
    /// The agent version this session runs, pinned at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<i64>,
    /// The session's sandbox pod, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxStatus>,
    /// Tokens used so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Estimated list-price cost so far, from the harness's price table (the API's `usage.list_cost`). Absent when
    /// the agent's model has no price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_cost: Option<crate::budget::Money>,
    /// Seconds the session has spent running, to the millisecond (never counting idle time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_seconds: Option<f64>,
    /// When the last event was appended to the session's log (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_time: Option<String>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the agent and environment resolve) and `SandboxReady`, with reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<crate::conditions::Condition>,
}

/// The API's session statuses.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SessionPhase {
    /// Waiting for input.
    #[default]
    Idle,
    /// The agent is working.
    Running,
    /// Retrying by itself after a transient error.
    Rescheduling,
    /// Ended.
    Terminated,
}

impl SessionPhase {
    /// The API's status string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Rescheduling => "rescheduling",
            Self::Terminated => "terminated",
        }
    }
}

/// The session's sandbox pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SandboxStatus {
    /// Where the sandbox is in its life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SandboxPhase>,
    /// When the harness last asked for a sandbox (RFC 3339). Written by the harness; a newer value than the pod's
    /// start asks the operator for a (new) pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
    /// Name of the sandbox pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// `host:port` of the sandbox daemon, reachable from the harness.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// When the sandbox entered its current phase (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Why the sandbox is not ready, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Sandbox life phases.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub enum SandboxPhase {
    /// Asked for; no pod yet.
    Requested,
    /// A pod exists and is starting.
    Provisioning,
    /// The daemon answers at `endpoint`.
    Ready,
    /// The pod cannot start (image pull error, unschedulable, ...); `message` says why.
    Failed,
    /// Deleted after the idle timeout; the next tool call provisions again.
    Reaped,
}

/// Token counts, cumulative over the session.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: i64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: i64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read_input_tokens: i64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_creation_input_tokens: i64,
}

impl Session {
    /// The agent version the session runs: the pinned spec version, else the one recorded at creation.
    pub fn effective_agent_version(&self) -> Option<i64> {
        self.spec
            .agent
            .version
            .or_else(|| self.status.as_ref().and_then(|s| s.agent_version))
    }
}
