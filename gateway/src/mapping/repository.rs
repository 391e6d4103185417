//! Repository resources sent with an `authorization_token` (as the Managed Agents SDK sends them): the token is
//! stored write-only in a Secret of the session's namespace, owned by the session, and the resource names it in
//! `authorizationSecretRef` exactly as a GitOps user would. The API never shows the token again.

use corral_api::{
    Session, SessionSpec,
    common::SecretKeyRef,
    labels,
    repository::{TOKEN_KEY, TOKEN_OBJECT, TOKEN_SECRET_TYPE, token_secret_name},
    vault,
};
use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use kube::Resource;

use super::session::{ResourceParam, SessionCreate};
use crate::error::ApiError;

/// The longest token accepted (GitHub's tokens are under 300 characters).
pub const MAX_TOKEN_LEN: usize = 4096;

/// The token of resource `param`, checked: `None` when it carries none. `prefix` names the resource in errors
/// (`resources[0]`, or empty for the resources endpoint).
pub fn token<'a>(param: &'a ResourceParam, prefix: &str) -> Result<Option<&'a str>, ApiError> {
    let ResourceParam::GithubRepository {
        authorization_token: Some(token),
        authorization_secret_ref,
        ..
    } = param
    else {
        return Ok(None);
    };
    let at = if prefix.is_empty() {
        "authorization_token".to_owned()
    } else {
        format!("{prefix}.authorization_token")
    };
    if authorization_secret_ref.is_some() {
        return Err(ApiError::field(
            &at,
            "send either authorization_token or authorization_secret_ref, not both",
        ));
    }
    check_token(token, &at)?;
    Ok(Some(token.as_str()))
}

/// Checks a token's form (1 to [`MAX_TOKEN_LEN`] characters, no whitespace or control character); `at` names the
/// field in errors.
pub fn check_token(token: &str, at: &str) -> Result<(), ApiError> {
    if token.is_empty() || token.chars().count() > MAX_TOKEN_LEN {
        return Err(ApiError::field(
            at,
            format!("must be 1 to {MAX_TOKEN_LEN} characters"),
        ));
    }
    if token.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ApiError::field(
            at,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

/// Points every resource of `spec` sent with a token at the Secret [`token_secrets`] writes for it.
pub fn bind_tokens(spec: &mut SessionSpec, req: &SessionCreate, session: &str) -> Result<(), ApiError> {
    for (i, param) in req.resources.iter().flatten().enumerate() {
        if token(param, &format!("resources[{i}]"))?.is_some()
            && let Some(resource) = spec.resources.get_mut(i)
        {
            resource.authorization_secret_ref = Some(SecretKeyRef {
                name: token_secret_name(session, i),
                key: TOKEN_KEY.to_owned(),
            });
        }
    }
    Ok(())
}

/// The Secrets holding the tokens `req` carries for the created `session`, owned by it (deleted with it).
pub fn token_secrets(session: &Session, req: &SessionCreate) -> Result<Vec<Secret>, ApiError> {
    let name = session.metadata.name.clone().unwrap_or_default();
    let mut secrets = Vec::new();
    for (i, param) in req.resources.iter().flatten().enumerate() {
        if let Some(token) = token(param, &format!("resources[{i}]"))? {
            secrets.push(token_secret(session, token_secret_name(&name, i), token));
        }
    }
    Ok(secrets)
}

/// The Secret `name` holding `token` (key [`TOKEN_KEY`]) for a repository of `session`, owned by it (deleted with
/// it) and labelled as its token, which `corral_api::repository::token_refusal` lets only this session read.
pub fn token_secret(session: &Session, name: String, token: &str) -> Secret {
    let session_name = session.metadata.name.clone().unwrap_or_default();
    let owner = session.controller_owner_ref(&()).map(|o| OwnerReference {
        controller: None,
        block_owner_deletion: None,
        ..o
    });
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: session.metadata.namespace.clone(),
            labels: Some(
                [
                    (labels::MANAGED_BY.to_owned(), labels::APP_NAME.to_owned()),
                    (vault::OBJECT.to_owned(), TOKEN_OBJECT.to_owned()),
                    (labels::SESSION.to_owned(), session_name),
                ]
                .into(),
            ),
            owner_references: owner.map(|o| vec![o]),
            ..ObjectMeta::default()
        },
        type_: Some(TOKEN_SECRET_TYPE.to_owned()),
        data: Some([(TOKEN_KEY.to_owned(), ByteString(token.as_bytes().to_vec()))].into()),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::body::parse;

    fn request(resources: serde_json::Value) -> SessionCreate {
        parse(
            &serde_json::to_vec(&json!({ "agent": "a", "environment_id": "e", "resources": resources }))
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn a_token_goes_into_a_secret_owned_by_the_session_and_the_spec_names_it() {
        let req = request(json!([
            { "type": "github_repository", "url": "https://github.com/o/r", "authorization_token": "ghp_s3cret",
              "checkout": { "type": "branch", "name": "main" } },
            { "type": "github_repository", "url": "https://github.com/o/public" },
        ]));
        let mut spec = super::super::session::spec_from_create(&req, 1).unwrap();
        bind_tokens(&mut spec, &req, "sesn-1").unwrap();
        let secret_ref = spec.resources[0].authorization_secret_ref.as_ref().unwrap();
        assert_eq!(
            (secret_ref.name.as_str(), secret_ref.key.as_str()),
            ("sesn-1-repo-0", "token")
        );
        assert!(spec.resources[1].authorization_secret_ref.is_none());
        assert!(
            !serde_json::to_string(&spec).unwrap().contains("ghp_s3cret"),
            "the spec holds no token"
        );

        let mut session = Session::new("sesn-1", spec);
        session.metadata.namespace = Some("team".into());
        session.metadata.uid = Some("uid-1".into());
        let secrets = token_secrets(&session, &req).unwrap();
        assert_eq!(secrets.len(), 1);
        let s = &secrets[0];
        assert_eq!(s.metadata.name.as_deref(), Some("sesn-1-repo-0"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(s.metadata.owner_references.as_ref().unwrap()[0].uid, "uid-1");
        assert_eq!(s.data.as_ref().unwrap()["token"].0, b"ghp_s3cret");
    }

    fn empty_spec() -> SessionSpec {
        super::super::session::spec_from_create(&request(json!([])), 1).unwrap()
    }

    #[test]
    fn a_token_with_a_secret_ref_or_an_empty_token_is_refused() {
        let both = request(
            json!([{ "type": "github_repository", "url": "https://x/y", "authorization_token": "t",
            "authorization_secret_ref": { "name": "s", "key": "k" } }]),
        );
        let err = bind_tokens(&mut empty_spec(), &both, "s").unwrap_err();
        assert!(
            err.message.starts_with("resources[0].authorization_token:"),
            "{}",
            err.message
        );
        let empty = request(
            json!([{ "type": "github_repository", "url": "https://x/y", "authorization_token": "" }]),
        );
        assert!(bind_tokens(&mut empty_spec(), &empty, "s").is_err());
        let spaced = request(
            json!([{ "type": "github_repository", "url": "https://x/y", "authorization_token": "a\nb" }]),
        );
        assert!(bind_tokens(&mut empty_spec(), &spaced, "s").is_err());
    }
}
