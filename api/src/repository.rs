//! Repository resources (`github_repository`, any http(s) git remote): the names shared by the gateway (which
//! stores a token sent in an API body), the operator (which hands the token to the egress proxy in the sandbox's
//! grant), the proxy (which sends it to the repository's host) and the harness (which clones into the sandbox).
//! The token itself never enters the sandbox. Pure; no I/O.

use k8s_openapi::api::core::v1::Secret;

use crate::{labels, model_key, session::SessionResource};

/// [`model_key::CREDENTIAL_LABEL`] value of a repository token a person made for `authorizationSecretRef` (GitOps).
pub const CREDENTIAL_REPOSITORY: &str = "repository";

/// The `corral.dev/object` label value of a Secret the gateway writes for an `authorization_token`.
pub const TOKEN_OBJECT: &str = "repository-token";

/// The Secret type of those Secrets.
pub const TOKEN_SECRET_TYPE: &str = "corral.dev/repository-token";

/// The data key holding the token.
pub const TOKEN_KEY: &str = "token";

/// The `type` of a repository credential in an egress grant: `{"type": "git_repository", "url", "token"}`.
pub const GRANT_TYPE: &str = "git_repository";

/// Why `secret` cannot be the token of a repository resource of session `session`, as a sentence naming it, or
/// `None` when it may. The token is sent to the repository's host, a server the session's author chooses, so a
/// reference reaches only Secrets meant as repository tokens: one the gateway wrote for this very session (an
/// `authorization_token`), or one labelled [`model_key::CREDENTIAL_LABEL`]`=`[`CREDENTIAL_REPOSITORY`] by whoever
/// made it; never a vault credential, another session's token or any Secret Corral keeps for itself.
pub fn token_refusal(secret: &Secret, session: &str) -> Option<String> {
    if secret.type_.as_deref() == Some(TOKEN_SECRET_TYPE) {
        let name = secret.metadata.name.as_deref().unwrap_or_default();
        return (model_key::label(secret, labels::SESSION) != Some(session)).then(|| {
            format!(
                "Secret {name:?} holds another session's repository token and is never readable by this one"
            )
        });
    }
    model_key::credential_refusal(secret, CREDENTIAL_REPOSITORY, "repository token")
}

/// Why `secret` cannot be the token of an Agent's `gitRepository` skill, or `None` when it may: only a Secret
/// labelled [`model_key::CREDENTIAL_LABEL`]`=`[`CREDENTIAL_REPOSITORY`] (never a session's token, a vault
/// credential or a Secret Corral keeps for itself), since the token goes to a host the Agent's author names.
pub fn skill_token_refusal(secret: &Secret) -> Option<String> {
    model_key::credential_refusal(secret, CREDENTIAL_REPOSITORY, "repository token")
}

/// The name of the Secret holding the token of resource `index` of session `session`.
pub fn token_secret_name(session: &str, index: usize) -> String {
    format!("{session}-repo-{index}")
}

/// The repository's name in `url`: its last path segment without `.git` (`repo` when there is none).
pub fn repository_name(url: &str) -> String {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default();
    let name = last.strip_suffix(".git").unwrap_or(last);
    if name.is_empty() || name == "." || name == ".." {
        "repo".to_owned()
    } else {
        name.to_owned()
    }
}

/// Where a repository resource appears in the sandbox: its `mountPath`, or `/workspace/<repo-name>`.
pub fn mount_path(resource: &SessionResource) -> String {
    resource.mount_path.clone().unwrap_or_else(|| {
        format!(
            "/workspace/{}",
            repository_name(resource.url.as_deref().unwrap_or_default())
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault;

    fn secret(type_: Option<&str>, labels: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("s".into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..Default::default()
            },
            type_: type_.map(str::to_owned),
            ..Secret::default()
        }
    }

    #[test]
    fn a_repository_token_reference_reaches_only_repository_tokens() {
        let own = secret(Some(TOKEN_SECRET_TYPE), &[(labels::SESSION, "sesn-1")]);
        assert_eq!(token_refusal(&own, "sesn-1"), None);
        assert!(token_refusal(&own, "sesn-2").unwrap().contains("another session"));
        let labelled = secret(None, &[(model_key::CREDENTIAL_LABEL, CREDENTIAL_REPOSITORY)]);
        assert_eq!(token_refusal(&labelled, "sesn-1"), None);
        for refused in [
            secret(None, &[]),
            secret(Some("Opaque"), &[(model_key::CREDENTIAL_LABEL, "model")]),
            secret(
                Some(vault::CREDENTIAL_SECRET_TYPE),
                &[(model_key::CREDENTIAL_LABEL, CREDENTIAL_REPOSITORY)],
            ),
            secret(
                None,
                &[
                    (vault::OBJECT, "grant"),
                    (model_key::CREDENTIAL_LABEL, CREDENTIAL_REPOSITORY),
                ],
            ),
            secret(
                None,
                &[
                    (labels::MANAGED_BY, labels::OPERATOR_FIELD_MANAGER),
                    (model_key::CREDENTIAL_LABEL, CREDENTIAL_REPOSITORY),
                ],
            ),
            secret(Some(TOKEN_SECRET_TYPE), &[]),
        ] {
            assert!(token_refusal(&refused, "sesn-1").is_some(), "{refused:?}");
        }
    }

    #[test]
    fn the_repository_name_is_the_last_path_segment_without_git() {
        assert_eq!(repository_name("https://github.com/o/r.git"), "r");
        assert_eq!(repository_name("https://github.com/o/r/"), "r");
        assert_eq!(repository_name("http://git.ns.svc:8080/repo.git?x=1"), "repo");
        assert_eq!(repository_name("https://host"), "repo");
        assert_eq!(repository_name("https://host/.."), "repo");
        assert_eq!(token_secret_name("sesn-01abc", 2), "sesn-01abc-repo-2");
    }
}
