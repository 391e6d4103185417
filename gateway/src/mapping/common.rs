//! Pieces every resource mapping shares: timestamps, `metadata` limits and patches, archive annotations and field
//! paths.

use std::collections::BTreeMap;

use corral_api::{
    common::Metadata,
    labels,
    validation::{SpecError, validate_metadata},
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::error::ApiError;

/// `created_at` of an object: its creation timestamp.
pub fn created_at(meta: &ObjectMeta) -> jiff::Timestamp {
    meta.creation_timestamp
        .as_ref()
        .map(|t| t.0)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// `updated_at` of an object: the latest write of its spec or metadata by any field manager (status writes do not
/// count), or its creation time.
pub fn updated_at(meta: &ObjectMeta) -> jiff::Timestamp {
    let created = created_at(meta);
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|f| f.subresource.as_deref().unwrap_or_default().is_empty())
        .filter_map(|f| f.time.as_ref())
        .map(|t| t.0)
        .fold(created, jiff::Timestamp::max)
}

/// `archived_at` of an object, from the `corral.dev/archived-at` annotation.
pub fn archived_at(meta: &ObjectMeta) -> Option<String> {
    meta.annotations.as_ref()?.get(labels::ARCHIVED_AT).cloned()
}

/// Formats a timestamp the way every API object does.
pub fn time(ts: jiff::Timestamp) -> String {
    corral_api::events::format_rfc3339_millis(&ts)
}

/// The API id of an object: its name.
pub fn id(meta: &ObjectMeta) -> String {
    meta.name.clone().unwrap_or_default()
}

/// Checks the API's limits on `metadata` (the rule of [`corral_api::validation::validate_metadata`]).
pub fn check_metadata(metadata: &Metadata) -> Result<(), ApiError> {
    validate_metadata("metadata", metadata).map_err(spec_error)
}

/// The API's error for a spec that breaks a rule of [`corral_api::validation`], naming the API's field.
pub fn spec_error(err: SpecError) -> ApiError {
    let field = api_field_path(&err.field);
    let error = ApiError::field(&field, err.message);
    if field == "metadata" {
        error.with_code("invalid_metadata")
    } else {
        error
    }
}

/// Applies a `metadata` patch: a string inserts or replaces, `null` deletes (and, when `empty_deletes`, so does
/// `""`).
pub fn patch_metadata(
    current: &Metadata,
    patch: &BTreeMap<String, Option<String>>,
    empty_deletes: bool,
) -> Metadata {
    let mut out = current.clone();
    for (k, v) in patch {
        match v {
            Some(v) if !(empty_deletes && v.is_empty()) => {
                out.insert(k.clone(), v.clone());
            }
            _ => {
                out.remove(k);
            }
        }
    }
    out
}

/// Spec fields whose API names are not their snake_case spelling.
const RENAMED: &[(&str, &str)] = &[
    ("environment_ref", "environment_id"),
    ("vault_refs", "vault_ids"),
    ("max_cost", "max_list_cost"),
];

/// Turns a spec field path of `corral_api::validation` (`spec.tools[0].inputSchema`) into the API's
/// (`tools[0].input_schema`).
pub fn api_field_path(spec_path: &str) -> String {
    let path = spec_path.strip_prefix("spec.").unwrap_or(spec_path);
    let mut snake = String::with_capacity(path.len() + 4);
    for c in path.chars() {
        if c.is_ascii_uppercase() {
            snake.push('_');
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    snake
        .split('.')
        .map(|segment| {
            let (name, index) = segment.split_at(segment.find('[').unwrap_or(segment.len()));
            let name = RENAMED
                .iter()
                .find(|(from, _)| *from == name)
                .map_or(name, |(_, to)| to);
            format!("{name}{index}")
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_limits() {
        let mut m = Metadata::new();
        assert!(check_metadata(&m).is_ok());
        m.insert("k".repeat(65), "v".into());
        let err = check_metadata(&m).unwrap_err();
        assert_eq!(err.error_code, Some("invalid_metadata"));
        assert!(err.message.starts_with("metadata:"));
        let m: Metadata = (0..17).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(check_metadata(&m).is_err());
        let m = Metadata::from([("k".into(), "v".repeat(513))]);
        assert!(check_metadata(&m).is_err());
    }

    #[test]
    fn metadata_patch_inserts_replaces_and_deletes() {
        let current = Metadata::from([
            ("a".into(), "1".into()),
            ("b".into(), "2".into()),
            ("c".into(), "3".into()),
        ]);
        let patch = BTreeMap::from([
            ("a".to_owned(), Some("9".to_owned())),
            ("b".to_owned(), None),
            ("c".to_owned(), Some(String::new())),
            ("d".to_owned(), Some("4".to_owned())),
        ]);
        let agents = patch_metadata(&current, &patch, false);
        assert_eq!(
            agents,
            Metadata::from([
                ("a".into(), "9".into()),
                ("c".into(), String::new()),
                ("d".into(), "4".into())
            ])
        );
        let envs = patch_metadata(&current, &patch, true);
        assert_eq!(
            envs,
            Metadata::from([("a".into(), "9".into()), ("d".into(), "4".into())])
        );
    }

    #[test]
    fn updated_at_is_the_latest_spec_or_metadata_write() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};
        let at = |s: &str| Time(s.parse().unwrap());
        let entry = |time: &str, sub: Option<&str>| ManagedFieldsEntry {
            time: Some(at(time)),
            subresource: sub.map(str::to_owned),
            ..ManagedFieldsEntry::default()
        };
        let mut meta = ObjectMeta {
            creation_timestamp: Some(at("2026-01-01T00:00:00Z")),
            ..ObjectMeta::default()
        };
        assert_eq!(time(updated_at(&meta)), "2026-01-01T00:00:00.000Z");
        meta.managed_fields = Some(vec![
            entry("2026-01-02T00:00:00Z", None),
            entry("2026-01-05T00:00:00Z", Some("status")),
        ]);
        assert_eq!(
            time(updated_at(&meta)),
            "2026-01-02T00:00:00.000Z",
            "status writes do not count"
        );
        meta.annotations = Some(
            [(
                labels::ARCHIVED_AT.to_owned(),
                "2026-01-03T00:00:00.000Z".to_owned(),
            )]
            .into(),
        );
        assert_eq!(archived_at(&meta).as_deref(), Some("2026-01-03T00:00:00.000Z"));
    }

    #[test]
    fn spec_paths_become_api_paths() {
        assert_eq!(
            api_field_path("spec.tools[0].inputSchema"),
            "tools[0].input_schema"
        );
        assert_eq!(api_field_path("spec.sandbox.idleTimeout"), "sandbox.idle_timeout");
        assert_eq!(api_field_path("spec.vaultRefs[2].name"), "vault_ids[2].name");
        assert_eq!(
            api_field_path("spec.budget.maxCost.amount"),
            "budget.max_list_cost.amount"
        );
    }
}
