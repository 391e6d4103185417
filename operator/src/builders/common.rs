//! Pieces every Corral pod shares: the locked-down security context and environment variable helpers.

use k8s_openapi::api::core::v1::{
    Capabilities, EnvVar, EnvVarSource, ObjectFieldSelector, SeccompProfile, SecurityContext,
};

/// The uid (and gid) Corral's own containers and sandboxes run as.
pub const NONROOT_UID: i64 = 65532;

/// The container runtime's default seccomp profile.
pub fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    }
}

/// A container security context with nothing to escalate: non-root, no capabilities, no privilege escalation,
/// read-only root filesystem, RuntimeDefault seccomp.
pub fn locked_down() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(NONROOT_UID),
        run_as_group: Some(NONROOT_UID),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

/// `vars` with one entry per name: the last one given wins, in the order names first appear (a container may not
/// list a name twice, and server-side apply refuses such a pod).
pub fn merge_env(vars: impl IntoIterator<Item = EnvVar>) -> Vec<EnvVar> {
    let mut out: Vec<EnvVar> = Vec::new();
    for var in vars {
        match out.iter_mut().find(|v| v.name == var.name) {
            Some(existing) => *existing = var,
            None => out.push(var),
        }
    }
    out
}

/// An environment variable with a literal value.
pub fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

/// An environment variable from a field of the pod (downward API), such as `metadata.name`.
pub fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_later_variable_of_the_same_name_wins_in_place() {
        let merged = super::merge_env([
            super::env_var("A", "1"),
            super::env_var("B", "2"),
            super::env_var("A", "3"),
        ]);
        let pairs: Vec<(String, String)> = merged
            .into_iter()
            .map(|v| (v.name, v.value.unwrap_or_default()))
            .collect();
        assert_eq!(pairs, [("A".into(), "3".into()), ("B".into(), "2".into())]);
    }
}
