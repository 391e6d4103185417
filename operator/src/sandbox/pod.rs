//! A sandbox pod: the locked-down pod that runs the sandbox daemon inside the Environment's image.
//!
//! The daemon gets into any image without the image knowing: an init container copies the static daemon binary
//! from Corral's daemon image into a shared volume, and the sandbox container runs it.

use std::collections::BTreeMap;

use corral_api::Environment;
use k8s_openapi::{
    api::core::v1::{
        Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HTTPGetAction, Pod, PodSecurityContext,
        PodSpec, Probe, ResourceRequirements, SecretVolumeSource, Volume, VolumeMount,
    },
    apimachinery::pkg::{api::resource::Quantity, util::intstr::IntOrString},
};

use super::{
    SandboxConfig,
    contract::{DAEMON_IMAGE_BINARY, DAEMON_PORT, TOKEN_KEY, sandbox_name, vars},
    egress::egress_env,
    naming::{SandboxOwner, meta, sandbox_labels, warm_pod_name},
    packages::{self, PACKAGES_DIR, install_packages},
    workspace,
};
use crate::builders::common::{NONROOT_UID, env_var, locked_down, merge_env, runtime_default_seccomp};

/// Where the daemon's token is mounted.
pub const TOKEN_DIR: &str = "/var/run/corral/token";
/// The sandbox's working directory.
pub const WORKSPACE_DIR: &str = "/workspace";
/// The uid sandbox processes run as.
pub const SANDBOX_UID: i64 = NONROOT_UID;
/// The volume the daemon binary is copied into.
pub const DAEMON_BIN_VOLUME: &str = "corral-bin";
/// Where the daemon binary's volume is mounted.
pub const DAEMON_BIN_DIR: &str = "/corral/bin";
/// The daemon binary inside the sandbox.
pub const DAEMON_PATH: &str = "/corral/bin/corral-sandbox";

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

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

/// The init container that copies the daemon binary into the pod.
fn install_daemon(config: &SandboxConfig) -> Container {
    Container {
        name: "install-daemon".into(),
        image: Some(config.daemon_image.clone()),
        image_pull_policy: Some(config.daemon_image_pull_policy.clone()),
        command: Some(vec!["cp".into(), DAEMON_IMAGE_BINARY.into(), DAEMON_PATH.into()]),
        volume_mounts: Some(vec![mount(DAEMON_BIN_VOLUME, DAEMON_BIN_DIR, false)]),
        security_context: Some(locked_down()),
        resources: Some(ResourceRequirements {
            limits: Some(BTreeMap::from([("memory".to_owned(), Quantity("64Mi".into()))])),
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
) -> Container {
    let probe = Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/healthz".into()),
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
        command: Some(vec![DAEMON_PATH.into()]),
        env: Some(merge_env(
            [
                env_var(vars::ADDR, &format!("0.0.0.0:{DAEMON_PORT}")),
                env_var(vars::TOKEN_FILE, &format!("{TOKEN_DIR}/{TOKEN_KEY}")),
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
                mount("token", TOKEN_DIR, true),
                mount(workspace::VOLUME, WORKSPACE_DIR, false),
                mount("tmp", "/tmp", false),
            ]
            .into_iter()
            .chain(with_packages.then(|| mount(packages::VOLUME, PACKAGES_DIR, true)))
            .collect(),
        ),
        ..Container::default()
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
        SandboxOwner::Session { name, owner } => (
            sandbox_name(name),
            owner,
            workspace::session_volume(name, env, empty_dir(workspace::VOLUME)),
        ),
        // Warm pods start with an ephemeral workspace; a persistent one is bound only to a session's own pod.
        SandboxOwner::WarmPool { suffix, owner } => (
            warm_pod_name(&env_name, suffix),
            owner,
            empty_dir(workspace::VOLUME),
        ),
    };
    let sb = &env.spec.sandbox;
    let image = sb.image.clone().unwrap_or_else(|| config.default_image.clone());
    let resources = sb.resources.clone().unwrap_or_else(default_resources);
    // The proxy settings come first, so that an Environment's own NO_PROXY (an internal mirror) wins.
    let user_env: Vec<EnvVar> = config
        .egress
        .iter()
        .flat_map(|egress| egress_env(egress, namespace, &name))
        .chain(sb.env.iter().map(|e| env_var(&e.name, &e.value)))
        .collect();
    let install = install_packages(env, &image, &user_env, &resources);
    let with_packages = install.is_some();
    let sandbox = sandbox_container(image, env, with_packages, &user_env, resources);
    let token = Volume {
        name: "token".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(token_secret.to_owned()),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
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
            init_containers: Some(std::iter::once(install_daemon(config)).chain(install).collect()),
            containers: vec![sandbox],
            volumes: Some(
                [empty_dir(DAEMON_BIN_VOLUME), token, workspace, empty_dir("tmp")]
                    .into_iter()
                    .chain(
                        with_packages
                            .then(|| [empty_dir(packages::VOLUME), empty_dir(packages::SCRATCH_VOLUME)])
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
}
