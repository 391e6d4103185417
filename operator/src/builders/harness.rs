//! The harness of one tenant namespace. It runs in Corral's system namespace, beside Redis, so that no pod a tenant
//! can create shares its network position or its credentials: a ServiceAccount, the Deployment, its
//! PodDisruptionBudget and the Secret with the tenant's Redis URL live there, named after the tenant
//! ([`harness_name`]) and labelled with it ([`TENANT_LABEL`]). What the harness may do in the tenant namespace is a
//! Role and RoleBinding there, bound to the system-namespace ServiceAccount and owned by the namespace's Agents, so
//! they go away with the last Agent; the system-namespace objects cannot be owned across namespaces, so the
//! operator deletes them itself (`controllers::harness::sweep`).

use std::collections::BTreeMap;

use corral_api::{Agent, labels};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{
            Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, PodSecurityContext, PodSpec,
            PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements, Secret, SecretKeySelector,
            ServiceAccount, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
        },
        policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
        rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject},
    },
    apimachinery::pkg::{
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};
use kube::Resource;
use sha2::Digest as _;

use super::common::{NONROOT_UID, env_var, field_env, locked_down, runtime_default_seccomp};

/// The name of the harness's Role and RoleBinding in the tenant namespace (and, before harnesses moved to the
/// system namespace, of every harness object there).
pub const HARNESS_NAME: &str = "corral-harness";
/// Port of the harness's `/metrics`, `/healthz` and `/readyz`.
pub const HARNESS_METRICS_PORT: i32 = 8080;
/// The label naming the tenant namespace a system-namespace harness object serves.
pub const TENANT_LABEL: &str = "corral.dev/tenant-namespace";
/// The key of the Redis URL in the harness Secret.
pub const REDIS_URL_KEY: &str = "redis-url";
/// The key of the tenant's Redis password in the harness Secret (absent without per-tenant Redis users).
pub const REDIS_PASSWORD_KEY: &str = "redis-password";

/// The name of `tenant`'s harness objects in the system namespace: `corral-harness-<tenant>`, shortened with a
/// hash of the full name to stay within 63 characters (a label value and a DNS label).
pub fn harness_name(tenant: &str) -> String {
    corral_api::labels::harness_name(tenant)
}

/// Operator configuration for the harness Deployments it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct HarnessConfig {
    /// The system namespace the harness pods run in (the operator's own).
    pub namespace: String,
    /// Container image.
    pub image: String,
    /// Image pull policy.
    pub image_pull_policy: String,
    /// Replicas per namespace.
    pub replicas: i32,
    /// Container resources.
    pub resources: ResourceRequirements,
    /// Redis URL of the session log with Corral's system credentials. Each harness gets it with its tenant's own
    /// user and password instead when `tenant_users` is set, and as it is otherwise.
    pub redis_url: Option<String>,
    /// Give each tenant namespace its own Redis ACL user, limited to the tenant's keys.
    pub tenant_users: bool,
    /// Log filter of the harness pods.
    pub log_filter: String,
    /// The harness's price table (YAML or JSON), given as `CORRAL_PRICE_TABLE` when not empty.
    pub price_table: String,
    /// Where to export traces (OTLP/HTTP), given as `OTEL_EXPORTER_OTLP_ENDPOINT` when not empty.
    pub otlp_endpoint: String,
    /// Internal hosts the harness may reach as model endpoints or MCP servers, given as `CORRAL_INTERNAL_HOSTS`.
    pub internal_hosts: Vec<String>,
    /// PriorityClass of the harness pods (`None`: the cluster's default priority).
    pub priority_class: Option<String>,
    /// How long a tool call waits for an unschedulable sandbox, given as `CORRAL_SANDBOX_UNSCHEDULABLE_TIMEOUT`
    /// when not empty.
    pub sandbox_unschedulable_timeout: String,
    /// The gateway's URL inside the cluster, given as `CORRAL_GATEWAY_URL` with a ServiceAccount token for the
    /// audience [`GATEWAY_TOKEN_AUDIENCE`] when not empty: the harness fetches file resources there.
    pub gateway_url: String,
}

/// The audience of the token the harness presents to the gateway (the gateway's `HARNESS_AUDIENCE`).
pub const GATEWAY_TOKEN_AUDIENCE: &str = "corral-gateway";
/// Where that token is mounted in the harness pods (the harness's default `--gateway-token-file` directory).
pub const GATEWAY_TOKEN_DIR: &str = "/var/run/secrets/corral/gateway";

/// The Redis credentials of one tenant's harness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRedis {
    /// The URL the harness connects with.
    pub url: String,
    /// The tenant user's password, kept in the Secret so that the operator sets the same one again; `None` when
    /// the harness uses the system user.
    pub password: Option<String>,
}

/// Every object that makes up one namespace's harness.
#[derive(Debug, Clone, PartialEq)]
pub struct HarnessObjects {
    /// The identity the harness runs as (system namespace).
    pub service_account: ServiceAccount,
    /// What the harness may do in its tenant namespace (tenant namespace).
    pub role: Role,
    /// Grants the Role to the system-namespace ServiceAccount (tenant namespace).
    pub role_binding: RoleBinding,
    /// The harness replicas (system namespace).
    pub deployment: Deployment,
    /// Keeps one replica up through voluntary disruptions (system namespace).
    pub pdb: PodDisruptionBudget,
    /// The tenant's Redis URL and password (system namespace), read by the harness from this Secret rather than
    /// written into the Deployment where anyone who may read Deployments would see it.
    pub redis_secret: Option<Secret>,
}

/// Labels every harness object carries.
pub fn harness_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::COMPONENT.to_owned(), "harness".to_owned()),
        (
            labels::MANAGED_BY.to_owned(),
            labels::OPERATOR_FIELD_MANAGER.to_owned(),
        ),
    ])
}

/// The labels that select `tenant`'s harness pods (in the system namespace).
pub fn selector_labels(tenant: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::COMPONENT.to_owned(), "harness".to_owned()),
        (TENANT_LABEL.to_owned(), tenant.to_owned()),
    ])
}

/// Owner references to every Agent of the namespace, none of them the controller, sorted by name so that the
/// result does not depend on list order.
pub fn agent_owners(agents: &[Agent]) -> Vec<OwnerReference> {
    let mut owners: Vec<OwnerReference> = agents
        .iter()
        .filter(|a| a.meta().deletion_timestamp.is_none())
        .filter_map(|a| a.owner_ref(&()))
        .map(|mut o| {
            o.controller = Some(false);
            o.block_owner_deletion = Some(false);
            o
        })
        .collect();
    owners.sort_by(|a, b| a.name.cmp(&b.name));
    owners
}

/// Metadata of an object in the tenant namespace, owned by its Agents.
fn tenant_meta(tenant: &str, owners: &[OwnerReference]) -> ObjectMeta {
    let mut l = harness_labels();
    l.insert(TENANT_LABEL.to_owned(), tenant.to_owned());
    ObjectMeta {
        name: Some(HARNESS_NAME.to_owned()),
        namespace: Some(tenant.to_owned()),
        labels: Some(l),
        owner_references: Some(owners.to_vec()),
        ..ObjectMeta::default()
    }
}

/// Metadata of an object in the system namespace: named after and labelled with the tenant, owned by nothing.
fn system_meta(tenant: &str, config: &HarnessConfig) -> ObjectMeta {
    let mut l = harness_labels();
    l.insert(TENANT_LABEL.to_owned(), tenant.to_owned());
    ObjectMeta {
        name: Some(harness_name(tenant)),
        namespace: Some(config.namespace.clone()),
        labels: Some(l),
        ..ObjectMeta::default()
    }
}

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect());
    PolicyRule {
        api_groups: strings(groups),
        resources: strings(resources),
        verbs: verbs.iter().map(|s| (*s).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// Builds the harness objects of `tenant`, whose Role is owned by `agents`, connecting to Redis with `redis`.
pub fn build_harness(
    tenant: &str,
    agents: &[Agent],
    config: &HarnessConfig,
    redis: Option<&TenantRedis>,
) -> HarnessObjects {
    let owners = agent_owners(agents);
    let name = harness_name(tenant);
    let role = Role {
        metadata: tenant_meta(tenant, &owners),
        rules: Some(vec![
            rule(
                &["corral.dev"],
                &["agents", "environments", "sessions"],
                &["get", "list", "watch"],
            ),
            rule(
                &["corral.dev"],
                &["sessions/status", "agents/status"],
                &["get", "patch"],
            ),
            rule(&["apps"], &["controllerrevisions"], &["get", "list"]),
            // Model keys and scripts the Agents reference; read by the harness only, never by sandboxes.
            rule(&[""], &["configmaps"], &["get"]),
            // The same for Secrets, plus listing the vault credentials of a session (MCP server tokens).
            rule(&[""], &["secrets"], &["get", "list"]),
            rule(&["events.k8s.io"], &["events"], &["create", "patch"]),
        ]),
    };
    let role_binding = RoleBinding {
        metadata: tenant_meta(tenant, &owners),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: HARNESS_NAME.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.clone(),
            namespace: Some(config.namespace.clone()),
            ..Subject::default()
        }]),
    };
    HarnessObjects {
        service_account: ServiceAccount {
            metadata: system_meta(tenant, config),
            // The harness talks to the API server with this token; nothing else in its pod needs one.
            ..ServiceAccount::default()
        },
        role,
        role_binding,
        deployment: build_deployment(tenant, config, redis),
        redis_secret: redis.map(|r| {
            let mut data = BTreeMap::from([(REDIS_URL_KEY.to_owned(), r.url.clone())]);
            if let Some(password) = &r.password {
                data.insert(REDIS_PASSWORD_KEY.to_owned(), password.clone());
            }
            Secret {
                metadata: system_meta(tenant, config),
                string_data: Some(data),
                ..Secret::default()
            }
        }),
        pdb: PodDisruptionBudget {
            metadata: system_meta(tenant, config),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector {
                    match_labels: Some(selector_labels(tenant)),
                    ..LabelSelector::default()
                }),
                ..PodDisruptionBudgetSpec::default()
            }),
            ..PodDisruptionBudget::default()
        },
    }
}

fn probe(path: &str, period: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("metrics".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        ..Probe::default()
    }
}

/// The harness's only writable directory (its root filesystem is read-only): where it fetches skills kept in git
/// repositories, one temporary directory per fetch, removed after it.
pub const SCRATCH_DIR: &str = "/tmp";
const SCRATCH_VOLUME: &str = "scratch";
/// At most this much on the node's disk (a skill is at most 8 MiB; a shallow fetch of its repository more).
const SCRATCH_SIZE: &str = "512Mi";

fn scratch_volume() -> Volume {
    Volume {
        name: SCRATCH_VOLUME.into(),
        empty_dir: Some(k8s_openapi::api::core::v1::EmptyDirVolumeSource {
            size_limit: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                SCRATCH_SIZE.into(),
            )),
            ..Default::default()
        }),
        ..Volume::default()
    }
}

fn gateway_token_volume() -> Volume {
    Volume {
        name: "gateway-token".into(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: Some(GATEWAY_TOKEN_AUDIENCE.into()),
                    expiration_seconds: Some(3600),
                    path: "token".into(),
                }),
                ..VolumeProjection::default()
            }]),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn build_deployment(tenant: &str, config: &HarnessConfig, redis: Option<&TenantRedis>) -> Deployment {
    let name = harness_name(tenant);
    let mut pod_labels = selector_labels(tenant);
    pod_labels.insert(
        labels::MANAGED_BY.to_owned(),
        labels::OPERATOR_FIELD_MANAGER.to_owned(),
    );
    let mut env_vars = vec![
        field_env("POD_NAME", "metadata.name"),
        // The namespace whose sessions it serves, not the one it runs in.
        env_var("CORRAL_NAMESPACE", tenant),
        env_var("CORRAL_METRICS_ADDR", &format!("0.0.0.0:{HARNESS_METRICS_PORT}")),
        env_var("CORRAL_LOG", &config.log_filter),
    ];
    let mut template_annotations = BTreeMap::new();
    if let Some(redis) = redis {
        env_vars.push(EnvVar {
            name: "CORRAL_REDIS_URL".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: name.clone(),
                    key: REDIS_URL_KEY.into(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
        // A changed URL or password rolls the pods (they read the Secret only at start).
        let digest = sha2::Sha256::digest(redis.url.as_bytes());
        let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        template_annotations.insert("corral.dev/redis-url-hash".to_owned(), hash);
    }
    if !config.otlp_endpoint.is_empty() {
        env_vars.push(env_var("OTEL_EXPORTER_OTLP_ENDPOINT", &config.otlp_endpoint));
    }
    if !config.internal_hosts.is_empty() {
        env_vars.push(env_var("CORRAL_INTERNAL_HOSTS", &config.internal_hosts.join(",")));
    }
    if !config.price_table.trim().is_empty() {
        env_vars.push(env_var("CORRAL_PRICE_TABLE", &config.price_table));
    }
    if !config.sandbox_unschedulable_timeout.is_empty() {
        env_vars.push(env_var(
            "CORRAL_SANDBOX_UNSCHEDULABLE_TIMEOUT",
            &config.sandbox_unschedulable_timeout,
        ));
    }
    let with_gateway = !config.gateway_url.is_empty();
    if with_gateway {
        env_vars.push(env_var("CORRAL_GATEWAY_URL", &config.gateway_url));
    }
    let container = Container {
        name: "harness".into(),
        volume_mounts: Some({
            let mut mounts = vec![VolumeMount {
                name: SCRATCH_VOLUME.into(),
                mount_path: SCRATCH_DIR.into(),
                ..VolumeMount::default()
            }];
            if with_gateway {
                mounts.push(VolumeMount {
                    name: "gateway-token".into(),
                    mount_path: GATEWAY_TOKEN_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                });
            }
            mounts
        }),
        image: Some(config.image.clone()),
        image_pull_policy: Some(config.image_pull_policy.clone()),
        env: Some(env_vars),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: HARNESS_METRICS_PORT,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe("/readyz", 5)),
        liveness_probe: Some(probe("/healthz", 10)),
        // The harness waits up to five minutes for Redis at start (corral_session::STARTUP_PATIENCE); liveness
        // checks begin once its health server answers.
        startup_probe: Some(Probe {
            failure_threshold: Some(150),
            ..probe("/healthz", 2)
        }),
        resources: Some(config.resources.clone()),
        security_context: Some(locked_down()),
        ..Container::default()
    };
    Deployment {
        metadata: system_meta(tenant, config),
        spec: Some(DeploymentSpec {
            replicas: Some(config.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels(tenant)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: (!template_annotations.is_empty()).then_some(template_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name),
                    // Turns in flight are finished or handed back on SIGTERM within this time.
                    termination_grace_period_seconds: Some(60),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(NONROOT_UID),
                        run_as_group: Some(NONROOT_UID),
                        seccomp_profile: Some(runtime_default_seccomp()),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![container],
                    // A token only the gateway accepts (its audience), rotated by the kubelet.
                    volumes: Some(
                        std::iter::once(scratch_volume())
                            .chain(with_gateway.then(gateway_token_volume))
                            .collect(),
                    ),
                    priority_class_name: config.priority_class.clone(),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

#[cfg(test)]
mod tests {
    use corral_api::AgentSpec;

    use super::*;

    fn agent(name: &str, uid: &str) -> Agent {
        let spec: AgentSpec = serde_json::from_value(serde_json::json!({ "model": { "id": "m" } })).unwrap();
        let mut a = Agent::new(name, spec);
        a.metadata.namespace = Some("team".into());
        a.metadata.uid = Some(uid.into());
        a
    }

    fn config() -> HarnessConfig {
        HarnessConfig {
            namespace: "corral-system".into(),
            image: "corral/harness:dev".into(),
            image_pull_policy: "IfNotPresent".into(),
            replicas: 2,
            resources: ResourceRequirements::default(),
            redis_url: Some("redis://corral:sys@corral-redis.corral-system.svc:6379".into()),
            tenant_users: true,
            log_filter: "info".into(),
            price_table: "[{\"model\": \"m\", \"input\": 1, \"output\": 2}]".into(),
            otlp_endpoint: String::new(),
            internal_hosts: vec!["10.201.0.1".into()],
            priority_class: Some("corral-system".into()),
            sandbox_unschedulable_timeout: "30s".into(),
            gateway_url: "http://corral-gateway.corral-system.svc:8080".into(),
        }
    }

    fn redis() -> TenantRedis {
        TenantRedis {
            url: "redis://tenant-team:pw@corral-redis.corral-system.svc:6379".into(),
            password: Some("pw".into()),
        }
    }

    #[test]
    fn owned_by_every_agent_and_controlled_by_none() {
        let objs = build_harness(
            "team",
            &[agent("b", "u2"), agent("a", "u1")],
            &config(),
            Some(&redis()),
        );
        let owners = objs.role.metadata.owner_references.unwrap();
        assert_eq!(
            owners.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert!(
            owners
                .iter()
                .all(|o| o.controller == Some(false) && o.kind == "Agent")
        );
        assert_eq!(objs.role_binding.metadata.owner_references.unwrap().len(), 2);
        // Owner references cannot cross namespaces: the system-namespace objects have none.
        assert!(objs.deployment.metadata.owner_references.is_none());
        assert!(objs.pdb.metadata.owner_references.is_none());
    }

    #[test]
    fn the_harness_gets_the_gateway_and_a_token_only_the_gateway_accepts() {
        let d = build_harness("team", &[agent("a", "u1")], &config(), Some(&redis())).deployment;
        let pod = d.spec.unwrap().template.spec.unwrap();
        let env = pod.containers[0].env.clone().unwrap_or_default();
        let url = env.iter().find(|e| e.name == "CORRAL_GATEWAY_URL").unwrap();
        assert_eq!(
            url.value.as_deref(),
            Some("http://corral-gateway.corral-system.svc:8080")
        );
        let volumes = pod.volumes.unwrap();
        let volume = volumes.iter().find(|v| v.name == "gateway-token").unwrap();
        let token = volume.projected.as_ref().unwrap().sources.as_ref().unwrap()[0]
            .service_account_token
            .clone()
            .unwrap();
        assert_eq!(token.audience.as_deref(), Some(GATEWAY_TOKEN_AUDIENCE));
        let mounts = pod.containers[0].volume_mounts.clone().unwrap();
        let mount = mounts.iter().find(|m| m.name == "gateway-token").unwrap();
        assert_eq!(
            (mount.name.as_str(), mount.mount_path.as_str(), mount.read_only),
            (volume.name.as_str(), GATEWAY_TOKEN_DIR, Some(true))
        );
        let without = HarnessConfig {
            gateway_url: String::new(),
            ..config()
        };
        let d = build_harness("team", &[agent("a", "u1")], &without, Some(&redis())).deployment;
        let pod = d.spec.unwrap().template.spec.unwrap();
        let names = |v: Option<Vec<String>>| v.unwrap_or_default();
        assert_eq!(
            names(pod.volumes.map(|v| v.into_iter().map(|v| v.name).collect())),
            ["scratch"],
            "without a gateway only the scratch directory"
        );
        assert_eq!(
            names(
                pod.containers[0]
                    .volume_mounts
                    .clone()
                    .map(|m| m.into_iter().map(|m| m.mount_path).collect())
            ),
            [SCRATCH_DIR]
        );
    }

    #[test]
    fn deployment_is_locked_down_and_probed() {
        let d = build_harness("team", &[agent("a", "u1")], &config(), Some(&redis())).deployment;
        let spec = d.spec.clone().unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.unwrap();
        assert_eq!(d.metadata.namespace.as_deref(), Some("corral-system"));
        assert_eq!(pod.service_account_name.as_deref(), Some("corral-harness-team"));
        // Above sandboxes: a harness pod that is killed on a full node comes back by preempting sandboxes.
        assert_eq!(pod.priority_class_name.as_deref(), Some("corral-system"));
        let env = pod.containers[0].env.clone().unwrap_or_default();
        let timeout = env
            .iter()
            .find(|e| e.name == "CORRAL_SANDBOX_UNSCHEDULABLE_TIMEOUT");
        assert_eq!(timeout.and_then(|e| e.value.as_deref()), Some("30s"));
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
        assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some());
        let startup = c.startup_probe.as_ref().expect("a startup probe");
        assert!(
            startup.period_seconds.unwrap_or(10) * startup.failure_threshold.unwrap_or(3) >= 300,
            "the startup probe outlasts the wait for Redis"
        );
        let env = c.env.as_ref().unwrap();
        let redis = env.iter().find(|e| e.name == "CORRAL_REDIS_URL").unwrap();
        assert_eq!(
            redis
                .value_from
                .as_ref()
                .unwrap()
                .secret_key_ref
                .as_ref()
                .unwrap()
                .key,
            REDIS_URL_KEY
        );
        assert!(
            redis.value.is_none(),
            "the URL (and its password) is not in the Deployment"
        );
        let prices = env.iter().find(|e| e.name == "CORRAL_PRICE_TABLE").unwrap();
        assert!(prices.value.as_deref().unwrap().contains("\"model\": \"m\""));
        let opened = env.iter().find(|e| e.name == "CORRAL_INTERNAL_HOSTS").unwrap();
        assert_eq!(
            opened.value.as_deref(),
            Some("10.201.0.1"),
            "the operator's opened hosts reach the harness"
        );
        assert!(
            env.iter()
                .any(|e| e.name == "CORRAL_NAMESPACE" && e.value.as_deref() == Some("team")),
            "the harness serves the tenant namespace, not the one it runs in"
        );
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert!(!labels.contains_key("corral.dev/redis-client"));
        assert!(
            selector_labels("team")
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        );
    }

    #[test]
    fn role_is_scoped_and_grants_no_writes_to_specs() {
        let objs = build_harness("team", &[agent("a", "u1")], &config(), Some(&redis()));
        let role = objs.role;
        assert_eq!(role.metadata.namespace.as_deref(), Some("team"));
        let subject = &objs.role_binding.subjects.unwrap()[0];
        assert_eq!(subject.name, "corral-harness-team");
        assert_eq!(subject.namespace.as_deref(), Some("corral-system"));
        for r in role.rules.unwrap() {
            let resources = r.resources.unwrap_or_default();
            let writes = r
                .verbs
                .iter()
                .any(|v| ["create", "update", "patch", "delete"].contains(&v.as_str()));
            if writes {
                assert!(
                    resources
                        .iter()
                        .all(|res| res.ends_with("/status") || res == "events"),
                    "writes only status and events: {resources:?} {:?}",
                    r.verbs
                );
            }
        }
    }

    #[test]
    fn deleting_agents_drop_out_of_owners() {
        let mut gone = agent("b", "u2");
        gone.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(agent_owners(&[agent("a", "u1"), gone]).len(), 1);
    }

    #[test]
    fn names_fit_in_63_characters_and_stay_distinct() {
        assert_eq!(harness_name("team"), "corral-harness-team");
        let long = "a".repeat(63);
        let other = format!("{}b", "a".repeat(62));
        assert!(harness_name(&long).len() <= 63);
        assert_ne!(harness_name(&long), harness_name(&other));
        let dashed = format!("{}-{}", "a".repeat(38), "b".repeat(24));
        let name = harness_name(&dashed);
        assert!(name.len() <= 63 && !name.contains("--"), "{name}");
    }

    #[test]
    fn the_secret_holds_the_tenant_url_and_password_in_the_system_namespace() {
        let secret = build_harness("team", &[agent("a", "u1")], &config(), Some(&redis()))
            .redis_secret
            .unwrap();
        assert_eq!(secret.metadata.namespace.as_deref(), Some("corral-system"));
        let data = secret.string_data.unwrap();
        assert!(data[REDIS_URL_KEY].starts_with("redis://tenant-team:"));
        assert_eq!(data[REDIS_PASSWORD_KEY], "pw");
    }
}
