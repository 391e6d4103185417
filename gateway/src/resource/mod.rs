//! The generic API resource: what every `/v1` collection shares (list with paging and filters, create, retrieve,
//! update with retry-on-conflict, archive, delete) written once in [`handlers`], over a [`Store`] that hides where
//! the objects live.
//!
//! A resource implements [`ApiResource`]: its names, its request types and their mapping onto the stored object,
//! the object's wire form, its store, and hooks for what it does beyond the common path. [`routes`] mounts it:
//!
//! ```text
//! POST {path}                 create      GET {path}                 list
//! GET  {path}/{id}            retrieve    POST {path}/{id}           update
//! POST {path}/{id}/archive    archive     DELETE {path}/{id}         delete (when `Names::deleted` is set)
//! ```

pub mod handlers;
pub mod store;

use axum::{
    Router,
    routing::{get, post},
};
use kube::Api;
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use store::{CustomResources, Entry, Secrets, Store};

use crate::{
    auth::Tenant,
    error::{ApiError, ApiResult},
    query::Query,
    state::AppState,
};

/// Where one request runs: the shared state, the caller's tenant, and the ids of the enclosing objects of a nested
/// resource (a credential's vault), outermost first.
#[derive(Clone)]
pub struct Cx {
    /// The shared state.
    pub state: AppState,
    /// The caller's tenant.
    pub tenant: Tenant,
    /// Path ids before the resource's own (`vault_id` for credentials).
    pub parents: Vec<String>,
}

impl Cx {
    /// The Kubernetes API of `K` in the tenant's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.state.kube.clone(), &self.tenant.namespace)
    }

    /// The innermost enclosing id (empty for a top-level resource).
    pub fn parent(&self) -> &str {
        self.parents.last().map_or("", String::as_str)
    }
}

/// The names of a resource: `Names::new("agent", "agent", "/v1/agents", "agent_id")`, and
/// `.deletable("environment_deleted")` for a resource that can be deleted.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// What errors call one object: `agent`.
    pub what: &'static str,
    /// The prefix of new ids: `agent` gives `agent-01jx...`.
    pub id_prefix: &'static str,
    /// The collection's route: `/v1/agents`, `/v1/vaults/{vault_id}/credentials`.
    pub path: &'static str,
    /// The path parameter of one object's id: `agent_id`.
    pub id_param: &'static str,
    /// The `type` of the answer to `DELETE` (`environment_deleted`); `None`: the resource cannot be deleted.
    pub deleted: Option<&'static str>,
}

impl Names {
    /// A resource that is archived, never deleted.
    pub const fn new(
        what: &'static str,
        id_prefix: &'static str,
        path: &'static str,
        id_param: &'static str,
    ) -> Self {
        Self {
            what,
            id_prefix,
            path,
            id_param,
            deleted: None,
        }
    }

    /// The same names for a resource that `DELETE` removes, answering `{"id", "type": deleted}`.
    pub const fn deletable(self, deleted: &'static str) -> Self {
        Self {
            deleted: Some(deleted),
            ..self
        }
    }
}

/// How a resource's list pages.
#[derive(Debug, Clone, Copy)]
pub struct ListShape {
    /// Items per page when `limit` is omitted.
    pub default_limit: usize,
    /// The largest `limit`.
    pub max_limit: usize,
    /// Whether pages carry `prev_page` too.
    pub prev_page: bool,
}

impl ListShape {
    /// 20 items, at most 100, forward pages only.
    pub const DEFAULT: Self = Self {
        default_limit: 20,
        max_limit: 100,
        prev_page: false,
    };
}

/// What a list keeps beyond the common `created_at[...]` and `include_archived` filters.
pub enum Select<O> {
    /// Every object.
    All,
    /// Nothing can match: the store is not read.
    Nothing,
    /// The objects the predicate keeps.
    Only(Box<dyn Fn(&O) -> bool + Send + Sync>),
}

/// The stored object of resource `R`.
pub type Obj<R> = <<R as ApiResource>::Store as Store>::Object;

/// What differs between API resources. Everything else is in [`handlers`].
pub trait ApiResource: Send + Sync + Sized + 'static {
    /// Where the objects live.
    type Store: Store;
    /// The create request.
    type Create: DeserializeOwned + Send + Sync;
    /// The update request.
    type Update: DeserializeOwned + Send;

    /// Names and routes.
    const NAMES: Names;
    /// The store of the request's tenant (and parent).
    const STORE: fn(&Cx) -> Self::Store;
    /// Paging.
    const LIST: ListShape = ListShape::DEFAULT;

    /// Maps a create request onto the object to store under `id` (checking it, and what it refers to).
    fn create(cx: &Cx, id: &str, req: &Self::Create) -> impl Future<Output = ApiResult<Obj<Self>>> + Send;

    /// Applies an update request to `current`: the object to store, or `None` when nothing changes.
    fn update(
        cx: &Cx,
        current: &Obj<Self>,
        req: Self::Update,
    ) -> impl Future<Output = ApiResult<Option<Obj<Self>>>> + Send;

    /// The wire form of `objects` (a page of a list, or one object).
    fn render(cx: &Cx, objects: &[Obj<Self>]) -> impl Future<Output = ApiResult<Vec<Value>>> + Send;

    /// The 404 of a missing object.
    fn not_found(id: &str) -> ApiError {
        ApiError::not_found(Self::NAMES.what, id)
    }

    /// Runs before every operation (a nested resource checks its parent here).
    fn enter(_cx: &Cx) -> impl Future<Output = ApiResult<()>> + Send {
        async { Ok(()) }
    }

    /// Runs after a create stored `object`.
    fn created(
        _cx: &Cx,
        _object: &Obj<Self>,
        _req: &Self::Create,
    ) -> impl Future<Output = ApiResult<()>> + Send {
        async { Ok(()) }
    }

    /// Runs after an update stored `after` over `before`.
    fn updated(
        _cx: &Cx,
        _before: &Obj<Self>,
        _after: &Obj<Self>,
    ) -> impl Future<Output = ApiResult<()>> + Send {
        async { Ok(()) }
    }

    /// Runs before the object is deleted.
    fn deleting(_cx: &Cx, _object: &Obj<Self>) -> impl Future<Output = ApiResult<()>> + Send {
        async { Ok(()) }
    }

    /// The resource's own list filters, from the query.
    fn select(_cx: &Cx, _query: &Query) -> ApiResult<Select<Obj<Self>>> {
        Ok(Select::All)
    }

    /// The answer to `GET {path}/{id}` (a resource with retrieve parameters overrides it).
    fn retrieve(cx: &Cx, object: Obj<Self>, _query: Query) -> impl Future<Output = ApiResult<Value>> + Send {
        async move { handlers::render_one::<Self>(cx, &object).await }
    }

    /// Routes of the resource beyond the common ones.
    fn extra_routes(router: Router<AppState>) -> Router<AppState> {
        router
    }
}

/// The routes of resource `R` (see the module documentation).
pub fn routes<R: ApiResource>() -> Router<AppState> {
    let names = R::NAMES;
    let item = format!("{}/{{{}}}", names.path, names.id_param);
    let mut one = get(handlers::retrieve::<R>).post(handlers::update::<R>);
    if names.deleted.is_some() {
        one = one.delete(handlers::delete::<R>);
    }
    let router = Router::new()
        .route(names.path, post(handlers::create::<R>).get(handlers::list::<R>))
        .route(&format!("{item}/archive"), post(handlers::archive::<R>))
        .route(&item, one);
    R::extra_routes(router)
}

/// A context for `tenant` with the path ids `parents`.
pub fn cx(state: AppState, tenant: Tenant, parents: Vec<String>) -> Cx {
    Cx {
        state,
        tenant,
        parents,
    }
}
