//! Vaults and credentials ↔ Secrets (the storage contract of [`corral_api::vault`]), and their API objects.
//! Secret values go into the Secrets and never come out: the API objects show only the public parts of `auth`.

use std::collections::BTreeMap;

use corral_api::{
    common::Metadata,
    labels::ARCHIVED_AT,
    vault::{
        AUTH_KEY, CREDENTIAL_SECRET_TYPE, CREDENTIAL_TYPE, CredentialAuth, CredentialNetworking,
        DISPLAY_NAME, MANAGED_BY, MANAGED_BY_VALUE, METADATA, OBJECT, OBJECT_CREDENTIAL, OBJECT_VAULT,
        TokenEndpointAuth, VAULT,
    },
};
use k8s_openapi::{
    ByteString,
    api::core::v1::Secret,
    apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference},
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::common::{archived_at, check_metadata, created_at, id, patch_metadata, time, updated_at};
use crate::{body::nullable, error::ApiError};

/// Longest `display_name`.
pub const MAX_DISPLAY_NAME: usize = 255;
/// Most hosts an `environment_variable` credential may be bound to.
pub const MAX_ALLOWED_HOSTS: usize = 16;

/// `POST /v1/vaults`.
#[derive(Deserialize, Debug)]
pub struct VaultCreate {
    /// 1 to 255 characters.
    pub display_name: String,
    /// Key-value pairs.
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

/// `POST /v1/vaults/{id}`.
#[derive(Deserialize, Debug)]
pub struct VaultUpdate {
    /// 1 to 255 characters.
    #[serde(default)]
    pub display_name: Option<String>,
    /// A patch: a string sets, `null` deletes.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, Option<String>>>,
}

/// `POST /v1/vaults/{id}/credentials`.
#[derive(Deserialize, Debug)]
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

/// Checks a display name: `required` ones need at least one character; none may exceed 255.
pub fn check_display_name(name: &str, required: bool) -> Result<(), ApiError> {
    let chars = name.chars().count();
    if required && name.trim().is_empty() {
        return Err(ApiError::field("display_name", "must not be empty"));
    }
    if chars > MAX_DISPLAY_NAME {
        return Err(ApiError::field(
            "display_name",
            format!("is {chars} characters; at most {MAX_DISPLAY_NAME} are allowed"),
        ));
    }
    Ok(())
}

fn annotations(display_name: Option<&str>, metadata: &Metadata) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Some(name) = display_name {
        out.insert(DISPLAY_NAME.to_owned(), name.to_owned());
    }
    out.insert(
        METADATA.to_owned(),
        serde_json::to_string(metadata).unwrap_or_else(|_| "{}".to_owned()),
    );
    out
}

fn labels(object: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
        (OBJECT.to_owned(), object.to_owned()),
    ])
}

/// A vault's `display_name`, from its annotation.
pub fn display_name(meta: &ObjectMeta) -> Option<String> {
    meta.annotations.as_ref()?.get(DISPLAY_NAME).cloned()
}

/// A vault's or credential's `metadata`, from its annotation.
pub fn metadata(meta: &ObjectMeta) -> Metadata {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(METADATA))
        .and_then(|m| serde_json::from_str(m).ok())
        .unwrap_or_default()
}

/// Writes `display_name` and `metadata` into an object's annotations (keeping the others, such as the archive
/// time).
pub fn set_annotations(meta: &mut ObjectMeta, display_name: Option<&str>, metadata: &Metadata) {
    let all = meta.annotations.get_or_insert_with(BTreeMap::new);
    all.remove(DISPLAY_NAME);
    all.extend(annotations(display_name, metadata));
}

/// The Secret of a new vault.
pub fn vault_secret(namespace: &str, id: &str, req: &VaultCreate) -> Result<Secret, ApiError> {
    check_display_name(&req.display_name, true)?;
    let metadata = req.metadata.clone().unwrap_or_default();
    check_metadata(&metadata)?;
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(id.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels(OBJECT_VAULT)),
            annotations: Some(annotations(Some(&req.display_name), &metadata)),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        ..Secret::default()
    })
}

/// Applies an update to a vault's Secret; returns whether anything changed.
pub fn update_vault(secret: &mut Secret, req: VaultUpdate) -> Result<bool, ApiError> {
    let current_name = display_name(&secret.metadata);
    let current_meta = metadata(&secret.metadata);
    let name = match req.display_name {
        Some(name) => {
            check_display_name(&name, true)?;
            Some(name)
        }
        None => current_name.clone(),
    };
    let meta = match &req.metadata {
        Some(patch) => patch_metadata(&current_meta, patch, false),
        None => current_meta.clone(),
    };
    check_metadata(&meta)?;
    if name == current_name && meta == current_meta {
        return Ok(false);
    }
    set_annotations(&mut secret.metadata, name.as_deref(), &meta);
    Ok(true)
}

fn has_label(secret: &Secret, key: &str, value: &str) -> bool {
    secret
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(key))
        .is_some_and(|v| v == value)
}

/// Whether a Secret is a vault (anything else in the namespace is not one, whatever its name).
pub fn is_vault(secret: &Secret) -> bool {
    has_label(secret, OBJECT, OBJECT_VAULT) && has_label(secret, MANAGED_BY, MANAGED_BY_VALUE)
}

/// Whether a Secret is a credential of vault `vault`.
pub fn is_credential_of(secret: &Secret, vault: &str) -> bool {
    has_label(secret, OBJECT, OBJECT_CREDENTIAL)
        && has_label(secret, VAULT, vault)
        && has_label(secret, MANAGED_BY, MANAGED_BY_VALUE)
}

/// The API object of a vault.
pub fn vault_object(secret: &Secret) -> Value {
    let meta = &secret.metadata;
    json!({
        "id": id(meta),
        "type": "vault",
        "display_name": display_name(meta).unwrap_or_default(),
        "metadata": metadata(meta),
        "created_at": time(created_at(meta)),
        "updated_at": time(updated_at(meta)),
        "archived_at": archived_at(meta),
    })
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
                    TokenEndpointAuth::None => "none",
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

/// Whether an object carries the archive annotation.
pub fn archived(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ARCHIVED_AT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer() -> CredentialAuth {
        parse_auth(json!({"type": "static_bearer", "mcp_server_url": "https://mcp.example.com/mcp", "token": "tok-1"}))
            .unwrap()
    }

    fn vault() -> Secret {
        let mut v = vault_secret(
            "team-a",
            "vlt-1",
            &VaultCreate {
                display_name: "Prod".into(),
                metadata: Some(Metadata::from([("env".into(), "prod".into())])),
            },
        )
        .unwrap();
        v.metadata.uid = Some("uid-1".into());
        v
    }

    #[test]
    fn vaults_are_labelled_annotated_empty_secrets() {
        let v = vault();
        assert!(is_vault(&v));
        assert_eq!(v.data, None);
        let obj = vault_object(&v);
        assert_eq!(obj["id"], "vlt-1");
        assert_eq!(obj["type"], "vault");
        assert_eq!(obj["display_name"], "Prod");
        assert_eq!(obj["metadata"], json!({"env": "prod"}));
        assert_eq!(obj["archived_at"], Value::Null);
        let bad = VaultCreate {
            display_name: " ".into(),
            metadata: None,
        };
        assert!(
            vault_secret("ns", "v", &bad)
                .unwrap_err()
                .message
                .starts_with("display_name")
        );

        let mut v = vault();
        let upd = VaultUpdate {
            display_name: None,
            metadata: Some(BTreeMap::from([
                ("env".into(), None),
                ("team".into(), Some("a".into())),
            ])),
        };
        assert!(update_vault(&mut v, upd).unwrap());
        assert_eq!(vault_object(&v)["metadata"], json!({"team": "a"}));
        assert_eq!(vault_object(&v)["display_name"], "Prod");
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
