//! Vaults ↔ Secrets (the storage contract of [`corral_api::vault`]) and their API objects, and what vaults and
//! credentials share: display names, `metadata` kept in annotations, labels.

use std::collections::BTreeMap;

use corral_api::{
    common::Metadata,
    vault::{
        DISPLAY_NAME, MANAGED_BY, MANAGED_BY_VALUE, METADATA, OBJECT, OBJECT_CREDENTIAL, OBJECT_VAULT, VAULT,
    },
};
use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use serde::Deserialize;
use serde_json::{Value, json};

use super::common::{archived_at, check_metadata, created_at, id, patch_metadata, time, updated_at};
use crate::error::ApiError;

/// Longest `display_name`.
pub const MAX_DISPLAY_NAME: usize = 255;

/// `POST /v1/vaults`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct VaultCreate {
    /// 1 to 255 characters.
    pub display_name: String,
    /// Key-value pairs.
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

/// `POST /v1/vaults/{id}`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct VaultUpdate {
    /// 1 to 255 characters.
    #[serde(default)]
    pub display_name: Option<String>,
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

pub(super) fn annotations(display_name: Option<&str>, metadata: &Metadata) -> BTreeMap<String, String> {
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

pub(super) fn labels(object: &str) -> BTreeMap<String, String> {
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A vault Secret as the gateway stores it (also the fixture of the credential tests).
    pub(crate) fn vault() -> Secret {
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
}
