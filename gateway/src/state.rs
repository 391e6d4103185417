//! What every handler shares.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{auth::KeyIndex, metrics::Metrics, ratelimit::Limiter, session_cache::SessionCache};

/// Settings of a running gateway.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How often an idle SSE stream gets a keep-alive ping.
    pub keep_alive: Duration,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// When set, confirming a tool call also needs the approver's own Kubernetes token, whose identity RBAC must
    /// allow the policy's verb on the Session.
    pub approval: Option<crate::approval::Policy>,
    /// The Files API's object storage; `None` answers its routes with a 503 naming the missing setting.
    pub files: Option<crate::files::FileStorage>,
    /// The namespace the operator runs harnesses in: the harness of tenant `t` is served file resources when it
    /// authenticates as `system:serviceaccount:<this>:corral-harness-<t>`; `None` answers that route with a 503.
    pub harness_namespace: Option<String>,
    /// The disk of a sandbox whose Environment names no ephemeral-storage limit (a Kubernetes quantity, the
    /// operator's default too): a session's file resources must fit in it.
    pub sandbox_disk_limit: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            keep_alive: Duration::from_secs(15),
            max_body_bytes: crate::body::DEFAULT_MAX_BODY_BYTES,
            approval: None,
            files: None,
            harness_namespace: None,
            sandbox_disk_limit: corral_api::disk::DEFAULT_SANDBOX_DISK_LIMIT.into(),
        }
    }
}

/// The state shared by every request. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The Kubernetes API.
    pub kube: kube::Client,
    /// The session logs.
    pub log: corral_session::Store,
    /// Valid API keys and their tenants.
    pub keys: KeyIndex,
    /// Which Sessions exist, kept by a watch: the hot path checks a session without the API server.
    pub sessions: SessionCache,
    /// Per-key rate limits.
    pub limiter: Limiter,
    /// Metrics.
    pub metrics: Metrics,
    /// Cancelled when the gateway shuts down: SSE streams end cleanly.
    pub shutdown: CancellationToken,
    /// Settings.
    pub settings: Arc<Settings>,
}
