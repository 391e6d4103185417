//! The init container that installs an Environment's `packages` with the sandbox image's own package managers.

use corral_api::Environment;
use k8s_openapi::api::core::v1::{Container, EnvVar, ResourceRequirements};

use super::contract::{INSTALL_PACKAGES_COMMAND, vars};
use super::pod::{DAEMON_BIN_DIR, daemon_path, mount};
use crate::builders::common::{env_var, locked_down, merge_env};

/// The name of the init container that installs the Environment's packages.
pub const INSTALL_PACKAGES: &str = "install-packages";
/// Where the Environment's packages are installed (an emptyDir the sandbox container mounts read-only).
pub const PACKAGES_DIR: &str = "/opt/corral/packages";
/// The volume holding the installed packages.
pub const VOLUME: &str = "packages";
/// The installation's scratch volume (its home and temporary files).
pub const SCRATCH_VOLUME: &str = "packages-scratch";
/// Where the scratch volume is mounted.
const SCRATCH_DIR: &str = "/scratch";

/// Whether the Environment lists any package.
pub fn wanted(env: &Environment) -> bool {
    let p = &env.spec.config.packages;
    [&p.apt, &p.cargo, &p.gem, &p.go, &p.npm, &p.pip]
        .iter()
        .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
}

/// The init container installing the Environment's `packages` with the sandbox image's own package managers, as
/// the sandbox's user, into [`PACKAGES_DIR`]; `None` when there are none. Its failure reason (the termination
/// message) surfaces in the Session's `SandboxReady` condition.
pub fn install_packages(
    env: &Environment,
    image: &str,
    user_env: &[EnvVar],
    resources: &ResourceRequirements,
) -> Option<Container> {
    if !wanted(env) {
        return None;
    }
    let spec = serde_json::to_string(&env.spec.config.packages).unwrap_or_default();
    Some(Container {
        name: INSTALL_PACKAGES.into(),
        image: Some(image.to_owned()),
        image_pull_policy: env.spec.sandbox.image_pull_policy.clone(),
        command: Some(vec![daemon_path(), INSTALL_PACKAGES_COMMAND.into()]),
        env: Some(merge_env(
            [
                env_var(vars::PACKAGES, &spec),
                env_var(vars::PACKAGES_DIR, PACKAGES_DIR),
                env_var(vars::PACKAGES_SCRATCH, SCRATCH_DIR),
                env_var("HOME", &format!("{SCRATCH_DIR}/home")),
                env_var("TMPDIR", SCRATCH_DIR),
            ]
            .into_iter()
            .chain(user_env.iter().cloned()),
        )),
        volume_mounts: Some(vec![
            mount(super::pod::DAEMON_BIN_VOLUME, DAEMON_BIN_DIR, true),
            mount(VOLUME, PACKAGES_DIR, false),
            mount(SCRATCH_VOLUME, SCRATCH_DIR, false),
        ]),
        resources: Some(resources.clone()),
        security_context: Some(locked_down()),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        ..Container::default()
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Container;

    use super::*;
    use crate::sandbox::{SandboxConfig, build_sandbox_pod, test_support::*};

    #[test]
    fn packages_are_installed_by_a_locked_down_init_container_of_the_sandbox_image() {
        let e = env(serde_json::json!({
            "config": {"packages": {"pip": ["requests==2.32.0"], "apt": ["jq"]}},
            "sandbox": {"image": "python:3.12", "env": [{"name": "PIP_INDEX_URL", "value": "http://mirror/simple"}]}
        }));
        let pod = session_pod(&e);
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
}
