//! Where a resource's objects live, behind one interface: [`Store`]. Two stores exist today, both in the tenant's
//! namespace: [`CustomResources`] (agents, environments, sessions) and [`Secrets`] (vaults and credentials, told
//! apart by labels). A resource kept elsewhere (Redis, object storage) brings its own store.

use std::{fmt::Debug, marker::PhantomData};

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Resource,
    api::{DeleteParams, ListParams, PostParams, Preconditions, PropagationPolicy},
};
use serde::{Serialize, de::DeserializeOwned};

use super::Cx;
use crate::{error::ApiResult, mapping::common::created_at, pagination::SortKey, routes::objects};

/// What lists sort and filter on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Creation time and id.
    pub key: SortKey,
    /// Whether the object is archived.
    pub archived: bool,
}

/// A tenant's objects of one resource.
pub trait Store: Send + Sync {
    /// The stored form of one object.
    type Object: Clone + Send + Sync + 'static;

    /// Its sort key and archive flag.
    fn entry(object: &Self::Object) -> Entry;

    /// The object `id`, `None` when there is none (ids that cannot exist are not looked up).
    fn get(&self, id: &str) -> impl Future<Output = ApiResult<Option<Self::Object>>> + Send;

    /// Every object.
    fn list(&self) -> impl Future<Output = ApiResult<Vec<Self::Object>>> + Send;

    /// Stores a new object under `id`.
    fn create(&self, id: &str, object: Self::Object) -> impl Future<Output = ApiResult<Self::Object>> + Send;

    /// Writes `object` whole; a 409 when it changed since it was read.
    fn replace(&self, id: &str, object: Self::Object)
    -> impl Future<Output = ApiResult<Self::Object>> + Send;

    /// Marks `id` archived now.
    fn archive(&self, id: &str) -> impl Future<Output = ApiResult<Self::Object>> + Send;

    /// Deletes `object`; `false` when it was already gone.
    fn delete(&self, object: &Self::Object) -> impl Future<Output = ApiResult<bool>> + Send;
}

fn kube_entry<K: Resource>(object: &K) -> Entry {
    Entry {
        key: SortKey {
            created: created_at(object.meta()),
            id: object.meta().name.clone().unwrap_or_default(),
        },
        archived: objects::is_archived(object),
    }
}

/// Maps "the object is gone" (404, or a 409 on a failed precondition) to `false`.
fn deleted<T>(result: Result<T, kube::Error>) -> ApiResult<bool> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Custom resources of kind `K` in the tenant's namespace, created with server-side apply.
pub struct CustomResources<K> {
    api: Api<K>,
    namespace: String,
    kind: PhantomData<K>,
}

impl<K> CustomResources<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    /// The store of the request's tenant.
    pub fn of(cx: &Cx) -> Self {
        Self {
            api: cx.api(),
            namespace: cx.tenant.namespace.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Store for CustomResources<K>
where
    K: Resource + Clone + Debug + Serialize + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Default,
{
    type Object = K;

    fn entry(object: &K) -> Entry {
        kube_entry(object)
    }

    async fn get(&self, id: &str) -> ApiResult<Option<K>> {
        objects::find(&self.api, id).await
    }

    async fn list(&self) -> ApiResult<Vec<K>> {
        Ok(self.api.list(&ListParams::default()).await?.items)
    }

    async fn create(&self, id: &str, mut object: K) -> ApiResult<K> {
        object.meta_mut().namespace = Some(self.namespace.clone());
        objects::create(&self.api, id, &object).await
    }

    async fn replace(&self, id: &str, object: K) -> ApiResult<K> {
        objects::replace(&self.api, id, &object).await
    }

    async fn archive(&self, id: &str) -> ApiResult<K> {
        objects::archive(&self.api, id).await
    }

    async fn delete(&self, object: &K) -> ApiResult<bool> {
        let id = object.meta().name.clone().unwrap_or_default();
        deleted(self.api.delete(&id, &DeleteParams::default()).await)
    }
}

/// Secrets of the tenant's namespace that carry `selector`'s labels and pass `keep` (any other Secret does not
/// exist for the API, whatever its name). Deletes only the Secret that was read (its uid).
pub struct Secrets {
    api: Api<Secret>,
    selector: String,
    keep: Box<dyn Fn(&Secret) -> bool + Send + Sync>,
}

impl Secrets {
    /// The store of the Secrets matching the label `selector` and `keep`.
    pub fn new(
        api: Api<Secret>,
        selector: String,
        keep: impl Fn(&Secret) -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            api,
            selector,
            keep: Box::new(keep),
        }
    }
}

impl Store for Secrets {
    type Object = Secret;

    fn entry(object: &Secret) -> Entry {
        kube_entry(object)
    }

    async fn get(&self, id: &str) -> ApiResult<Option<Secret>> {
        Ok(objects::find(&self.api, id).await?.filter(|s| (self.keep)(s)))
    }

    async fn list(&self) -> ApiResult<Vec<Secret>> {
        let params = ListParams::default().labels(&self.selector);
        let mut items = self.api.list(&params).await?.items;
        items.retain(|s| (self.keep)(s));
        Ok(items)
    }

    async fn create(&self, _id: &str, object: Secret) -> ApiResult<Secret> {
        let params = PostParams {
            field_manager: Some(corral_api::labels::GATEWAY_FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        Ok(self.api.create(&params, &object).await?)
    }

    async fn replace(&self, id: &str, object: Secret) -> ApiResult<Secret> {
        objects::replace(&self.api, id, &object).await
    }

    async fn archive(&self, id: &str) -> ApiResult<Secret> {
        objects::archive(&self.api, id).await
    }

    async fn delete(&self, object: &Secret) -> ApiResult<bool> {
        let id = object.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: object.metadata.uid.clone(),
                resource_version: None,
            }),
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };
        deleted(self.api.delete(&id, &params).await)
    }
}
