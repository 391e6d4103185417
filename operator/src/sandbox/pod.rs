//! A sandbox pod: the locked-down pod that runs the sandbox daemon inside the Environment's image.
//!
//! The daemon gets into any image without the image knowing: an init container copies the static daemon binary
//! from Corral's daemon image into a shared volume, and the sandbox container runs it.

use std::collections::BTreeMap;

use corral_api::Environment;
use k8s_openapi::{
    api::core::v1::{
        Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, Pod, PodSecurityContext,
        PodSpec, Probe, ResourceRequirements, Volume, VolumeMount,
    },
    apimachinery::pkg::{api::resource::Quantity, util::intstr::IntOrString},
};

use super::{
    SandboxConfig,
    contract::{BINARY_NAME, DAEMON_IMAGE_BINARY, DAEMON_PORT, HEALTH_PATH, sandbox_name, vars},
    egress::egress_env,
    naming::{SandboxOwner, meta, sandbox_labels, warm_pod_name},
    packages::{self, PACKAGES_DIR, install_packages},
    storage::{DAEMON_BIN_SIZE, EPHEMERAL_STORAGE, ephemeral_limit, with_ephemeral_storage},
    workspace,
};
use crate::builders::common::{NONROOT_UID, env_var, locked_down, merge_env, runtime_default_seccomp};

/// The sandbox's working directory.
pub const WORKSPACE_DIR: &str = "/workspace";
/// The uid sandbox processes run as.
pub const SANDBOX_UID: i64 = NONROOT_UID;
/// The volume of the session's file resources (the root filesystem is read-only).
pub const SESSION_FILES_VOLUME: &str = "session-files";
/// Where it is mounted: file resources land in `uploads/` by default (docs/files.md).
pub const SESSION_FILES_DIR: &str = "/mnt/session";
/// The volume the daemon binary is copied into.
pub const DAEMON_BIN_VOLUME: &str = "corral-bin";
/// Where the daemon binary's volume is mounted.
pub const DAEMON_BIN_DIR: &str = "/corral/bin";
/// The daemon binary inside the sandbox: its protocol name in the binary volume.
pub fn daemon_path() -> String {
    format!("{DAEMON_BIN_DIR}/{BINARY_NAME}")
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

/// A volume mount.
pub fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

/// An emptyDir volume that may hold up to `size` (the kubelet evicts the pod when it holds more).
fn empty_dir(name: &str, size: &Quantity) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: Some(size.clone()),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The init container that copies the daemon binary into the pod.
fn install_daemon(config: &SandboxConfig) -> Container {
    Container {
        name: "install-daemon".into(),
        image: Some(config.daemon_image.clone()),
        image_pull_policy: Some(config.daemon_image_pull_policy.clone()),
        command: Some(vec!["cp".into(), DAEMON_IMAGE_BINARY.into(), daemon_path()]),
        volume_mounts: Some(vec![mount(DAEMON_BIN_VOLUME, DAEMON_BIN_DIR, false)]),
        security_context: Some(locked_down()),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([
                ("memory".to_owned(), Quantity("64Mi".into())),
                (EPHEMERAL_STORAGE.to_owned(), Quantity(DAEMON_BIN_SIZE.into())),
            ])),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    }
}

/// The container running the daemon in the Environment's image.
fn sandbox_container(
    image: String,
    env: &Environment,
    with_packages: bool,
    user_env: &[EnvVar],
    resources: ResourceRequirements,
    token_sha256: &str,
) -> Container {
    let probe = Probe {
        http_get: Some(HTTPGetAction {
            path: Some(HEALTH_PATH.into()),
            port: IntOrString::Int(DAEMON_PORT),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(2),
        ..Probe::default()
    };
    Container {
        name: "sandbox".into(),
        image: Some(image),
        image_pull_policy: env.spec.sandbox.image_pull_policy.clone(),
        command: Some(vec![daemon_path()]),
        env: Some(merge_env(
            [
                env_var(vars::ADDR, &format!("0.0.0.0:{DAEMON_PORT}")),
                env_var(vars::TOKEN_SHA256, token_sha256),
                env_var(vars::WORKSPACE, WORKSPACE_DIR),
                env_var("HOME", WORKSPACE_DIR),
                env_var("TMPDIR", "/tmp"),
            ]
            .into_iter()
            .chain(with_packages.then(|| env_var(vars::PACKAGES_DIR, PACKAGES_DIR)))
            .chain(user_env.iter().cloned()),
        )),
        ports: Some(vec![ContainerPort {
            name: Some("daemon".into()),
            container_port: DAEMON_PORT,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(probe),
        resources: Some(resources),
        security_context: Some(locked_down()),
        working_dir: Some(WORKSPACE_DIR.into()),
        volume_mounts: Some(
            [
                mount(DAEMON_BIN_VOLUME, DAEMON_BIN_DIR, true),
                mount(workspace::VOLUME, WORKSPACE_DIR, false),
                mount("tmp", "/tmp", false),
                mount(SESSION_FILES_VOLUME, SESSION_FILES_DIR, false),
            ]
            .into_iter()
            .chain(with_packages.then(|| mount(packages::VOLUME, PACKAGES_DIR, true)))
            .collect(),
        ),
        ..Container::default()
    }
}

/// Builds a sandbox pod for `owner` from the Environment. Its daemon accepts the token whose SHA-256 is
/// `token_sha256` (the token itself is in Redis, never in the pod or the namespace).
pub fn build_sandbox_pod(
    namespace: &str,
    env: &Environment,
    owner: &SandboxOwner,
    token_sha256: &str,
    config: &SandboxConfig,
) -> Pod {
    let env_name = env.metadata.name.clone().unwrap_or_default();
    let sb = &env.spec.sandbox;
    let resources = with_ephemeral_storage(
        sb.resources.clone().unwrap_or_else(default_resources),
        &config.storage,
    );
    // The workspace and the packages may each take the whole disk budget of the sandbox, no more.
    let budget = ephemeral_limit(&resources).unwrap_or_else(|| Quantity(config.storage.limit.clone()));
    let tmp = Quantity(config.storage.tmp.clone());
    let (name, owner_ref, workspace) = match owner {
        SandboxOwner::Session { name, owner } => (
            sandbox_name(name),
            owner,
            workspace::session_volume(name, env, empty_dir(workspace::VOLUME, &budget)),
        ),
        // Warm pods start with an ephemeral workspace; a persistent one is bound only to a session's own pod.
        SandboxOwner::WarmPool { suffix, owner } => (
            warm_pod_name(&env_name, suffix),
            owner,
            empty_dir(workspace::VOLUME, &budget),
        ),
    };
    let image = sb.image.clone().unwrap_or_else(|| config.default_image.clone());
    // The proxy settings come first, so that an Environment's own NO_PROXY (an internal mirror) wins.
    let user_env: Vec<EnvVar> = config
        .egress
        .iter()
        .flat_map(|egress| egress_env(egress, namespace, &name))
        .chain(sb.env.iter().map(|e| env_var(&e.name, &e.value)))
        .collect();
    let install = install_packages(env, &image, &user_env, &resources);
    let with_packages = install.is_some();
    let sandbox = sandbox_container(image, env, with_packages, &user_env, resources, token_sha256);
    Pod {
        metadata: meta(name, namespace, sandbox_labels(&env_name, owner), owner_ref),
        spec: Some(PodSpec {
            // No Kubernetes credentials and no Service addresses (Redis, the API) inside the sandbox.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            restart_policy: Some("Never".into()),
            runtime_class_name: config.policy.runtime_class(sb),
            priority_class_name: config.priority_class.clone(),
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
            init_containers: Some(std::iter::once(install_daemon(config)).chain(install).collect()),
            containers: vec![sandbox],
            volumes: Some(
                [
                    empty_dir(DAEMON_BIN_VOLUME, &Quantity(DAEMON_BIN_SIZE.into())),
                    workspace,
                    empty_dir("tmp", &tmp),
                    empty_dir(SESSION_FILES_VOLUME, &budget),
                ]
                .into_iter()
                .chain(
                    with_packages
                        .then(|| {
                            [
                                empty_dir(packages::VOLUME, &budget),
                                empty_dir(packages::SCRATCH_VOLUME, &tmp),
                            ]
                        })
                        .into_iter()
                        .flatten(),
                )
                .collect(),
            ),
            termination_grace_period_seconds: Some(5),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::{naming::WARM_LABEL, test_support::*};
    use corral_api::labels;

    #[test]
    fn session_pod_is_locked_down_and_runs_the_injected_daemon() {
        let e =
            env(serde_json::json!({ "sandbox": { "image": "python:3.12", "runtimeClassName": "gvisor" } }));
        let pod = session_pod(&e);
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
    fn sandboxes_get_the_configured_priority_class_or_none() {
        let e = env(serde_json::json!({ "sandbox": {} }));
        let owner = SandboxOwner::WarmPool {
            suffix: "abc12".into(),
            owner: owner("Environment"),
        };
        let config = SandboxConfig {
            priority_class: Some("corral-sandbox".into()),
            ..SandboxConfig::default()
        };
        let pod = build_sandbox_pod("team", &e, &owner, "digest", &config);
        assert_eq!(
            pod.spec.unwrap().priority_class_name.as_deref(),
            Some("corral-sandbox")
        );
        let pod = build_sandbox_pod("team", &e, &owner, "digest", &SandboxConfig::default());
        assert_eq!(pod.spec.unwrap().priority_class_name, None);
    }

    #[test]
    fn warm_pods_are_locked_down_unassigned_and_ephemeral() {
        let e =
            env(serde_json::json!({ "sandbox": { "workspace": { "type": "persistent", "size": "2Gi" } } }));
        let owner = SandboxOwner::WarmPool {
            suffix: "abc12".into(),
            owner: owner("Environment"),
        };
        let digest = corral_sandbox_protocol::pod::token_sha256("the-token-of-warm-py-abc12");
        let pod = build_sandbox_pod("team", &e, &owner, &digest, &SandboxConfig::default());
        assert_locked_down(&pod);
        let env = pod.spec.as_ref().unwrap().containers[0].env.clone().unwrap();
        let value = |name: &str| env.iter().find(|v| v.name == name).and_then(|v| v.value.clone());
        assert_eq!(
            value(vars::TOKEN_SHA256),
            Some(digest),
            "the daemon gets the digest"
        );
        assert_eq!(value(vars::TOKEN), None, "never the token");
        assert_eq!(value(vars::TOKEN_FILE), None);
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
    fn every_volume_is_bounded_and_every_container_has_an_ephemeral_storage_limit() {
        let e = env(serde_json::json!({"config": {"packages": {"pip": ["requests"]}}}));
        for owner in [
            session_owner(),
            SandboxOwner::WarmPool {
                suffix: "abc12".into(),
                owner: owner("Environment"),
            },
        ] {
            let spec = build_sandbox_pod("team", &e, &owner, "t", &SandboxConfig::default())
                .spec
                .unwrap();
            let volumes = spec.volumes.unwrap();
            let sizes: BTreeMap<&str, &str> = volumes
                .iter()
                .filter_map(|v| {
                    Some((
                        v.name.as_str(),
                        v.empty_dir.as_ref()?.size_limit.as_ref()?.0.as_str(),
                    ))
                })
                .collect();
            assert_eq!(
                sizes,
                BTreeMap::from([
                    ("corral-bin", "256Mi"),
                    ("packages", "4Gi"),
                    ("packages-scratch", "1Gi"),
                    ("session-files", "4Gi"),
                    ("tmp", "1Gi"),
                    ("workspace", "4Gi"),
                ])
            );
            assert!(
                volumes
                    .iter()
                    .all(|v| v.empty_dir.is_none() || sizes.contains_key(v.name.as_str())),
                "no emptyDir without a sizeLimit"
            );
            for c in spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
            {
                let r = c.resources.as_ref().unwrap();
                assert!(
                    r.limits.as_ref().unwrap().contains_key(EPHEMERAL_STORAGE),
                    "{}",
                    c.name
                );
            }
            let sandbox = spec.containers[0].resources.clone().unwrap();
            assert_eq!(sandbox.requests.unwrap()[EPHEMERAL_STORAGE].0, "128Mi");
            assert_eq!(sandbox.limits.unwrap()[EPHEMERAL_STORAGE].0, "4Gi");
        }
    }

    #[test]
    fn an_environments_own_disk_limit_sizes_its_workspace_and_the_operator_flags_the_rest() {
        let e = env(serde_json::json!({"sandbox": {"resources": {
            "requests": {"ephemeral-storage": "2Gi"}, "limits": {"memory": "2Gi", "ephemeral-storage": "20Gi"}}}}));
        let config = SandboxConfig {
            storage: crate::sandbox::storage::StorageDefaults {
                tmp: "256Mi".into(),
                ..Default::default()
            },
            ..SandboxConfig::default()
        };
        let spec = build_sandbox_pod("team", &e, &session_owner(), "t", &config)
            .spec
            .unwrap();
        let size = |name: &str| {
            let v = spec.volumes.iter().flatten().find(|v| v.name == name).unwrap();
            v.empty_dir.as_ref().unwrap().size_limit.clone().unwrap().0
        };
        assert_eq!(size("workspace"), "20Gi");
        assert_eq!(size("tmp"), "256Mi");
        let limits = spec.containers[0].resources.clone().unwrap().limits.unwrap();
        assert_eq!(limits["ephemeral-storage"].0, "20Gi");
        assert_eq!(limits["memory"].0, "2Gi");
    }

    #[test]
    fn the_policys_default_runtime_class_applies_when_the_environment_names_none() {
        let config = SandboxConfig {
            policy: crate::sandbox::policy::SandboxPolicy::parse(
                r#"{"runtimeClasses": ["gvisor", "kata"], "defaultRuntimeClass": "gvisor"}"#,
            )
            .unwrap(),
            ..SandboxConfig::default()
        };
        let runtime = |spec: serde_json::Value| {
            build_sandbox_pod("team", &env(spec), &session_owner(), "t", &config)
                .spec
                .unwrap()
                .runtime_class_name
        };
        assert_eq!(runtime(serde_json::json!({})).as_deref(), Some("gvisor"));
        assert_eq!(
            runtime(serde_json::json!({"sandbox": {"runtimeClassName": "kata"}})).as_deref(),
            Some("kata")
        );
        let plain = build_sandbox_pod(
            "team",
            &env(serde_json::json!({})),
            &session_owner(),
            "t",
            &SandboxConfig::default(),
        );
        assert_eq!(
            plain.spec.unwrap().runtime_class_name,
            None,
            "no policy, no RuntimeClass"
        );
    }
}
