//! The rules of a Session's spec, and of a change to it.

use super::{
    SpecError,
    common::{http_url, local_ref, secret_ref, validate_budget, validate_metadata},
    rule,
};
use crate::session::{CheckoutType, FILE_MOUNT_PATH_RULE, SessionResource, SessionResourceType, SessionSpec};

/// Checks a Session spec: its CEL rules, and at most 16 vaults (the schema's limit).
pub fn validate_session(spec: &SessionSpec) -> Result<(), SpecError> {
    rule(
        !spec.agent.name.is_empty(),
        || "spec.agent.name".into(),
        "agent name must not be empty",
    )?;
    rule(
        spec.agent.version.is_none_or(|v| v >= 1),
        || "spec.agent.version".into(),
        "agent version must be at least 1",
    )?;
    local_ref("spec.environmentRef", &spec.environment_ref)?;
    validate_metadata("spec.metadata", &spec.metadata)?;
    rule(
        spec.vault_refs.len() <= 16,
        || "spec.vaultRefs".into(),
        "at most 16 vaults",
    )?;
    for (i, vault) in spec.vault_refs.iter().enumerate() {
        local_ref(&format!("spec.vaultRefs[{i}]"), vault)?;
    }
    rule(
        spec.resources.len() <= 64,
        || "spec.resources".into(),
        "at most 64 resources",
    )?;
    for (i, resource) in spec.resources.iter().enumerate() {
        resource_rules(&format!("spec.resources[{i}]"), resource)?;
    }
    if let Some(budget) = &spec.budget {
        validate_budget("spec.budget", budget)?;
    }
    Ok(())
}

/// Checks a change of a Session spec: the new spec, and the fields that cannot change.
pub fn validate_session_update(old: &SessionSpec, new: &SessionSpec) -> Result<(), SpecError> {
    rule(
        old.agent == new.agent,
        || "spec.agent".into(),
        "agent is immutable",
    )?;
    rule(
        old.environment_ref == new.environment_ref,
        || "spec.environmentRef".into(),
        "environmentRef is immutable",
    )?;
    rule(
        old.vault_refs == new.vault_refs,
        || "spec.vaultRefs".into(),
        "vaultRefs is immutable",
    )?;
    validate_session(new)
}

fn resource_rules(at: &str, r: &SessionResource) -> Result<(), SpecError> {
    let repo_fields_ok = match r.kind {
        SessionResourceType::GithubRepository => r.url.is_some(),
        SessionResourceType::File => {
            r.url.is_none() && r.checkout.is_none() && r.authorization_secret_ref.is_none()
        }
    };
    rule(
        repo_fields_ok,
        || at.to_owned(),
        "url, checkout and authorizationSecretRef apply only to github_repository resources, which need url",
    )?;
    rule(
        (r.kind == SessionResourceType::File) == r.file_id.is_some(),
        || at.to_owned(),
        "fileId applies only to file resources, which need it",
    )?;
    rule(
        r.url.as_deref().is_none_or(http_url),
        || format!("{at}.url"),
        "repository url must be an http(s) URL",
    )?;
    rule(
        r.mount_path.as_deref().is_none_or(|p| p.starts_with('/')),
        || format!("{at}.mountPath"),
        "mountPath must be absolute",
    )?;
    if let Some(c) = &r.checkout {
        let ok = match c.kind {
            CheckoutType::Branch => c.name.is_some() && c.sha.is_none(),
            CheckoutType::Commit => c.sha.is_some() && c.name.is_none(),
        };
        rule(
            ok,
            || format!("{at}.checkout"),
            "a branch checkout needs name, a commit checkout needs sha",
        )?;
    }
    if let Some(secret) = &r.authorization_secret_ref {
        secret_ref(&format!("{at}.authorizationSecretRef"), secret)?;
    }
    rule(
        r.kind != SessionResourceType::File || r.mount_path.as_deref().is_none_or(file_mount_path_ok),
        || at.to_owned(),
        FILE_MOUNT_PATH_RULE,
    )
}

/// Whether `path` may receive a `file` resource: under one of [`crate::session::FILE_MOUNT_ROOTS`], naming a file by plain
/// segments (the schema's CEL rule; the sandbox daemon holds paths to the same rule).
pub fn file_mount_path_ok(path: &str) -> bool {
    corral_sandbox_protocol::pod::file_resource_path_ok(path)
}
