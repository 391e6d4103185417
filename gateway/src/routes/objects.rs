//! Reading and writing the custom resources of one tenant's namespace.

use std::fmt::Debug;

use corral_api::labels;
use kube::{
    Api, Resource,
    api::{Patch, PatchParams, PostParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use crate::{auth::Tenant, error::ApiError, state::AppState};

/// The API of resource `K` in the tenant's namespace.
pub fn api<K>(state: &AppState, tenant: &Tenant) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    Api::namespaced(state.kube.clone(), &tenant.namespace)
}

/// A new API id: `<prefix>-` and a lowercase ULID (a valid, time-ordered Kubernetes name).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_ascii_lowercase())
}

/// Whether `id` can name a Kubernetes object at all: a DNS-1123 subdomain (dot-separated labels of `[a-z0-9-]`,
/// each starting and ending with a letter or digit, at most 253 characters). Anything else cannot exist and never
/// reaches the API server: `.` and `..` (even sent as `%2e%2e`) would otherwise name the collection or its parent.
pub fn plausible(id: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    (1..=253).contains(&id.len()) && id.split('.').all(label_ok)
}

/// The object `id`, `None` when there is none. Ids that cannot name an object are not looked up; an object being
/// deleted (a finalizer still runs) is already gone for the API: a client that deleted it must not read it back.
pub async fn find<K>(api: &Api<K>, id: &str) -> Result<Option<K>, ApiError>
where
    K: Clone + DeserializeOwned + Debug + kube::Resource,
{
    if !plausible(id) {
        return Ok(None);
    }
    Ok(api
        .get_opt(id)
        .await?
        .filter(|o| o.meta().deletion_timestamp.is_none()))
}

/// The object `id`, or 404 `not_found_error` naming `what` (see [`find`]).
pub async fn get<K>(api: &Api<K>, what: &str, id: &str) -> Result<K, ApiError>
where
    K: Clone + DeserializeOwned + Debug + kube::Resource,
{
    find(api, id).await?.ok_or_else(|| ApiError::not_found(what, id))
}

/// Creates `object` with server-side apply under the gateway's field manager.
pub async fn create<K>(api: &Api<K>, id: &str, object: &K) -> Result<K, ApiError>
where
    K: Clone + DeserializeOwned + Serialize + Debug,
{
    let params = PatchParams::apply(labels::GATEWAY_FIELD_MANAGER);
    Ok(api.patch(id, &params, &Patch::Apply(object)).await?)
}

/// Writes `object` whole, failing with 409 when it changed since it was read (its `resourceVersion`).
pub async fn replace<K>(api: &Api<K>, id: &str, object: &K) -> Result<K, ApiError>
where
    K: Clone + DeserializeOwned + Serialize + Debug + Resource,
{
    // Without managedFields the API server keeps its own record and adds this write to it.
    let mut object = object.clone();
    object.meta_mut().managed_fields = None;
    let object = &object;
    let params = PostParams {
        field_manager: Some(labels::GATEWAY_FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    Ok(api.replace(id, &params, object).await?)
}

/// Sets the `corral.dev/archived-at` annotation to now and returns the object (callers archive an object once:
/// see [`crate::resource::handlers::archive`]).
pub async fn archive<K>(api: &Api<K>, id: &str) -> Result<K, ApiError>
where
    K: Clone + DeserializeOwned + Serialize + Debug + Resource,
{
    let now = corral_api::events::format_rfc3339_millis(&jiff::Timestamp::now());
    let patch = json!({ "metadata": { "annotations": { labels::ARCHIVED_AT: now } } });
    let params = PatchParams {
        field_manager: Some(labels::GATEWAY_FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    Ok(api.patch(id, &params, &Patch::Merge(&patch)).await?)
}

/// Whether an object is archived.
pub fn is_archived<K: Resource>(object: &K) -> bool {
    object
        .meta()
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(labels::ARCHIVED_AT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kubernetes_names_are_plausible_ids() {
        for ok in ["agent-01jx", "a", "a.b-c.d", &"x".repeat(63)] {
            assert!(plausible(ok), "{ok}");
        }
        let long = format!("{}.{}", "a".repeat(200), "b".repeat(60));
        for bad in [
            "",
            ".",
            "..",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a-",
            "A",
            "a/b",
            "a_b",
            "%2e%2e",
            &"x".repeat(64),
            &long,
        ] {
            assert!(!plausible(bad), "{bad:?}");
        }
    }
}
