//! Vault credentials ↔ Secrets owned by their vault's Secret, and their API objects. Secret values go into the
//! Secrets and never come out: the API objects show only the public parts of `auth`.

use std::collections::BTreeMap;

use corral_api::{
    common::Metadata,
    vault::{
        AUTH_KEY, CREDENTIAL_SECRET_TYPE, CREDENTIAL_TYPE, CredentialAuth, CredentialNetworking,
        OBJECT_CREDENTIAL, TokenEndpointAuth, VAULT,
    },
};
use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    common::{archived_at, check_metadata, created_at, id, patch_metadata, time, updated_at},
    vault::{annotations, check_display_name, display_name, labels, metadata, set_annotations},
};
use crate::{body::nullable, error::ApiError};

/// Most hosts an `environment_variable` credential may be bound to.
pub const MAX_ALLOWED_HOSTS: usize = 16;

/// `POST /v1/vaults/{id}/credentials`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CredentialCreate {
    /// The `auth` object (checked by [`parse_auth`]).
    pub auth: Value,
    /// Up to 255 characters.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Key-value pairs.
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

/// `POST /v1/vaults/{id}/credentials/{credential_id}`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CredentialUpdate {
    /// A partial `auth` of the stored type (see [`merge_auth`]).
    #[serde(default)]
    pub auth: Option<Value>,
    /// Up to 255 characters; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    pub display_name: Option<Option<String>>,
    /// A patch: a string sets, `null` deletes.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, Option<String>>>,
}

/// Parses and checks an `auth` object; errors name the field under `auth`.
pub fn parse_auth(value: Value) -> Result<CredentialAuth, ApiError> {
    let auth: CredentialAuth = serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        if path == "." {
            ApiError::field("auth", message)
        } else {
            ApiError::field(&format!("auth.{path}"), message)
        }
    })?;
    check_auth(&auth)?;
    Ok(auth)
}

fn check_url(field: &str, value: &str) -> Result<(), ApiError> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(ApiError::field(field, format!("{value:?} is not an http(s) URL"))),
    }
}

fn check_secret(field: &str, value: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::field(field, "must not be empty"));
    }
    Ok(())
}

/// Checks what serde cannot: URLs, non-empty secrets, host lists, time formats.
pub fn check_auth(auth: &CredentialAuth) -> Result<(), ApiError> {
    match auth {
        CredentialAuth::StaticBearer(a) => {
            check_url("auth.mcp_server_url", &a.mcp_server_url)?;
            check_secret("auth.token", a.token.expose())
        }
        CredentialAuth::McpOauth(a) => {
            check_url("auth.mcp_server_url", &a.mcp_server_url)?;
            check_secret("auth.access_token", a.access_token.expose())?;
            if let Some(at) = &a.expires_at
                && at.parse::<jiff::Timestamp>().is_err()
            {
                return Err(ApiError::field(
                    "auth.expires_at",
                    format!("{at:?} is not an RFC 3339 time"),
                ));
            }
            if let Some(r) = &a.refresh {
                check_url("auth.refresh.token_endpoint", &r.token_endpoint)?;
                check_secret("auth.refresh.refresh_token", r.refresh_token.expose())?;
                if r.client_id.is_empty() {
                    return Err(ApiError::field("auth.refresh.client_id", "must not be empty"));
                }
                if let TokenEndpointAuth::ClientSecretBasic { client_secret }
                | TokenEndpointAuth::ClientSecretPost { client_secret } = &r.token_endpoint_auth
                {
                    check_secret(
                        "auth.refresh.token_endpoint_auth.client_secret",
                        client_secret.expose(),
                    )?;
                }
            }
            Ok(())
        }
        CredentialAuth::EnvironmentVariable(a) => {
            let name_ok = !a.secret_name.is_empty()
                && a.secret_name.len() <= 256
                && a.secret_name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !a.secret_name.as_bytes()[0].is_ascii_digit();
            if !name_ok {
                return Err(ApiError::field(
                    "auth.secret_name",
                    "must be an environment variable name (letters, digits and _, not starting with a digit)",
                ));
            }
            check_secret("auth.secret_value", a.secret_value.expose())?;
            if let CredentialNetworking::Limited { allowed_hosts } = &a.networking {
                if allowed_hosts.is_empty() || allowed_hosts.len() > MAX_ALLOWED_HOSTS {
                    return Err(ApiError::field(
                        "auth.networking.allowed_hosts",
                        format!("needs 1 to {MAX_ALLOWED_HOSTS} hosts"),
                    ));
                }
                for (i, host) in allowed_hosts.iter().enumerate() {
                    let bare = host.strip_prefix("*.").unwrap_or(host);
                    let ok = !bare.is_empty()
                        && bare.len() <= 253
                        && bare
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                    if !ok {
                        return Err(ApiError::field(
                            &format!("auth.networking.allowed_hosts[{i}]"),
                            format!("{host:?} is not a host name, IPv4 address or *.domain"),
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

/// Merges `b` into `a`: objects key by key (recursively), `null` removes a key, anything else replaces.
fn merge(a: &mut Map<String, Value>, b: Map<String, Value>) {
    for (k, v) in b {
        match (a.get_mut(&k), v) {
            (_, Value::Null) => {
                a.remove(&k);
            }
            (Some(Value::Object(inner)), Value::Object(patch))
                if inner.get("type").is_none() || inner.get("type") == patch.get("type") =>
            {
                merge(inner, patch);
            }
            (_, v) => {
                a.insert(k, v);
            }
        }
    }
}

/// Applies a partial `auth` to the stored one. `type` must match; `mcp_server_url` and `secret_name` cannot
/// change; secrets may be left out (they are kept); nested objects merge; `null` clears an optional field. A new
/// `refresh.token_endpoint_auth` must be `client_secret_basic` or `client_secret_post`.
pub fn merge_auth(stored: &CredentialAuth, patch: Value) -> Result<CredentialAuth, ApiError> {
    let Value::Object(patch) = patch else {
        return Err(ApiError::field("auth", "must be an object"));
    };
    match patch.get("type").and_then(Value::as_str) {
        Some(t) if t == stored.type_name() => {}
        Some(t) => {
            return Err(ApiError::field(
                "auth.type",
                format!(
                    "is {t:?} but the credential is {:?}; the type cannot change",
                    stored.type_name()
                ),
            ));
        }
        None => return Err(ApiError::field("auth.type", "is required")),
    }
    for fixed in ["mcp_server_url", "secret_name"] {
        let current = serde_json::to_value(stored)
            .ok()
            .and_then(|v| v.get(fixed).cloned());
        if let Some(new) = patch.get(fixed)
            && Some(new) != current.as_ref()
        {
            return Err(ApiError::field(&format!("auth.{fixed}"), "cannot be changed"));
        }
    }
    if let Some(kind) = patch
        .get("refresh")
        .and_then(|r| r.get("token_endpoint_auth"))
        .and_then(|t| t.get("type"))
        .and_then(Value::as_str)
        && !matches!(kind, "client_secret_basic" | "client_secret_post")
    {
        return Err(ApiError::field(
            "auth.refresh.token_endpoint_auth.type",
            "must be client_secret_basic or client_secret_post on update",
        ));
    }
    let Ok(Value::Object(mut current)) = serde_json::to_value(stored) else {
        return Err(ApiError::internal("a stored credential did not serialise"));
    };
    merge(&mut current, patch);
    parse_auth(Value::Object(current))
}

/// The public part of `auth`: what the API shows. No secret ever.
pub fn public_auth(auth: &CredentialAuth) -> Value {
    match auth {
        CredentialAuth::StaticBearer(a) => {
            json!({ "type": "static_bearer", "mcp_server_url": a.mcp_server_url })
        }
        CredentialAuth::McpOauth(a) => {
            let mut out = json!({ "type": "mcp_oauth", "mcp_server_url": a.mcp_server_url });
            if let Some(at) = &a.expires_at {
                out["expires_at"] = json!(at);
            }
            if let Some(r) = &a.refresh {
                let auth_type = match r.token_endpoint_auth {
                    TokenEndpointAuth::None {} => "none",
                    TokenEndpointAuth::ClientSecretBasic { .. } => "client_secret_basic",
                    TokenEndpointAuth::ClientSecretPost { .. } => "client_secret_post",
                };
                let mut refresh = json!({
                    "client_id": r.client_id,
                    "token_endpoint": r.token_endpoint,
                    "token_endpoint_auth": { "type": auth_type },
                });
                if let Some(s) = &r.scope {
                    refresh["scope"] = json!(s);
                }
                if let Some(s) = &r.resource {
                    refresh["resource"] = json!(s);
                }
                out["refresh"] = refresh;
            }
            out
        }
        CredentialAuth::EnvironmentVariable(a) => {
            let location = a.injection_location.clone().unwrap_or_default();
            json!({
                "type": "environment_variable",
                "secret_name": a.secret_name,
                "networking": a.networking,
                "injection_location": {
                    "header": location.header.unwrap_or(true),
                    "body": location.body.unwrap_or(false),
                },
            })
        }
    }
}

/// The stored `auth` of a credential Secret.
pub fn stored_auth(secret: &Secret) -> Option<CredentialAuth> {
    let bytes = secret.data.as_ref()?.get(AUTH_KEY)?;
    serde_json::from_slice(&bytes.0).ok()
}

/// Puts `auth` into a credential Secret (data and type label).
pub fn set_auth(secret: &mut Secret, auth: &CredentialAuth) -> Result<(), ApiError> {
    let json = serde_json::to_vec(auth).map_err(ApiError::internal)?;
    secret
        .data
        .get_or_insert_with(BTreeMap::new)
        .insert(AUTH_KEY.to_owned(), ByteString(json));
    secret
        .metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(CREDENTIAL_TYPE.to_owned(), auth.type_name().to_owned());
    Ok(())
}

/// The Secret of a new credential `id` in `vault`, owned by the vault's Secret.
pub fn credential_secret(
    vault: &Secret,
    id: &str,
    auth: &CredentialAuth,
    display_name: Option<&str>,
    metadata: &Metadata,
) -> Result<Secret, ApiError> {
    if let Some(name) = display_name {
        check_display_name(name, false)?;
    }
    check_metadata(metadata)?;
    let vault_name = vault.metadata.name.clone().unwrap_or_default();
    let mut labels = labels(OBJECT_CREDENTIAL);
    labels.insert(VAULT.to_owned(), vault_name.clone());
    let mut secret = Secret {
        metadata: ObjectMeta {
            name: Some(id.to_owned()),
            namespace: vault.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations(display_name, metadata)),
            owner_references: vault.metadata.uid.clone().map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".to_owned(),
                    kind: "Secret".to_owned(),
                    name: vault_name,
                    uid,
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        },
        type_: Some(CREDENTIAL_SECRET_TYPE.to_owned()),
        ..Secret::default()
    };
    set_auth(&mut secret, auth)?;
    Ok(secret)
}

/// Applies `POST /v1/vaults/{vault_id}/credentials/{credential_id}` to a credential's Secret: a partial `auth`
/// of the stored type (see [`merge_auth`]), `display_name` (`null` clears it), a `metadata` patch.
pub fn update_credential(secret: &mut Secret, req: CredentialUpdate) -> Result<(), ApiError> {
    if let Some(patch) = req.auth {
        let stored = stored_auth(secret).ok_or_else(|| {
            ApiError::internal(format!(
                "credential {} holds no readable auth",
                id(&secret.metadata)
            ))
        })?;
        let auth = merge_auth(&stored, patch)?;
        set_auth(secret, &auth)?;
    }
    let name = match req.display_name {
        Some(Some(name)) => {
            check_display_name(&name, false)?;
            Some(name)
        }
        Some(None) => None,
        None => display_name(&secret.metadata),
    };
    let current = metadata(&secret.metadata);
    let meta = match &req.metadata {
        Some(patch) => patch_metadata(&current, patch, false),
        None => current,
    };
    check_metadata(&meta)?;
    set_annotations(&mut secret.metadata, name.as_deref(), &meta);
    Ok(())
}

/// The API object of a credential (the public part of its `auth` only).
pub fn credential_object(secret: &Secret) -> Value {
    let meta = &secret.metadata;
    let auth = match stored_auth(secret) {
        Some(auth) => public_auth(&auth),
        None => {
            let kind = meta
                .labels
                .as_ref()
                .and_then(|l| l.get(CREDENTIAL_TYPE))
                .cloned()
                .unwrap_or_default();
            json!({ "type": kind })
        }
    };
    json!({
        "id": id(meta),
        "type": "vault_credential",
        "vault_id": meta.labels.as_ref().and_then(|l| l.get(VAULT)).cloned().unwrap_or_default(),
        "display_name": display_name(meta),
        "auth": auth,
        "metadata": metadata(meta),
        "created_at": time(created_at(meta)),
        "updated_at": time(updated_at(meta)),
        "archived_at": archived_at(meta),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::vault::{is_credential_of, tests::vault};

    fn bearer() -> CredentialAuth {
        parse_auth(json!({"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/mcp", "token": "tok-1"}))
            .unwrap()
    }

    /// The SDK types these as `Optional[...]`, so a client may send null; null means absent (openapi.yaml says so).
    #[test]
    fn the_sdks_nullable_auth_fields_take_null_as_absent() {
        let oauth = parse_auth(json!({
            "type": "mcp_oauth", "mcp_server_url": "https://m/mcp", "access_token": "at", "expires_at": null, "refresh": null
        }))
        .unwrap();
        let CredentialAuth::McpOauth(o) = &oauth else {
            panic!("{oauth:?}")
        };
        assert_eq!((o.expires_at.as_deref(), o.refresh.is_none()), (None, true));
        let env = parse_auth(json!({
            "type": "environment_variable", "secret_name": "K", "secret_value": "v",
            "networking": {"type": "unrestricted"}, "injection_location": null
        }))
        .unwrap();
        let CredentialAuth::EnvironmentVariable(e) = &env else {
            panic!("{env:?}")
        };
        assert!(e.injection_location.is_none());
        let err = parse_auth(json!({
            "type": "environment_variable", "secret_name": "K", "secret_value": "v",
            "networking": {"type": "unrestricted", "allowed_hosts": ["a.example"]}
        }))
        .unwrap_err();
        assert!(
            err.message.contains("unknown field `allowed_hosts`"),
            "{}",
            err.message
        );
        let err = parse_auth(json!({
            "type": "mcp_oauth", "mcp_server_url": "https://m/mcp", "access_token": "at",
            "refresh": {"client_id": "c", "refresh_token": "rt", "token_endpoint": "https://a/token",
                        "token_endpoint_auth": {"type": "client_secret_post", "client_secret": ""}}
        }))
        .unwrap_err();
        assert_eq!(
            err.message,
            "auth.refresh.token_endpoint_auth.client_secret: must not be empty"
        );
        let err = parse_auth(json!({
            "type": "mcp_oauth", "mcp_server_url": "https://m/mcp", "access_token": "at",
            "refresh": {"client_id": "c", "refresh_token": "rt", "token_endpoint": "https://a/token",
                        "token_endpoint_auth": {"type": "none", "client_secret": "s"}}
        }))
        .unwrap_err();
        assert!(
            err.message.contains("unknown field `client_secret`"),
            "{}",
            err.message
        );
        // serde would read `[]` as a struct of defaults; the API takes an object or null only.
        let err = parse_auth(json!({
            "type": "environment_variable", "secret_name": "K", "secret_value": "v",
            "networking": {"type": "unrestricted"}, "injection_location": []
        }))
        .unwrap_err();
        assert!(
            err.message.starts_with("auth:") && err.message.contains("expected an object"),
            "{}",
            err.message
        );
    }

    #[test]
    fn credentials_store_the_whole_auth_and_show_only_its_public_part() {
        let c = credential_secret(&vault(), "vcrd-1", &bearer(), Some("GitHub"), &Metadata::new()).unwrap();
        assert!(is_credential_of(&c, "vlt-1"));
        assert!(!is_credential_of(&c, "vlt-2"));
        assert_eq!(c.type_.as_deref(), Some(CREDENTIAL_SECRET_TYPE));
        let owner = &c.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("Secret", "uid-1"));
        assert_eq!(
            c.metadata.labels.as_ref().unwrap()[CREDENTIAL_TYPE],
            "static_bearer"
        );
        assert_eq!(stored_auth(&c), Some(bearer()));
        let obj = credential_object(&c);
        assert_eq!(obj["vault_id"], "vlt-1");
        assert_eq!(
            obj["auth"],
            json!({"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/mcp"})
        );
        assert!(!obj.to_string().contains("tok-1"));

        let oauth = parse_auth(json!({
            "type": "mcp_oauth", "mcp_server_url": "https://m/mcp", "access_token": "at",
            "refresh": {"client_id": "c", "refresh_token": "rt", "token_endpoint": "https://a/token",
                        "token_endpoint_auth": {"type": "client_secret_post", "client_secret": "cs"}, "scope": "s"}
        }))
        .unwrap();
        let public = public_auth(&oauth).to_string();
        for secret in ["\"at\"", "\"rt\"", "\"cs\""] {
            assert!(!public.contains(secret), "{public}");
        }
        assert!(public.contains("client_secret_post"));
        let env = parse_auth(
            json!({"type": "environment_variable", "secret_name": "GH_TOKEN", "secret_value": "v",
                                    "networking": {"type": "limited", "allowed_hosts": ["*.github.com"]}}),
        )
        .unwrap();
        assert_eq!(
            public_auth(&env),
            json!({"type": "environment_variable", "secret_name": "GH_TOKEN",
                   "networking": {"type": "limited", "allowed_hosts": ["*.github.com"]},
                   "injection_location": {"header": true, "body": false}})
        );
    }

    #[test]
    fn bad_auth_is_refused_with_its_field() {
        let field = |v: Value| parse_auth(v).unwrap_err().message;
        assert!(
            field(json!({"type": "static_bearer", "mcp_server_url": "ftp://x", "token": "t"}))
                .starts_with("auth.mcp_server_url")
        );
        assert!(
            field(json!({"type": "static_bearer", "mcp_server_url": "https://x", "token": ""}))
                .starts_with("auth.token")
        );
        assert!(field(json!({"type": "static_bearer", "mcp_server_url": "https://x"})).starts_with("auth"));
        assert!(field(json!({"type": "nope"})).starts_with("auth"));
        assert!(
            field(
                json!({"type": "environment_variable", "secret_name": "1X", "secret_value": "v",
                             "networking": {"type": "unrestricted"}})
            )
            .starts_with("auth.secret_name")
        );
        let hosts: Vec<String> = (0..17).map(|i| format!("h{i}.example.com")).collect();
        assert!(
            field(
                json!({"type": "environment_variable", "secret_name": "X", "secret_value": "v",
                             "networking": {"type": "limited", "allowed_hosts": hosts}})
            )
            .starts_with("auth.networking.allowed_hosts")
        );
    }

    #[test]
    fn updates_merge_keep_secrets_and_refuse_fixed_fields() {
        let stored = bearer();
        let same = merge_auth(&stored, json!({"type": "static_bearer"})).unwrap();
        assert_eq!(same, stored, "a left-out secret is kept");
        let rotated = merge_auth(&stored, json!({"type": "static_bearer", "token": "tok-2"})).unwrap();
        let CredentialAuth::StaticBearer(b) = &rotated else {
            panic!()
        };
        assert_eq!(b.token.expose(), "tok-2");
        assert!(
            merge_auth(&stored, json!({"type": "mcp_oauth"}))
                .unwrap_err()
                .message
                .starts_with("auth.type")
        );
        assert!(
            merge_auth(
                &stored,
                json!({"type": "static_bearer", "mcp_server_url": "https://other"})
            )
            .unwrap_err()
            .message
            .starts_with("auth.mcp_server_url")
        );
        assert!(
            merge_auth(
                &stored,
                json!({"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/mcp"})
            )
            .is_ok()
        );

        let oauth = parse_auth(json!({
            "type": "mcp_oauth", "mcp_server_url": "https://m/mcp", "access_token": "at", "expires_at": "2026-01-01T00:00:00Z",
            "refresh": {"client_id": "c", "refresh_token": "rt", "token_endpoint": "https://a/token",
                        "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": "cs"}}
        }))
        .unwrap();
        let updated = merge_auth(
            &oauth,
            json!({"type": "mcp_oauth", "access_token": "at2", "expires_at": null,
                   "refresh": {"refresh_token": "rt2"}}),
        )
        .unwrap();
        let CredentialAuth::McpOauth(o) = &updated else {
            panic!()
        };
        assert_eq!(o.access_token.expose(), "at2");
        assert_eq!(o.expires_at, None);
        let r = o.refresh.as_ref().unwrap();
        assert_eq!((r.refresh_token.expose(), r.client_id.as_str()), ("rt2", "c"));
        assert!(matches!(
            r.token_endpoint_auth,
            TokenEndpointAuth::ClientSecretBasic { .. }
        ));
        assert!(
            merge_auth(
                &oauth,
                json!({"type": "mcp_oauth", "refresh": {"token_endpoint_auth": {"type": "none"}}})
            )
            .unwrap_err()
            .message
            .starts_with("auth.refresh.token_endpoint_auth.type")
        );
    }
}
