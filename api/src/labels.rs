//! Label and annotation keys Corral puts on the objects it creates, so they can be selected and traced back.

/// `app.kubernetes.io/name` value for every object Corral manages.
pub const APP_NAME: &str = "corral";
/// Standard label naming the managing application.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Standard label naming the part of Corral an object belongs to (`sandbox`, `harness`, `agent-revision`).
pub const COMPONENT: &str = "app.kubernetes.io/component";
/// Standard label naming the application.
pub const NAME: &str = "app.kubernetes.io/name";
/// The Agent an object belongs to (agent revisions).
pub const AGENT: &str = "corral.dev/agent";
/// The Session an object belongs to (sandbox pods).
pub const SESSION: &str = "corral.dev/session";
/// The Environment an object was built from (sandbox pods, warm pool pods).
pub const ENVIRONMENT: &str = "corral.dev/environment";
/// The agent version an agent revision holds.
pub const AGENT_VERSION: &str = "corral.dev/agent-version";
/// Annotation holding the hash of the spec an agent revision snapshots.
pub const SPEC_HASH: &str = "corral.dev/spec-hash";
/// Annotation set when a resource is archived through the API (RFC 3339 time).
pub const ARCHIVED_AT: &str = "corral.dev/archived-at";
/// Field manager name used by the operator for server-side apply.
pub const OPERATOR_FIELD_MANAGER: &str = "corral-operator";
/// Field manager name used by the harness for the Session status fields it owns.
pub const HARNESS_FIELD_MANAGER: &str = "corral-harness";
/// Field manager name used by the gateway.
pub const GATEWAY_FIELD_MANAGER: &str = "corral-gateway";
/// Finalizer that removes a deleted Session's event log from Redis.
pub const SESSION_LOG_FINALIZER: &str = "corral.dev/session-log";

/// The name of the harness Deployment, and of its ServiceAccount, that serves tenant namespace `tenant` from
/// Corral's system namespace: `corral-harness-<tenant>`, shortened with a hash of the full name to stay within 63
/// characters (a label value and a DNS label). The gateway recognises a harness by it (docs/files.md).
pub fn harness_name(tenant: &str) -> String {
    use sha2::Digest as _;
    const HARNESS: &str = "corral-harness";
    let full = format!("{HARNESS}-{tenant}");
    if full.len() <= 63 {
        return full;
    }
    let digest = sha2::Sha256::digest(tenant.as_bytes());
    let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let keep = 63 - HARNESS.len() - 2 - hash.len();
    let stem = tenant[..keep].trim_end_matches(['-', '.']);
    format!("{HARNESS}-{stem}-{hash}")
}
