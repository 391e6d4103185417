//! Writing status with server-side apply under the operator's field manager.

use corral_api::labels::OPERATOR_FIELD_MANAGER;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::json;

use crate::error::{Error, Result};

/// Applies `status` (only the fields the operator owns) to `obj`'s status subresource.
pub async fn apply_status<K, S>(api: &Api<K>, obj: &K, status: &S) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    apply_status_as(api, obj, status, OPERATOR_FIELD_MANAGER).await
}

/// Applies `status` to `obj`'s status subresource under `manager`.
pub async fn apply_status_as<K, S>(api: &Api<K>, obj: &K, status: &S, manager: &str) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
    S: Serialize,
{
    let name = obj.meta().name.clone().ok_or(Error::MissingObjectKey("name"))?;
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(&name, &PatchParams::apply(manager).force(), &Patch::Apply(&patch))
        .await?;
    tracing::trace!(name = obj.name_any(), "status applied");
    Ok(())
}

/// Returns the Api for `obj`'s own namespace.
pub fn namespaced_api<K>(client: &kube::Client, obj: &K) -> Result<Api<K>>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    let ns = obj
        .meta()
        .namespace
        .as_deref()
        .ok_or(Error::MissingObjectKey("namespace"))?;
    Ok(Api::namespaced(client.clone(), ns))
}
