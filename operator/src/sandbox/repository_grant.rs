//! Repository tokens in a sandbox's grant (pure): each `github_repository` resource with an
//! `authorizationSecretRef` becomes a credential `repo-<index>` of type `git_repository` (`url`, `token`), which the
//! egress proxy sends to the repository's host only (`corral_api::repository`).

use std::collections::BTreeMap;

use corral_api::{
    Session, conditions::reasons, egress::GRANT_CREDENTIALS_KEY, repository::GRANT_TYPE,
    session::SessionResourceType,
};
use k8s_openapi::{ByteString, api::core::v1::Secret};

/// The names of the Secrets the session's repository resources read their tokens from.
pub fn token_secret_names(session: &Session) -> Vec<String> {
    let mut names: Vec<String> = session
        .spec
        .resources
        .iter()
        .filter(|r| r.kind == SessionResourceType::GithubRepository)
        .filter_map(|r| Some(r.authorization_secret_ref.as_ref()?.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The repository credentials of `session`, by id, from `secrets` (by name); a resource whose Secret or key is
/// missing gets none (its clone then fails as unauthorised, which the harness reports).
pub fn repository_credentials(
    session: &Session,
    secrets: &BTreeMap<String, Secret>,
) -> BTreeMap<String, serde_json::Value> {
    session
        .spec
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == SessionResourceType::GithubRepository)
        .filter_map(|(i, r)| {
            let reference = r.authorization_secret_ref.as_ref()?;
            let secret = secrets.get(&reference.name)?;
            if let Some(why) = corral_api::repository::token_refusal(secret, session.metadata.name.as_deref()?) {
                tracing::warn!(resource = i, %why, "a repository resource names a Secret that is not a repository token");
                return None;
            }
            let data = secret.data.as_ref()?.get(&reference.key)?;
            let token = String::from_utf8(data.0.clone()).ok()?;
            let token = token.trim();
            (!token.is_empty()).then(|| {
                (
                    format!("repo-{i}"),
                    serde_json::json!({ "type": GRANT_TYPE, "url": r.url, "token": token }),
                )
            })
        })
        .collect()
}

/// The session's `RepositoryTokens` condition (ok, reason, message) given the Secrets its repository resources name
/// (by name; a missing one is absent): false naming each resource whose Secret is missing, lacks the key or is not
/// a repository token (`corral_api::repository::token_refusal`), whose clone of a private repository will then fail
/// as unauthorised. `None` when no repository resource names a Secret.
pub fn token_condition(
    session: &Session,
    secrets: &BTreeMap<String, Secret>,
) -> Option<(bool, &'static str, String)> {
    let named: Vec<_> = session
        .spec
        .resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind == SessionResourceType::GithubRepository)
        .filter_map(|(i, r)| {
            Some((
                i,
                r.url.as_deref().unwrap_or_default(),
                r.authorization_secret_ref.as_ref()?,
            ))
        })
        .collect();
    if named.is_empty() {
        return None;
    }
    let session_name = session.metadata.name.as_deref().unwrap_or_default();
    let problems: Vec<(&'static str, String)> = named
        .into_iter()
        .filter_map(|(i, url, reference)| {
            let at = format!("spec.resources[{i}].authorizationSecretRef ({url})");
            let name = &reference.name;
            let Some(secret) = secrets.get(name) else {
                return Some((
                    reasons::SECRET_NOT_FOUND,
                    format!("{at}: Secret {name:?} does not exist"),
                ));
            };
            if let Some(why) = corral_api::repository::token_refusal(secret, session_name) {
                return Some((reasons::SECRET_NOT_ALLOWED, format!("{at}: {why}")));
            }
            let has_key = secret
                .data
                .as_ref()
                .is_some_and(|d| d.contains_key(&reference.key));
            (!has_key).then(|| {
                (
                    reasons::SECRET_KEY_MISSING,
                    format!("{at}: Secret {name:?} has no key {:?}", reference.key),
                )
            })
        })
        .collect();
    match problems.first() {
        None => Some((
            true,
            reasons::READY,
            "every repository token Secret may be used".into(),
        )),
        Some((reason, _)) => {
            let all: Vec<&str> = problems.iter().map(|(_, m)| m.as_str()).collect();
            Some((
                false,
                reason,
                format!(
                    "{}; the token is not sent, so cloning a private repository fails as unauthorised",
                    all.join("; ")
                ),
            ))
        }
    }
}

/// Adds `credentials` to the grant Secret `grant` (built by `super::grant::build_grant`).
pub fn add_to_grant(grant: &mut Secret, credentials: BTreeMap<String, serde_json::Value>) {
    if credentials.is_empty() {
        return;
    }
    let data = grant.data.get_or_insert_with(BTreeMap::new);
    let mut all: BTreeMap<String, serde_json::Value> = data
        .get(GRANT_CREDENTIALS_KEY)
        .and_then(|d| serde_json::from_slice(&d.0).ok())
        .unwrap_or_default();
    all.extend(credentials);
    // A map of strings to JSON values always serialises.
    let bytes = serde_json::to_vec(&all).unwrap_or_default();
    data.insert(GRANT_CREDENTIALS_KEY.to_owned(), ByteString(bytes));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Session {
        let spec: corral_api::SessionSpec = serde_json::from_value(serde_json::json!({
            "agent": {"name": "a"}, "environmentRef": {"name": "e"},
            "resources": [
                {"type": "github_repository", "url": "https://git.example/o/r.git",
                 "authorizationSecretRef": {"name": "sesn-1-repo-0", "key": "token"}},
                {"type": "github_repository", "url": "https://git.example/o/public"},
                {"type": "github_repository", "url": "https://git.example/o/missing",
                 "authorizationSecretRef": {"name": "gone", "key": "token"}},
            ]
        }))
        .unwrap();
        Session::new("sesn-1", spec)
    }

    /// A Secret of type `type_` labelled for `session`, holding `value` at `key`.
    fn secret(type_: &str, session: &str, key: &str, value: &str) -> Secret {
        Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                labels: Some(BTreeMap::from([(
                    corral_api::labels::SESSION.to_owned(),
                    session.to_owned(),
                )])),
                ..Default::default()
            },
            type_: Some(type_.to_owned()),
            data: Some(BTreeMap::from([(
                key.to_owned(),
                ByteString(value.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn each_repository_with_a_token_gets_a_credential_bound_to_its_url() {
        let token = |type_: &str, session: &str| secret(type_, session, "token", "ghp_s3cret\n");
        let own = token(corral_api::repository::TOKEN_SECRET_TYPE, "sesn-1");
        // Review (HIGH): a reference to any other Secret of the namespace (another session's token, a vault
        // credential, a database password) must not be sent to the host the session's author names.
        for other in [
            token(corral_api::repository::TOKEN_SECRET_TYPE, "sesn-2"),
            token("Opaque", "sesn-1"),
        ] {
            let secrets = BTreeMap::from([("sesn-1-repo-0".to_owned(), other)]);
            assert!(repository_credentials(&session(), &secrets).is_empty());
        }
        let secrets = BTreeMap::from([("sesn-1-repo-0".to_owned(), own)]);
        let s = session();
        assert_eq!(token_secret_names(&s), ["gone", "sesn-1-repo-0"]);
        let credentials = repository_credentials(&s, &secrets);
        assert_eq!(
            credentials,
            BTreeMap::from([(
                "repo-0".to_owned(),
                serde_json::json!({"type": "git_repository", "url": "https://git.example/o/r.git", "token": "ghp_s3cret"})
            )]),
            "a public repository and a missing Secret get none"
        );

        let mut grant = Secret {
            data: Some(BTreeMap::from([(
                GRANT_CREDENTIALS_KEY.to_owned(),
                ByteString(br#"{"vcrd-1": {"type": "environment_variable"}}"#.to_vec()),
            )])),
            ..Secret::default()
        };
        add_to_grant(&mut grant, credentials);
        let all: serde_json::Value =
            serde_json::from_slice(&grant.data.unwrap()[GRANT_CREDENTIALS_KEY].0).unwrap();
        assert_eq!(
            all["vcrd-1"]["type"], "environment_variable",
            "vault credentials stay"
        );
        assert_eq!(all["repo-0"]["token"], "ghp_s3cret");
    }

    #[test]
    fn a_refused_missing_or_keyless_token_secret_is_a_false_condition_naming_the_resource() {
        let kind = corral_api::repository::TOKEN_SECRET_TYPE;
        let s = session();
        let own =
            |key: &str| BTreeMap::from([("sesn-1-repo-0".to_owned(), secret(kind, "sesn-1", key, "t"))]);

        // resources[2]'s Secret "gone" is missing.
        let (ok, reason, message) = token_condition(&s, &own("token")).unwrap();
        assert!(!ok);
        assert_eq!(reason, reasons::SECRET_NOT_FOUND);
        assert!(
            message.starts_with(
                "spec.resources[2].authorizationSecretRef (https://git.example/o/missing): Secret \"gone\""
            ),
            "{message}"
        );
        assert!(!message.contains("resources[0]"), "{message}");

        let mut all = own("token");
        all.insert("gone".into(), secret(kind, "sesn-1", "token", "t"));
        assert_eq!(
            token_condition(&s, &all),
            Some((
                true,
                reasons::READY,
                "every repository token Secret may be used".into()
            ))
        );

        // Another session's token: refused, named, and why.
        all.insert("sesn-1-repo-0".into(), secret(kind, "sesn-2", "token", "t"));
        let (ok, reason, message) = token_condition(&s, &all).unwrap();
        assert!(!ok);
        assert_eq!(reason, reasons::SECRET_NOT_ALLOWED);
        assert!(
            message.contains("resources[0]") && message.contains("another session"),
            "{message}"
        );

        // The right Secret without the key.
        all.insert("sesn-1-repo-0".into(), secret(kind, "sesn-1", "other", "t"));
        let (ok, reason, message) = token_condition(&s, &all).unwrap();
        assert!(!ok);
        assert_eq!(reason, reasons::SECRET_KEY_MISSING);
        assert!(message.contains("no key \"token\""), "{message}");

        let public: corral_api::SessionSpec = serde_json::from_value(serde_json::json!({
            "agent": {"name": "a"}, "environmentRef": {"name": "e"},
            "resources": [{"type": "github_repository", "url": "https://git.example/o/public"}]
        }))
        .unwrap();
        assert_eq!(token_condition(&Session::new("sesn-1", public), &all), None);
    }
}
