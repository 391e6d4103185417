//! A session's sandbox: the locked-down pod that runs the sandbox daemon inside the Environment's image, the Secret
//! holding the daemon's per-sandbox token, the NetworkPolicy that lets only the harness in, and (for a persistent
//! workspace) the PersistentVolumeClaim that outlives idle reaping.
//!
//! The daemon gets into any image without the image knowing: an init container copies the static
//! `corral-sandbox` binary from Corral's daemon image into a shared volume, and the sandbox container runs it.

use std::collections::BTreeMap;

use super::common::{env_var, locked_down, merge_env, runtime_default_seccomp};
use corral_api::{
    Environment,
    environment::{DEFAULT_SANDBOX_IMAGE, WorkspaceType},
    labels,
};
use k8s_openapi::{
    api::{
        core::v1::{
            Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, PersistentVolumeClaim,
            PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec,
            Probe, ResourceRequirements, Secret, SecretVolumeSource, Volume, VolumeMount,
            VolumeResourceRequirements,
        },
        networking::v1::{
            IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
            NetworkPolicyPort, NetworkPolicySpec,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference},
        util::intstr::IntOrString,
    },
};

/// Port the sandbox daemon listens on.
pub const DAEMON_PORT: i32 = 7070;
/// Where the daemon's token is mounted.
pub const TOKEN_DIR: &str = "/var/run/corral/token";
/// Key of the token in the sandbox Secret.
pub const TOKEN_KEY: &str = "token";
/// The sandbox's working directory.
pub const WORKSPACE_DIR: &str = "/workspace";
/// The uid sandbox processes run as.
pub const SANDBOX_UID: i64 = super::common::NONROOT_UID;
/// Label marking a warm pool pod that no session has claimed.
pub const WARM_LABEL: &str = "corral.dev/warm";

/// Operator configuration for sandboxes.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxConfig {
    /// Image holding the static daemon binary at `/usr/local/bin/sandbox`.
    pub daemon_image: String,
    /// Pull policy of the daemon image.
    pub daemon_image_pull_policy: String,
    /// Sandbox image when the Environment names none.
    pub default_image: String,
    /// The egress proxy sandboxes reach the network through; `None` runs sandboxes without it (no host lists
    /// by name, no credential injection: `limited` sandboxes then reach nothing).
    pub egress: Option<EgressConfig>,
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

/// The label of the egress proxy's pods.
pub const EGRESS_COMPONENT: &str = "egress-proxy";

/// The proxy settings of pod `namespace/pod`: the variables tools read (`HTTP_PROXY`, ...) and the daemon's
/// identity for asking the proxy about the session's credential placeholders.
fn egress_env(egress: &EgressConfig, namespace: &str, pod: &str) -> Vec<EnvVar> {
    let user = corral_api::egress::proxy_user(namespace, pod);
    let password = corral_api::egress::proxy_password(&egress.key, namespace, pod);
    let proxy = format!("http://{user}:{password}@{}", egress.address);
    let mut vars: Vec<EnvVar> = ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]
        .into_iter()
        .map(|name| env_var(name, &proxy))
        .collect();
    vars.push(env_var("NO_PROXY", "localhost,127.0.0.1"));
    vars.push(env_var("no_proxy", "localhost,127.0.0.1"));
    vars.push(env_var(
        "CORRAL_SANDBOX_EGRESS_URL",
        &format!("http://{}", egress.address),
    ));
    vars.push(env_var("CORRAL_SANDBOX_EGRESS_USER", &user));
    vars.push(env_var("CORRAL_SANDBOX_EGRESS_PASSWORD", &password));
    if let Some(ca) = &egress.ca_pem {
        vars.push(env_var("CORRAL_SANDBOX_EGRESS_CA", ca));
    }
    vars
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            daemon_image: "corral/sandbox:dev".into(),
            daemon_image_pull_policy: "IfNotPresent".into(),
            default_image: DEFAULT_SANDBOX_IMAGE.into(),
            egress: None,
        }
    }
}

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

/// The name of a session's sandbox pod (and of its token Secret and NetworkPolicy).
pub fn sandbox_name(session: &str) -> String {
    format!("sandbox-{session}")
}

/// The name of a warm pool pod (and of its token Secret).
pub fn warm_pod_name(environment: &str, suffix: &str) -> String {
    format!("warm-{environment}-{suffix}")
}

/// The name of a session's persistent workspace claim.
pub fn workspace_claim_name(session: &str) -> String {
    format!("workspace-{session}")
}

/// Labels of every sandbox pod; the first two select all sandboxes for the NetworkPolicy.
pub fn sandbox_labels(environment: &str, owner: &SandboxOwner) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::COMPONENT.to_owned(), "sandbox".to_owned()),
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

fn meta(
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

/// The Secret holding the daemon's token. `token` is generated by the caller (random, per sandbox).
pub fn build_token_secret(name: &str, namespace: &str, owner: &OwnerReference, token: &str) -> Secret {
    let mut l = BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::COMPONENT.to_owned(), "sandbox-token".to_owned()),
    ]);
    l.insert(
        labels::MANAGED_BY.to_owned(),
        labels::OPERATOR_FIELD_MANAGER.to_owned(),
    );
    Secret {
        metadata: meta(name.to_owned(), namespace, l, owner),
        string_data: Some(BTreeMap::from([(TOKEN_KEY.to_owned(), token.to_owned())])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// The persistent workspace claim of a session, owned by the Session (it survives the pod, not the session).
pub fn build_workspace_claim(
    session: &str,
    namespace: &str,
    env: &Environment,
    owner: &OwnerReference,
) -> Option<PersistentVolumeClaim> {
    let ws = &env.spec.sandbox.workspace;
    if ws.kind != WorkspaceType::Persistent {
        return None;
    }
    let size = ws.size.clone().unwrap_or_else(|| "1Gi".into());
    let l = BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::COMPONENT.to_owned(), "workspace".to_owned()),
        (labels::SESSION.to_owned(), session.to_owned()),
    ]);
    Some(PersistentVolumeClaim {
        metadata: meta(workspace_claim_name(session), namespace, l, owner),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: ws.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_owned(), Quantity(size))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    })
}

fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("100m".into())),
            ("memory".to_owned(), Quantity("256Mi".into())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), Quantity("1Gi".into()))])),
        ..ResourceRequirements::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// Builds a sandbox pod for `owner` from the Environment. `token_secret` names the Secret holding its token.
pub fn build_sandbox_pod(
    namespace: &str,
    env: &Environment,
    owner: &SandboxOwner,
    token_secret: &str,
    config: &SandboxConfig,
) -> Pod {
    let env_name = env.metadata.name.clone().unwrap_or_default();
    let (name, owner_ref, workspace) = match owner {
        SandboxOwner::Session { name, owner } => {
            let workspace = match env.spec.sandbox.workspace.kind {
                WorkspaceType::Persistent => Volume {
                    name: "workspace".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: workspace_claim_name(name),
                        read_only: Some(false),
                    }),
                    ..Volume::default()
                },
                WorkspaceType::Ephemeral => empty_dir("workspace"),
            };
            (sandbox_name(name), owner, workspace)
        }
        // Warm pods start with an ephemeral workspace; a persistent one is bound only to a session's own pod.
        SandboxOwner::WarmPool { suffix, owner } => {
            (warm_pod_name(&env_name, suffix), owner, empty_dir("workspace"))
        }
    };
    let sb = &env.spec.sandbox;
    let install = Container {
        name: "install-daemon".into(),
        image: Some(config.daemon_image.clone()),
        image_pull_policy: Some(config.daemon_image_pull_policy.clone()),
        command: Some(vec![
            "cp".into(),
            "/usr/local/bin/sandbox".into(),
            "/corral/bin/corral-sandbox".into(),
        ]),
        volume_mounts: Some(vec![mount("corral-bin", "/corral/bin", false)]),
        security_context: Some(locked_down()),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".to_owned(), Quantity("64Mi".into()))])),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    };
    // The proxy settings come first, so that an Environment's own NO_PROXY (an internal mirror) wins.
    let user_env: Vec<EnvVar> = config
        .egress
        .iter()
        .flat_map(|egress| egress_env(egress, namespace, &name))
        .chain(sb.env.iter().map(|e| env_var(&e.name, &e.value)))
        .collect();
    let packages = install_packages(
        env,
        &sb.image.clone().unwrap_or_else(|| config.default_image.clone()),
        &user_env,
    );
    let probe = Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".into()),
            port: IntOrString::Int(DAEMON_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(2),
        ..Probe::default()
    };
    let sandbox = Container {
        name: "sandbox".into(),
        image: Some(sb.image.clone().unwrap_or_else(|| config.default_image.clone())),
        image_pull_policy: sb.image_pull_policy.clone(),
        command: Some(vec!["/corral/bin/corral-sandbox".into()]),
        env: Some(merge_env(
            [
                env_var("CORRAL_SANDBOX_ADDR", &format!("0.0.0.0:{DAEMON_PORT}")),
                env_var("CORRAL_SANDBOX_TOKEN_FILE", &format!("{TOKEN_DIR}/{TOKEN_KEY}")),
                env_var("CORRAL_SANDBOX_WORKSPACE", WORKSPACE_DIR),
                env_var("HOME", WORKSPACE_DIR),
                env_var("TMPDIR", "/tmp"),
            ]
            .into_iter()
            .chain(
                packages
                    .is_some()
                    .then(|| env_var("CORRAL_SANDBOX_PACKAGES_DIR", PACKAGES_DIR)),
            )
            .chain(user_env.iter().cloned()),
        )),
        ports: Some(vec![ContainerPort {
            name: Some("daemon".into()),
            container_port: DAEMON_PORT,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe),
        resources: Some(sb.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(locked_down()),
        working_dir: Some(WORKSPACE_DIR.into()),
        volume_mounts: Some(
            [
                mount("corral-bin", "/corral/bin", true),
                mount("token", TOKEN_DIR, true),
                mount("workspace", WORKSPACE_DIR, false),
                mount("tmp", "/tmp", false),
            ]
            .into_iter()
            .chain(packages.is_some().then(|| mount("packages", PACKAGES_DIR, true)))
            .collect(),
        ),
        ..Container::default()
    };
    Pod {
        metadata: meta(name, namespace, sandbox_labels(&env_name, owner), owner_ref),
        spec: Some(PodSpec {
            // No Kubernetes credentials and no Service addresses (Redis, the API) inside the sandbox.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            restart_policy: Some("Never".into()),
            runtime_class_name: sb.runtime_class_name.clone(),
            node_selector: (!sb.node_selector.is_empty()).then(|| sb.node_selector.clone()),
            tolerations: (!sb.tolerations.is_empty()).then(|| sb.tolerations.clone()),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(SANDBOX_UID),
                run_as_group: Some(SANDBOX_UID),
                fs_group: Some(SANDBOX_UID),
                seccomp_profile: Some(runtime_default_seccomp()),
                ..PodSecurityContext::default()
            }),
            init_containers: Some(std::iter::once(install).chain(packages.clone()).collect()),
            containers: vec![sandbox],
            volumes: Some(
                [
                    empty_dir("corral-bin"),
                    Volume {
                        name: "token".into(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some(token_secret.to_owned()),
                            default_mode: Some(0o440),
                            ..SecretVolumeSource::default()
                        }),
                        ..Volume::default()
                    },
                    workspace,
                    empty_dir("tmp"),
                ]
                .into_iter()
                .chain(
                    packages
                        .iter()
                        .flat_map(|_| [empty_dir("packages"), empty_dir("packages-scratch")]),
                )
                .collect(),
            ),
            termination_grace_period_seconds: Some(5),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// The name of the init container that installs the Environment's packages.
pub const INSTALL_PACKAGES: &str = "install-packages";
/// Where the Environment's packages are installed (an emptyDir the sandbox container mounts read-only).
pub const PACKAGES_DIR: &str = "/opt/corral/packages";

/// The init container installing the Environment's `packages` with the sandbox image's own package managers, as
/// the sandbox's user, into [`PACKAGES_DIR`]; `None` when there are none. Its failure reason (the termination
/// message) surfaces in the Session's `SandboxReady` condition.
fn install_packages(env: &Environment, image: &str, user_env: &[EnvVar]) -> Option<Container> {
    let packages = &env.spec.config.packages;
    let lists = [
        &packages.apt,
        &packages.cargo,
        &packages.gem,
        &packages.go,
        &packages.npm,
        &packages.pip,
    ];
    if lists.iter().all(|l| l.as_ref().is_none_or(Vec::is_empty)) {
        return None;
    }
    let spec = serde_json::to_string(packages).unwrap_or_default();
    let sb = &env.spec.sandbox;
    Some(Container {
        name: INSTALL_PACKAGES.into(),
        image: Some(image.to_owned()),
        image_pull_policy: sb.image_pull_policy.clone(),
        command: Some(vec![
            "/corral/bin/corral-sandbox".into(),
            "install-packages".into(),
        ]),
        env: Some(merge_env(
            [
                env_var("CORRAL_SANDBOX_PACKAGES", &spec),
                env_var("CORRAL_SANDBOX_PACKAGES_DIR", PACKAGES_DIR),
                env_var("CORRAL_SANDBOX_PACKAGES_SCRATCH", "/scratch"),
                env_var("HOME", "/scratch/home"),
                env_var("TMPDIR", "/scratch"),
            ]
            .into_iter()
            .chain(user_env.iter().cloned()),
        )),
        volume_mounts: Some(vec![
            mount("corral-bin", "/corral/bin", true),
            mount("packages", PACKAGES_DIR, false),
            mount("packages-scratch", "/scratch", false),
        ]),
        resources: Some(sb.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(locked_down()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    })
}

/// Private and link-local ranges a sandbox never reaches, even with `unrestricted` networking: the cluster's pods
/// and Services, the node, and cloud metadata endpoints live there.
pub const INTERNAL_RANGES: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "100.64.0.0/10",
];

/// The namespace's NetworkPolicy for sandboxes: ingress only from the harness on the daemon port; egress per the
/// Environment (`unrestricted`: the public internet but no internal range; `limited`: nothing until the egress proxy
/// of the trust issue enforces host lists).
pub fn build_network_policy(
    namespace: &str,
    env: &Environment,
    owner: &OwnerReference,
    proxy: Option<&EgressConfig>,
) -> NetworkPolicy {
    let env_name = env.metadata.name.clone().unwrap_or_default();
    let selector = BTreeMap::from([
        (labels::COMPONENT.to_owned(), "sandbox".to_owned()),
        (labels::ENVIRONMENT.to_owned(), env_name.clone()),
    ]);
    let harness = NetworkPolicyPeer {
        pod_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                labels::COMPONENT.to_owned(),
                "harness".to_owned(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    let egress = match env.spec.config.networking.kind {
        corral_api::environment::NetworkingType::Unrestricted => vec![NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: "0.0.0.0/0".into(),
                    except: Some(INTERNAL_RANGES.iter().map(|s| (*s).to_owned()).collect()),
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ..NetworkPolicyEgressRule::default()
        }],
        corral_api::environment::NetworkingType::Limited => vec![],
    };
    // Both modes reach the egress proxy: `limited` only it, `unrestricted` it (for credentials) and the internet.
    let egress = proxy
        .map(|proxy| NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        "kubernetes.io/metadata.name".to_owned(),
                        proxy.namespace.clone(),
                    )])),
                    ..LabelSelector::default()
                }),
                pod_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        labels::COMPONENT.to_owned(),
                        EGRESS_COMPONENT.to_owned(),
                    )])),
                    ..LabelSelector::default()
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(vec![NetworkPolicyPort {
                port: Some(IntOrString::Int(i32::from(corral_api::egress::PROXY_PORT))),
                protocol: Some("TCP".into()),
                ..NetworkPolicyPort::default()
            }]),
        })
        .into_iter()
        .chain(egress)
        .collect::<Vec<_>>();
    let l = BTreeMap::from([
        (labels::NAME.to_owned(), labels::APP_NAME.to_owned()),
        (labels::COMPONENT.to_owned(), "sandbox-network-policy".to_owned()),
        (labels::ENVIRONMENT.to_owned(), env_name.clone()),
    ]);
    NetworkPolicy {
        metadata: meta(format!("sandbox-{env_name}"), namespace, l, owner),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![harness]),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(DAEMON_PORT)),
                    protocol: Some("TCP".into()),
                    ..NetworkPolicyPort::default()
                }]),
            }]),
            egress: Some(egress),
        }),
    }
}

#[cfg(test)]
mod tests {
    use corral_api::EnvironmentSpec;

    use super::*;

    fn env(spec: serde_json::Value) -> Environment {
        let spec: EnvironmentSpec = serde_json::from_value(spec).unwrap();
        let mut e = Environment::new("py", spec);
        e.metadata.namespace = Some("team".into());
        e.metadata.uid = Some("env-uid".into());
        e
    }

    fn owner(kind: &str) -> OwnerReference {
        OwnerReference {
            api_version: "corral.dev/v1alpha1".into(),
            kind: kind.into(),
            name: "x".into(),
            uid: "u".into(),
            controller: Some(true),
            ..OwnerReference::default()
        }
    }

    fn session_owner() -> SandboxOwner {
        SandboxOwner::Session {
            name: "s1".into(),
            owner: owner("Session"),
        }
    }

    fn assert_locked_down(pod: &Pod) {
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(
            spec.automount_service_account_token,
            Some(false),
            "no service account token"
        );
        assert_eq!(
            spec.enable_service_links,
            Some(false),
            "no Service addresses in the environment"
        );
        let psc = spec.security_context.as_ref().unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
        let containers = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten());
        for c in containers {
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false), "{}", c.name);
            assert_eq!(sc.privileged, Some(false), "{}", c.name);
            assert_eq!(sc.run_as_non_root, Some(true), "{}", c.name);
            assert_eq!(sc.read_only_root_filesystem, Some(true), "{}", c.name);
            assert_eq!(
                sc.capabilities.as_ref().unwrap().drop.as_deref(),
                Some(&["ALL".to_owned()][..]),
                "{}",
                c.name
            );
            assert_eq!(
                sc.seccomp_profile.as_ref().unwrap().type_,
                "RuntimeDefault",
                "{}",
                c.name
            );
            assert!(
                c.resources.as_ref().and_then(|r| r.limits.as_ref()).is_some(),
                "{} has limits",
                c.name
            );
        }
    }

    fn egress() -> EgressConfig {
        EgressConfig {
            address: "10.96.0.20:3128".into(),
            namespace: "corral-system".into(),
            key: b"0123456789abcdef".to_vec(),
            ca_pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
        }
    }

    #[test]
    fn with_the_egress_proxy_limited_sandboxes_reach_only_the_proxy_under_their_pods_identity() {
        let config = SandboxConfig {
            egress: Some(egress()),
            ..SandboxConfig::default()
        };
        let limited = env(serde_json::json!({
            "config": {"networking": {"type": "limited", "allowedHosts": ["example.com"]}},
            "sandbox": {"env": [{"name": "NO_PROXY", "value": "mirror.internal"}]}
        }));
        let pod = build_sandbox_pod("team", &limited, &session_owner(), "sandbox-s1", &config);
        let c = &pod.spec.as_ref().unwrap().containers[0];
        let values = |name: &str| -> Vec<String> {
            c.env
                .iter()
                .flatten()
                .filter(|e| e.name == name)
                .filter_map(|e| e.value.clone())
                .collect()
        };
        let password = corral_api::egress::proxy_password(b"0123456789abcdef", "team", "sandbox-s1");
        assert_eq!(
            values("HTTPS_PROXY"),
            [format!("http://team.sandbox-s1:{password}@10.96.0.20:3128")]
        );
        assert_eq!(
            values("NO_PROXY").last().map(String::as_str),
            Some("mirror.internal"),
            "the Environment's own setting comes last and wins"
        );
        assert!(
            !format!("{config:?}").contains("0123456789abcdef"),
            "the key is never logged"
        );

        let np = build_network_policy("team", &limited, &owner("Environment"), Some(&egress()));
        let rules = np.spec.unwrap().egress.unwrap();
        assert_eq!(rules.len(), 1, "limited: the proxy and nothing else");
        let peer = &rules[0].to.as_ref().unwrap()[0];
        assert_eq!(
            peer.pod_selector.as_ref().unwrap().match_labels.as_ref().unwrap()[labels::COMPONENT],
            EGRESS_COMPONENT
        );
        let open = build_network_policy(
            "team",
            &env(serde_json::json!({})),
            &owner("Environment"),
            Some(&egress()),
        );
        assert_eq!(
            open.spec.unwrap().egress.unwrap().len(),
            2,
            "unrestricted: the proxy and public addresses"
        );
    }

    #[test]
    fn packages_are_installed_by_a_locked_down_init_container_of_the_sandbox_image() {
        let e = env(serde_json::json!({
            "config": {"packages": {"pip": ["requests==2.32.0"], "apt": ["jq"]}},
            "sandbox": {"image": "python:3.12", "env": [{"name": "PIP_INDEX_URL", "value": "http://mirror/simple"}]}
        }));
        let pod = build_sandbox_pod(
            "team",
            &e,
            &session_owner(),
            "sandbox-s1",
            &SandboxConfig::default(),
        );
        assert_locked_down(&pod);
        let spec = pod.spec.unwrap();
        let inits = spec.init_containers.unwrap();
        assert_eq!(
            inits.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["install-daemon", INSTALL_PACKAGES],
            "the daemon binary is in place before it installs the packages"
        );
        let install = &inits[1];
        assert_eq!(
            install.image.as_deref(),
            Some("python:3.12"),
            "the image's own package managers"
        );
        let env_of = |c: &Container, name: &str| {
            c.env
                .iter()
                .flatten()
                .find(|e| e.name == name)
                .and_then(|e| e.value.clone())
        };
        let spec_json: serde_json::Value =
            serde_json::from_str(&env_of(install, "CORRAL_SANDBOX_PACKAGES").unwrap()).unwrap();
        assert_eq!(spec_json["pip"], serde_json::json!(["requests==2.32.0"]));
        assert_eq!(spec_json["apt"], serde_json::json!(["jq"]));
        assert_eq!(
            env_of(install, "PIP_INDEX_URL").as_deref(),
            Some("http://mirror/simple"),
            "mirrors apply"
        );
        let sandbox = &spec.containers[0];
        assert_eq!(
            env_of(sandbox, "CORRAL_SANDBOX_PACKAGES_DIR").as_deref(),
            Some(PACKAGES_DIR)
        );
        assert_eq!(
            env_of(sandbox, "PIP_INDEX_URL").as_deref(),
            Some("http://mirror/simple")
        );
        let packages_mount = sandbox
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == PACKAGES_DIR)
            .unwrap();
        assert_eq!(
            packages_mount.read_only,
            Some(true),
            "the sandbox cannot alter what was installed"
        );

        let plain = build_sandbox_pod(
            "team",
            &env(serde_json::json!({})),
            &session_owner(),
            "s",
            &SandboxConfig::default(),
        );
        let plain = plain.spec.unwrap();
        assert_eq!(
            plain.init_containers.unwrap().len(),
            1,
            "no packages, no install step"
        );
        assert!(plain.volumes.unwrap().iter().all(|v| v.name != "packages"));
    }

    #[test]
    fn session_pod_is_locked_down_and_runs_the_injected_daemon() {
        let e =
            env(serde_json::json!({ "sandbox": { "image": "python:3.12", "runtimeClassName": "gvisor" } }));
        let pod = build_sandbox_pod(
            "team",
            &e,
            &session_owner(),
            "sandbox-s1",
            &SandboxConfig::default(),
        );
        assert_locked_down(&pod);
        assert_eq!(pod.metadata.name.as_deref(), Some("sandbox-s1"));
        let spec = pod.spec.unwrap();
        assert_eq!(spec.runtime_class_name.as_deref(), Some("gvisor"));
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("python:3.12"));
        assert_eq!(
            c.command.as_deref(),
            Some(&["/corral/bin/corral-sandbox".to_owned()][..])
        );
        let init = &spec.init_containers.unwrap()[0];
        assert_eq!(init.image.as_deref(), Some("corral/sandbox:dev"));
        let labels = pod.metadata.labels.unwrap();
        assert_eq!(labels.get(labels::SESSION).map(String::as_str), Some("s1"));
        assert!(
            !labels.contains_key("corral.dev/redis-client"),
            "sandboxes never reach Redis"
        );
    }

    #[test]
    fn warm_pods_are_locked_down_unassigned_and_ephemeral() {
        let e =
            env(serde_json::json!({ "sandbox": { "workspace": { "type": "persistent", "size": "2Gi" } } }));
        let owner = SandboxOwner::WarmPool {
            suffix: "abc12".into(),
            owner: owner("Environment"),
        };
        let pod = build_sandbox_pod("team", &e, &owner, "warm-py-abc12", &SandboxConfig::default());
        assert_locked_down(&pod);
        let labels = pod.metadata.labels.clone().unwrap();
        assert_eq!(labels.get(WARM_LABEL).map(String::as_str), Some("true"));
        assert!(!labels.contains_key(labels::SESSION));
        let volumes = pod.spec.unwrap().volumes.unwrap();
        let ws = volumes.iter().find(|v| v.name == "workspace").unwrap();
        assert!(
            ws.empty_dir.is_some(),
            "session settings are bound at claim time, not baked into warm pods"
        );
    }

    #[test]
    fn persistent_workspace_uses_the_sessions_claim() {
        let e =
            env(serde_json::json!({ "sandbox": { "workspace": { "type": "persistent", "size": "2Gi" } } }));
        let claim = build_workspace_claim("s1", "team", &e, &owner("Session")).unwrap();
        assert_eq!(claim.metadata.name.as_deref(), Some("workspace-s1"));
        let size = &claim.spec.unwrap().resources.unwrap().requests.unwrap()["storage"];
        assert_eq!(size.0, "2Gi");
        let pod = build_sandbox_pod(
            "team",
            &e,
            &session_owner(),
            "sandbox-s1",
            &SandboxConfig::default(),
        );
        let volumes = pod.spec.unwrap().volumes.unwrap();
        let ws = volumes.iter().find(|v| v.name == "workspace").unwrap();
        assert_eq!(
            ws.persistent_volume_claim.as_ref().unwrap().claim_name,
            "workspace-s1"
        );
        assert!(
            build_workspace_claim("s1", "team", &env(serde_json::json!({})), &owner("Session")).is_none()
        );
    }

    #[test]
    fn network_policy_admits_only_the_harness_and_keeps_internal_ranges_closed() {
        let np = build_network_policy("team", &env(serde_json::json!({})), &owner("Environment"), None);
        let spec = np.spec.unwrap();
        assert_eq!(
            spec.policy_types.as_deref(),
            Some(&["Ingress".to_owned(), "Egress".to_owned()][..])
        );
        let ingress = spec.ingress.unwrap();
        assert_eq!(ingress.len(), 1);
        let from = ingress[0].from.as_ref().unwrap();
        let harness = from[0]
            .pod_selector
            .as_ref()
            .unwrap()
            .match_labels
            .as_ref()
            .unwrap();
        assert_eq!(
            harness.get(labels::COMPONENT).map(String::as_str),
            Some("harness")
        );
        let egress = spec.egress.unwrap();
        let block = egress[0].to.as_ref().unwrap()[0].ip_block.as_ref().unwrap();
        assert_eq!(block.cidr, "0.0.0.0/0");
        for range in ["10.0.0.0/8", "169.254.0.0/16", "192.168.0.0/16"] {
            assert!(
                block.except.as_ref().unwrap().iter().any(|r| r == range),
                "{range}"
            );
        }
        let limited = build_network_policy(
            "team",
            &env(serde_json::json!({ "config": { "networking": { "type": "limited" } } })),
            &owner("Environment"),
            None,
        );
        assert_eq!(
            limited.spec.unwrap().egress,
            Some(vec![]),
            "limited egress is closed until the proxy lands"
        );
    }
}
