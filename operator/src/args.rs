//! Command-line flags, each also settable by an environment variable.

use std::net::SocketAddr;

use clap::Parser;
use corral_runtime::LogArgs;

use crate::sandbox::{policy::SandboxPolicy, storage::StorageDefaults};

/// The Corral operator.
#[derive(Parser, Debug, Clone)]
#[command(name = "corral-operator", version, about)]
pub struct Args {
    /// Address of the `/metrics`, `/healthz` and `/readyz` server.
    #[arg(long, env = "CORRAL_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,

    /// Redis URL of the session log (for example `redis://corral-redis:6379`). A deleted Session's log is
    /// removed from it. Without it, logs of deleted sessions stay in Redis.
    #[arg(long, env = "CORRAL_REDIS_URL")]
    pub redis_url: Option<String>,

    /// Give each tenant namespace's harness its own Redis ACL user, limited to the namespace's keys (the operator's
    /// Redis user must be allowed `ACL SETUSER`, `ACL DELUSER` and `ACL SAVE`). Off: every harness connects with
    /// the operator's own URL.
    #[arg(long, env = "CORRAL_REDIS_TENANT_USERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub redis_tenant_users: bool,

    /// The namespace Corral's own components run in (normally the operator's): the harness of every tenant
    /// namespace runs there, beside Redis, out of reach of the tenants' pods.
    #[arg(long, env = "CORRAL_SYSTEM_NAMESPACE", default_value = "corral-system")]
    pub system_namespace: String,

    /// Elect a leader through a `coordination.k8s.io` Lease, so that only one of several replicas reconciles.
    #[arg(long, env = "CORRAL_LEADER_ELECTION", default_value_t = false)]
    pub leader_election: bool,

    /// Namespace of the leader election Lease (normally the operator's own namespace).
    #[arg(long, env = "CORRAL_LEASE_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// Name of the leader election Lease.
    #[arg(long, env = "CORRAL_LEASE_NAME", default_value = "corral-operator")]
    pub lease_name: String,

    /// This replica's identity in the leader election (normally the pod name).
    #[arg(long, env = "POD_NAME", default_value = "corral-operator")]
    pub identity: String,

    /// Objects of one kind reconciled at the same time.
    #[arg(long, env = "CORRAL_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,

    /// Watch only this namespace instead of the whole cluster.
    #[arg(long, env = "CORRAL_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Image holding the static sandbox daemon (copied into every sandbox pod by an init container).
    #[arg(
        long,
        env = "CORRAL_SANDBOX_DAEMON_IMAGE",
        default_value = "corral/sandbox:dev"
    )]
    pub sandbox_daemon_image: String,

    /// Sandbox image for Environments that name none.
    #[arg(long, env = "CORRAL_DEFAULT_SANDBOX_IMAGE", default_value = corral_api::environment::DEFAULT_SANDBOX_IMAGE)]
    pub default_sandbox_image: String,

    /// Ephemeral-storage request of a sandbox container whose Environment's `sandbox.resources` names none.
    #[arg(
        long,
        env = "CORRAL_SANDBOX_EPHEMERAL_STORAGE_REQUEST",
        default_value = "128Mi"
    )]
    pub sandbox_ephemeral_storage_request: String,

    /// Ephemeral-storage limit of a sandbox container whose Environment's `sandbox.resources` names none; also the
    /// `sizeLimit` of the ephemeral workspace and of the installed packages.
    #[arg(long, env = "CORRAL_SANDBOX_EPHEMERAL_STORAGE_LIMIT", default_value = corral_api::disk::DEFAULT_SANDBOX_DISK_LIMIT)]
    pub sandbox_ephemeral_storage_limit: String,

    /// `sizeLimit` of a sandbox's `/tmp` (and of its package installation's scratch space).
    #[arg(long, env = "CORRAL_SANDBOX_TMP_SIZE_LIMIT", default_value = "1Gi")]
    pub sandbox_tmp_size_limit: String,

    /// What Environments may ask for, as JSON: `{"runtimeClasses": ["gvisor"], "defaultRuntimeClass": "gvisor",
    /// "requireRuntimeClass": true, "tolerations": [...], "nodeSelectors": {"pool": ["sandbox"]}}`. By default
    /// none: an Environment naming a RuntimeClass, a toleration or a node selector is refused.
    #[arg(long, env = "CORRAL_SANDBOX_POLICY", default_value = "", value_parser = SandboxPolicy::parse)]
    pub sandbox_policy: SandboxPolicy,

    /// Seconds between two runs of the NetworkPolicy enforcement probe, which tries to reach every ready sandbox's
    /// daemon port from the operator (its NetworkPolicy must refuse it) and reports the verdict in the Session's
    /// `NetworkIsolated` condition; 0 turns it off. It runs only inside the cluster.
    #[arg(long, env = "CORRAL_NETWORK_POLICY_PROBE_SECONDS", default_value_t = 0)]
    pub network_policy_probe_seconds: u64,

    /// Seconds between two sweeps for sessions whose client event went unanswered with no wake-up pending and no
    /// harness at work (a lost wake-up); their wake-up is enqueued again. An event must be that old before it counts.
    /// 0 turns the sweeper off. Needs --redis-url.
    #[arg(long, env = "CORRAL_SWEEP_INTERVAL_SECONDS", default_value_t = 30)]
    pub sweep_interval_seconds: u64,

    /// `host:port` of the egress proxy's Service, as sandbox pods reach it. Without it sandboxes get no proxy:
    /// `limited` ones reach nothing and vault credentials are not injected.
    #[arg(long, env = "CORRAL_EGRESS_PROXY_ADDRESS", requires_all = ["egress_key_file", "egress_namespace"])]
    pub egress_proxy_address: Option<String>,

    /// The file holding the key of sandbox proxy identities (the same Secret the egress proxy mounts).
    #[arg(long, env = "CORRAL_EGRESS_KEY_FILE")]
    pub egress_key_file: Option<std::path::PathBuf>,

    /// The namespace the egress proxy pods run in.
    #[arg(long, env = "CORRAL_EGRESS_NAMESPACE")]
    pub egress_namespace: Option<String>,

    /// The Secret (in the egress namespace) holding the egress CA, created with a new CA when missing. Sandboxes
    /// trust its certificate, so the proxy can inject credentials into HTTPS requests.
    #[arg(long, env = "CORRAL_EGRESS_CA_SECRET")]
    pub egress_ca_secret: Option<String>,

    /// The egress proxy's grants namespace. When set, the operator writes there a credential grant for each sandbox
    /// pod bound to a session with vaults (and deletes it when the pod goes), so the proxy reads no other Secret;
    /// set it when the proxy runs with `--credentials grants` and the same namespace.
    #[arg(long, env = "CORRAL_EGRESS_GRANTS_NAMESPACE")]
    pub egress_grants_namespace: Option<String>,

    /// Pull policy of Corral's own images (the daemon image).
    #[arg(long, env = "CORRAL_IMAGE_PULL_POLICY", default_value = "IfNotPresent")]
    pub image_pull_policy: String,

    /// Run a harness Deployment for every namespace that has Agents (in `--system-namespace`).
    #[arg(long, env = "CORRAL_HARNESS_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub harness_enabled: bool,

    /// Image of the harness.
    #[arg(long, env = "CORRAL_HARNESS_IMAGE", default_value = "corral/harness:dev")]
    pub harness_image: String,

    /// Harness replicas per namespace.
    #[arg(long, env = "CORRAL_HARNESS_REPLICAS", default_value_t = 2)]
    pub harness_replicas: i32,

    /// Harness container resources, as JSON (`{"requests":{"cpu":"100m"},"limits":{"memory":"512Mi"}}`).
    #[arg(long, env = "CORRAL_HARNESS_RESOURCES", value_parser = parse_resources)]
    pub harness_resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,

    /// Log filter of the harness pods.
    #[arg(long, env = "CORRAL_HARNESS_LOG", default_value = "info")]
    pub harness_log: String,

    /// List prices for the harness's cost estimates (YAML or JSON; see `corral-harness serve --price-table`).
    #[arg(long, env = "CORRAL_HARNESS_PRICE_TABLE", default_value = "")]
    pub harness_price_table: String,

    /// How long a harness tool call waits for a sandbox pod that no node can take before it fails with the
    /// scheduler's reason (a duration such as `120s`), given to the harness as `CORRAL_SANDBOX_UNSCHEDULABLE_TIMEOUT`.
    /// Empty: the harness's default (120 s). Leave a cluster autoscaler time to add a node.
    #[arg(
        long,
        env = "CORRAL_HARNESS_SANDBOX_UNSCHEDULABLE_TIMEOUT",
        default_value = ""
    )]
    pub harness_sandbox_unschedulable_timeout: String,

    /// The gateway's URL inside the cluster, given to the harness as `CORRAL_GATEWAY_URL`: the harness fetches the
    /// sessions' file resources there with a ServiceAccount token for the audience `corral-gateway`, mounted into
    /// its pods. Empty: file resources cannot reach sandboxes (their tool calls say so).
    #[arg(long, env = "CORRAL_HARNESS_GATEWAY_URL", default_value = "")]
    pub harness_gateway_url: String,

    /// PriorityClass of the harness pods. Corral's own pods run above sandboxes, so a restarted harness preempts
    /// sandboxes instead of waiting for them to be reaped. Empty: none (the cluster's default priority).
    #[arg(long, env = "CORRAL_HARNESS_PRIORITY_CLASS", default_value = "")]
    pub harness_priority_class: String,

    /// PriorityClass of sandbox pods (session pods and warm pools): below Corral's own pods and below ordinary
    /// workloads, so the scheduler preempts sandboxes first when a node is full. Empty: none.
    #[arg(long, env = "CORRAL_SANDBOX_PRIORITY_CLASS", default_value = "")]
    pub sandbox_priority_class: String,

    /// Hosts the harness may reach although they resolve to internal addresses (comma-separated host patterns, the
    /// chart's `egress.internalHosts`); given to the harness as `CORRAL_INTERNAL_HOSTS`.
    #[arg(long, env = "CORRAL_HARNESS_INTERNAL_HOSTS", value_delimiter = ',')]
    pub harness_internal_hosts: Vec<String>,

    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

impl Args {
    /// The sandbox storage defaults from the flags, checked.
    pub fn sandbox_storage(&self) -> anyhow::Result<StorageDefaults> {
        let storage = StorageDefaults {
            request: self.sandbox_ephemeral_storage_request.clone(),
            limit: self.sandbox_ephemeral_storage_limit.clone(),
            tmp: self.sandbox_tmp_size_limit.clone(),
        };
        storage.validate().map_err(anyhow::Error::msg)?;
        Ok(storage)
    }
}

fn parse_resources(s: &str) -> Result<k8s_openapi::api::core::v1::ResourceRequirements, String> {
    serde_json::from_str(s).map_err(|e| format!("not a ResourceRequirements JSON object: {e}"))
}
