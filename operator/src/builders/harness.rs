//! The harness of one namespace: a ServiceAccount, a Role and RoleBinding scoped to that namespace, the Deployment
//! and its PodDisruptionBudget. Every object is owned by all of the namespace's Agents (none as controller), so
//! the harness goes away with the last Agent.

use std::collections::BTreeMap;

use corral_api::{Agent, labels};
use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{
            Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, PodSecurityContext, PodSpec,
            PodTemplateSpec, Probe, ResourceRequirements, Secret, SecretKeySelector, ServiceAccount,
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

use super::common::{NONROOT_UID, env_var, field_env, locked_down, runtime_default_seccomp};

/// The name of every harness object in a namespace.
pub const HARNESS_NAME: &str = "corral-harness";
/// Port of the harness's `/metrics`, `/healthz` and `/readyz`.
pub const HARNESS_METRICS_PORT: i32 = 8080;

/// Operator configuration for the harness Deployments it runs.
#[derive(Debug, Clone, PartialEq)]
pub struct HarnessConfig {
    /// Container image.
    pub image: String,
    /// Image pull policy.
    pub image_pull_policy: String,
    /// Replicas per namespace.
    pub replicas: i32,
    /// Container resources.
    pub resources: ResourceRequirements,
    /// Redis URL of the session log, given to the harness as `CORRAL_REDIS_URL`.
    pub redis_url: Option<String>,
    /// Log filter of the harness pods.
    pub log_filter: String,
    /// The harness's price table (YAML or JSON), given as `CORRAL_PRICE_TABLE` when not empty.
    pub price_table: String,
    /// Where to export traces (OTLP/HTTP), given as `OTEL_EXPORTER_OTLP_ENDPOINT` when not empty.
    pub otlp_endpoint: String,
    /// Internal hosts the harness may reach as model endpoints or MCP servers, given as `CORRAL_INTERNAL_HOSTS`.
    pub internal_hosts: Vec<String>,
}

/// Every object that makes up one namespace's harness.
#[derive(Debug, Clone, PartialEq)]
pub struct HarnessObjects {
    /// The identity the harness runs as.
    pub service_account: ServiceAccount,
    /// What the harness may do in its namespace.
    pub role: Role,
    /// Grants the Role to the ServiceAccount.
    pub role_binding: RoleBinding,
    /// The harness replicas.
    pub deployment: Deployment,
    /// Keeps one replica up through voluntary disruptions.
    pub pdb: PodDisruptionBudget,
    /// The session log's Redis URL (it may carry a password), read by the harness from this Secret rather than
    /// written into the Deployment where anyone who may read Deployments would see it.
    pub redis_secret: Option<Secret>,
}

/// The key of the Redis URL in the harness Secret.
pub const REDIS_URL_KEY: &str = "redis-url";

/// Labels every harness object carries; the first two select the pods.
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

fn selector_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::COMPONENT.to_owned(), "harness".to_owned()),
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

fn meta(namespace: &str, owners: &[OwnerReference]) -> ObjectMeta {
    ObjectMeta {
        name: Some(HARNESS_NAME.to_owned()),
        namespace: Some(namespace.to_owned()),
        labels: Some(harness_labels()),
        owner_references: Some(owners.to_vec()),
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

/// Builds the harness objects of `namespace`, owned by `agents`.
pub fn build_harness(namespace: &str, agents: &[Agent], config: &HarnessConfig) -> HarnessObjects {
    let owners = agent_owners(agents);
    let role = Role {
        metadata: meta(namespace, &owners),
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
        metadata: meta(namespace, &owners),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: HARNESS_NAME.into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: HARNESS_NAME.into(),
            namespace: Some(namespace.to_owned()),
            ..Subject::default()
        }]),
    };
    HarnessObjects {
        service_account: ServiceAccount {
            metadata: meta(namespace, &owners),
            ..ServiceAccount::default()
        },
        role,
        role_binding,
        deployment: build_deployment(namespace, &owners, config),
        redis_secret: config.redis_url.as_ref().map(|url| Secret {
            metadata: meta(namespace, &owners),
            string_data: Some(BTreeMap::from([(REDIS_URL_KEY.to_owned(), url.clone())])),
            ..Secret::default()
        }),
        pdb: PodDisruptionBudget {
            metadata: meta(namespace, &owners),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector {
                    match_labels: Some(selector_labels()),
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

fn build_deployment(namespace: &str, owners: &[OwnerReference], config: &HarnessConfig) -> Deployment {
    let mut pod_labels = selector_labels();
    pod_labels.insert("corral.dev/redis-client".into(), "true".into());
    let mut env_vars = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("CORRAL_NAMESPACE", "metadata.namespace"),
        env_var("CORRAL_METRICS_ADDR", &format!("0.0.0.0:{HARNESS_METRICS_PORT}")),
        env_var("CORRAL_LOG", &config.log_filter),
    ];
    let mut template_annotations = BTreeMap::new();
    if let Some(url) = &config.redis_url {
        env_vars.push(EnvVar {
            name: "CORRAL_REDIS_URL".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: HARNESS_NAME.into(),
                    key: REDIS_URL_KEY.into(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
        // A changed URL rolls the pods (they read the Secret only at start).
        let digest = <sha2::Sha256 as sha2::Digest>::digest(url.as_bytes());
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
    let container = Container {
        name: "harness".into(),
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
        resources: Some(config.resources.clone()),
        security_context: Some(locked_down()),
        ..Container::default()
    };
    Deployment {
        metadata: meta(namespace, owners),
        spec: Some(DeploymentSpec {
            replicas: Some(config.replicas),
            selector: LabelSelector {
                match_labels: Some(selector_labels()),
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
                    service_account_name: Some(HARNESS_NAME.into()),
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
            image: "corral/harness:dev".into(),
            image_pull_policy: "IfNotPresent".into(),
            replicas: 2,
            resources: ResourceRequirements::default(),
            redis_url: Some("redis://corral-redis.corral-system.svc:6379".into()),
            log_filter: "info".into(),
            price_table: "[{\"model\": \"m\", \"input\": 1, \"output\": 2}]".into(),
            otlp_endpoint: String::new(),
            internal_hosts: vec!["10.201.0.1".into()],
        }
    }

    #[test]
    fn owned_by_every_agent_and_controlled_by_none() {
        let objs = build_harness("team", &[agent("b", "u2"), agent("a", "u1")], &config());
        let owners = objs.deployment.metadata.owner_references.unwrap();
        assert_eq!(
            owners.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert!(
            owners
                .iter()
                .all(|o| o.controller == Some(false) && o.kind == "Agent")
        );
        assert_eq!(objs.pdb.metadata.owner_references.unwrap().len(), 2);
    }

    #[test]
    fn deployment_is_locked_down_and_probed() {
        let d = build_harness("team", &[agent("a", "u1")], &config()).deployment;
        let spec = d.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some(HARNESS_NAME));
        let c = &pod.containers[0];
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.run_as_non_root, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
        assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some());
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
        assert_eq!(opened.value.as_deref(), Some("10.201.0.1"), "the operator's opened hosts reach the harness");
        assert!(
            env.iter()
                .any(|e| e.name == "CORRAL_NAMESPACE" && e.value_from.is_some())
        );
        let labels = spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(
            labels.get("corral.dev/redis-client").map(String::as_str),
            Some("true")
        );
        assert!(selector_labels().iter().all(|(k, v)| labels.get(k) == Some(v)));
    }

    #[test]
    fn role_is_scoped_and_grants_no_writes_to_specs() {
        let role = build_harness("team", &[agent("a", "u1")], &config()).role;
        assert_eq!(role.metadata.namespace.as_deref(), Some("team"));
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
}
