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

/// Whether `id` can name a Kubernetes object at all (anything else cannot exist: 404 without asking).
pub fn plausible(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 253
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// The object `id`, or 404 `not_found_error` naming `what`. An object being deleted (a finalizer still runs) is
/// already gone for the API: a client that deleted it must not read it back.
pub async fn get<K>(api: &Api<K>, what: &str, id: &str) -> Result<K, ApiError>
where
    K: Clone + DeserializeOwned + Debug + kube::Resource,
{
    if !plausible(id) {
        return Err(ApiError::not_found(what, id));
    }
    api.get_opt(id)
        .await?
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .ok_or_else(|| ApiError::not_found(what, id))
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

/// Sets the `corral.dev/archived-at` annotation (once: archiving again keeps the first time) and returns the object.
pub async fn archive<K>(api: &Api<K>, what: &str, id: &str) -> Result<K, ApiError>
where
    K: Clone + DeserializeOwned + Serialize + Debug + Resource,
{
    let current = get(api, what, id).await?;
    if current
        .meta()
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(labels::ARCHIVED_AT))
    {
        return Ok(current);
    }
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
