//! What every memory route starts from ([`Call`]): the caller's memory stores, its key's actor, the query and the
//! path's ids; and the checks and errors the memory routes share.

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};

use crate::{
    auth::Tenant,
    error::{ApiError, ApiResult},
    memory::{STORE_PREFIX, View, api_actor, store::Fields, store::MemoryStores, valid_id},
    query::Query,
    state::AppState,
};

/// Page size of a list without `limit`, and the largest allowed.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;
/// The most items of a page with `view=full`.
const MAX_FULL_LIMIT: usize = 20;
/// The most entries one list request reads while filtering, before it answers a short page with a `next_page`.
pub(crate) const MAX_SCAN: usize = 1000;

/// One request to a memory route.
pub(crate) struct Call {
    /// The memory stores of the caller's namespace.
    pub stores: MemoryStores,
    /// The caller as the SDK's actor object (JSON), for the versions it writes.
    pub actor: String,
    /// The query string.
    pub query: Query,
    /// The path's ids, outermost first (the store's first).
    pub ids: Vec<String>,
}

impl FromRequestParts<AppState> for Call {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let tenant = parts
            .extensions
            .get::<Tenant>()
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("no API key"))?;
        let ids = match Path::<Vec<(String, String)>>::from_request_parts(parts, state).await {
            Ok(Path(ids)) => ids.into_iter().map(|(_, v)| v).collect(),
            Err(_) => Vec::new(),
        };
        Ok(Self {
            stores: MemoryStores::new(state.log.connection(), &tenant.namespace),
            actor: api_actor(&tenant.key_id).to_string(),
            query: Query::parse(parts.uri.query()),
            ids,
        })
    }
}

impl Call {
    /// The path id at `index` (0: the store's).
    pub fn id(&self, index: usize) -> &str {
        self.ids.get(index).map_or("", String::as_str)
    }

    /// Refuses every query parameter but `allowed`, by name.
    pub fn only(&self, allowed: &[&str]) -> ApiResult<()> {
        match self.query.keys().find(|k| !allowed.contains(k)) {
            Some(key) => Err(ApiError::field(key, "Extra inputs are not permitted")),
            None => Ok(()),
        }
    }

    /// The store the path names (its id and fields), or a 404: another namespace's store is not found.
    pub async fn store(&self) -> ApiResult<(&str, Fields)> {
        let id = self.id(0);
        Ok((id, find(&self.stores, id).await?))
    }

    /// `view`: `basic` or `full`, `default` when absent.
    pub fn view(&self, default: View) -> ApiResult<View> {
        match self.query.get("view") {
            None => Ok(default),
            Some("basic") => Ok(View::Basic),
            Some("full") => Ok(View::Full),
            Some(other) => Err(ApiError::field(
                "view",
                format!("must be basic or full, got {other:?}"),
            )),
        }
    }

    /// `limit` (1 to 100, default 20; at most 20 with `view=full`).
    pub fn limit(&self, view: View) -> ApiResult<usize> {
        let max = if view == View::Full {
            MAX_FULL_LIMIT
        } else {
            MAX_LIMIT
        };
        self.query.limit(DEFAULT_LIMIT.min(max), max)
    }
}

/// A store of the caller's namespace, or a 404.
pub(crate) async fn find(stores: &MemoryStores, id: &str) -> ApiResult<Fields> {
    let missing = || ApiError::not_found("memory store", id);
    if !valid_id(id, STORE_PREFIX) {
        return Err(missing());
    }
    stores.store(id).await.map_err(redis_error)?.ok_or_else(missing)
}

/// A Redis failure: a generic message in the envelope, the cause only in the log; a write refused for want of memory
/// says so.
pub(crate) fn redis_error(err: redis::RedisError) -> ApiError {
    let out_of_memory = err.code() == Some("OOM");
    tracing::warn!(error = %err, "memory stores: Redis failed");
    let mut e = ApiError::unavailable(if out_of_memory {
        "memory store: Redis is out of memory"
    } else {
        "memory store"
    });
    e.session_log_failure = true;
    if out_of_memory {
        e.with_code("session_log_out_of_memory")
    } else {
        e
    }
}

/// The error of a write to an archived store.
pub(crate) fn archived(id: &str) -> ApiError {
    ApiError::invalid(format!(
        "memory store {id:?} is archived: its memories can be read, deleted and redacted, not written"
    ))
    .with_code("memory_store_archived")
}
