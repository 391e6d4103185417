//! What every reconcile shares.

use std::time::Duration;

use kube::{
    Client,
    runtime::{
        events::{Event, EventType, Recorder, Reporter},
        reflector::ObjectRef,
    },
};
use redis::aio::ConnectionManager;

use crate::{
    Args,
    backoff::Backoff,
    builders::harness::HarnessConfig,
    metrics::Metrics,
    sandbox::{EgressConfig, SandboxConfig, storage::StorageDefaults},
};

/// Shared state of the controllers.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Reconcile metrics.
    pub metrics: Metrics,
    /// Publishes Kubernetes Events about reconciled objects.
    pub recorder: Recorder,
    /// The session log, when configured.
    pub session_log: Option<ConnectionManager>,
    /// Backoff of transient failures, per object.
    pub backoff: Backoff<String>,
    /// The only namespace watched, if any.
    pub watch_namespace: Option<String>,
    /// Objects of one kind reconciled at the same time.
    pub concurrency: u16,
    /// How sandbox pods are built.
    pub sandbox: SandboxConfig,
    /// The verdicts of the NetworkPolicy enforcement probe (empty when it does not run).
    pub isolation: std::sync::Arc<crate::sandbox::isolation::Verdicts>,
    /// How harness Deployments are built; `None` when the operator does not run harnesses.
    pub harness: Option<HarnessConfig>,
    /// Serialises ensuring and removing each namespace's harness.
    pub harness_locks: crate::controllers::harness::Locks,
}

/// The egress proxy settings from the flags: `None` without `--egress-proxy-address`; an error when its key file
/// cannot be read or is too short.
pub fn egress_config(args: &Args) -> anyhow::Result<Option<EgressConfig>> {
    let (Some(address), Some(file), Some(namespace)) = (
        &args.egress_proxy_address,
        &args.egress_key_file,
        &args.egress_namespace,
    ) else {
        return Ok(None);
    };
    let raw =
        std::fs::read(file).map_err(|e| anyhow::anyhow!("reading the egress key {}: {e}", file.display()))?;
    let key = String::from_utf8_lossy(&raw).trim().as_bytes().to_vec();
    anyhow::ensure!(
        key.len() >= 16,
        "the egress key in {} is shorter than 16 bytes",
        file.display()
    );
    Ok(Some(EgressConfig {
        address: address.clone(),
        namespace: namespace.clone(),
        key,
        ca_pem: None,
    }))
}

impl Context {
    /// Builds the context.
    pub fn new(
        client: Client,
        metrics: Metrics,
        session_log: Option<ConnectionManager>,
        args: &Args,
        egress: Option<EgressConfig>,
        storage: StorageDefaults,
    ) -> Self {
        let reporter = Reporter {
            controller: "corral-operator".into(),
            instance: Some(args.identity.clone()),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            session_log,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(300)),
            watch_namespace: args.watch_namespace.clone(),
            concurrency: args.concurrency,
            sandbox: SandboxConfig {
                daemon_image: args.sandbox_daemon_image.clone(),
                daemon_image_pull_policy: args.image_pull_policy.clone(),
                default_image: args.default_sandbox_image.clone(),
                egress,
                storage,
                policy: args.sandbox_policy.clone(),
                grants_namespace: args.egress_grants_namespace.clone(),
                priority_class: non_empty(&args.sandbox_priority_class),
            },
            isolation: std::sync::Arc::default(),
            harness: args.harness_enabled.then(|| HarnessConfig {
                namespace: args.system_namespace.clone(),
                image: args.harness_image.clone(),
                image_pull_policy: args.image_pull_policy.clone(),
                replicas: args.harness_replicas,
                resources: args.harness_resources.clone().unwrap_or_default(),
                redis_url: args.redis_url.clone(),
                tenant_users: args.redis_tenant_users,
                log_filter: args.harness_log.clone(),
                price_table: args.harness_price_table.clone(),
                internal_hosts: args
                    .harness_internal_hosts
                    .iter()
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .collect(),
                otlp_endpoint: args.log.otlp_endpoint.clone(),
                priority_class: non_empty(&args.harness_priority_class),
                sandbox_unschedulable_timeout: args.harness_sandbox_unschedulable_timeout.trim().to_owned(),
                gateway_url: args.harness_gateway_url.trim().to_owned(),
            }),
            harness_locks: Default::default(),
        }
    }

    /// Publishes an Event on `obj`. A failure to publish is logged, never fatal.
    pub async fn publish<K>(&self, obj: &K, type_: EventType, reason: &str, note: String, action: &str)
    where
        K: kube::Resource<DynamicType = ()>,
    {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(truncate(note, 1024)),
            action: action.to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason, "could not publish event");
        }
    }
}

/// The backoff key of an object.
pub fn backoff_key<K: kube::Resource<DynamicType = ()>>(obj: &K) -> String {
    ObjectRef::from_obj(obj).to_string()
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Connects to the session log's Redis with automatic reconnection.
pub async fn connect_session_log(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url)
        .map_err(|e| anyhow::anyhow!("invalid --redis-url {}: {e}", corral_session::acl::redact(url)))?;
    ConnectionManager::new(client)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the session log Redis: {e}"))
}

/// `None` for an empty (or blank) flag value.
fn non_empty(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}
