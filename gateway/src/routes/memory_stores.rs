//! `/v1/memory_stores`: create, list (newest first), retrieve, update (name, description, a metadata patch), archive
//! and delete. Per tenant: a store lives under its namespace's Redis prefix, so another namespace's key finds
//! nothing (404). Memories and their versions are in [`super::memories`] and [`super::memory_versions`].

use std::collections::BTreeMap;

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    auth::Tenant,
    body::{nullable, parse},
    error::{ApiError, ApiResult},
    mapping::common::{check_metadata, patch_metadata},
    memory::{
        MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_STORES, STORE_PREFIX, View, new_id,
        store::{Fields, MemoryStores, StoreChange},
        store_object, valid_id,
    },
    query::Query,
    state::AppState,
};

/// Page size of a list without `limit`, and the largest allowed.
pub(crate) const DEFAULT_LIMIT: usize = 20;
pub(crate) const MAX_LIMIT: usize = 100;
/// The most items of a page with `view=full`.
pub(crate) const MAX_FULL_LIMIT: usize = 20;
/// The most entries one list request reads while filtering, before it answers a short page with a `next_page`.
pub(crate) const MAX_SCAN: usize = 1000;
/// Attempts of a read-modify-write of a store before answering 409.
const ATTEMPTS: usize = 5;

/// The routes (authentication and body limits are layered on with the other `/v1` routes).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/memory_stores", get(list).post(create))
        .route(
            "/v1/memory_stores/{memory_store_id}",
            get(retrieve).post(update).delete(delete),
        )
        .route("/v1/memory_stores/{memory_store_id}/archive", post(archive))
}

/// The memory stores of the caller's namespace.
pub(crate) fn stores(state: &AppState, tenant: &Tenant) -> MemoryStores {
    MemoryStores::new(state.log.connection(), &tenant.namespace)
}

/// A Redis failure: a generic message in the envelope, the cause only in the log.
pub(crate) fn redis_error(err: redis::RedisError) -> ApiError {
    if let Some(out_of_memory) = oom(&err) {
        return out_of_memory;
    }
    tracing::warn!(error = %err, "memory stores: Redis failed");
    let mut err = ApiError::unavailable("memory store");
    err.session_log_failure = true;
    err
}

/// Redis refused a write for want of memory: a 503 that says so.
fn oom(err: &redis::RedisError) -> Option<ApiError> {
    (err.code() == Some("OOM")).then(|| {
        let mut e = ApiError::unavailable("memory store: Redis is out of memory");
        e.session_log_failure = true;
        e.with_code("session_log_out_of_memory")
    })
}

/// A store of the tenant, or a 404.
pub(crate) async fn find(stores: &MemoryStores, id: &str) -> ApiResult<Fields> {
    let missing = || ApiError::not_found("memory store", id);
    if !valid_id(id, STORE_PREFIX) {
        return Err(missing());
    }
    stores.store(id).await.map_err(redis_error)?.ok_or_else(missing)
}

/// Refuses every query parameter but `allowed`, by name.
pub(crate) fn only(query: &Query, allowed: &[&str]) -> ApiResult<()> {
    match query.keys().find(|k| !allowed.contains(k)) {
        Some(key) => Err(ApiError::field(key, "Extra inputs are not permitted")),
        None => Ok(()),
    }
}

/// `view`: `basic` or `full`, `default` when absent.
pub(crate) fn view(query: &Query, default: View) -> ApiResult<View> {
    match query.get("view") {
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
pub(crate) fn limit(query: &Query, view: View) -> ApiResult<usize> {
    let max = if view == View::Full {
        MAX_FULL_LIMIT
    } else {
        MAX_LIMIT
    };
    query.limit(DEFAULT_LIMIT.min(max), max)
}

/// The archived error of a store's writes.
pub(crate) fn archived(id: &str) -> ApiError {
    ApiError::invalid(format!(
        "memory store {id:?} is archived: its memories can be read, deleted and redacted, not written"
    ))
    .with_code("memory_store_archived")
}

/// `POST /v1/memory_stores`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct CreateStore {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
}

/// `POST /v1/memory_stores/{id}`: every field optional; `null` leaves a field as it is; in `metadata`, `null`
/// removes a key.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct UpdateStore {
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    metadata: Option<Option<BTreeMap<String, Option<String>>>>,
}

fn check_name(name: &str) -> ApiResult<()> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(ApiError::field(
            "name",
            format!("must be 1 to {MAX_NAME_CHARS} characters, got {chars}"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::field("name", "must not contain control characters"));
    }
    Ok(())
}

fn check_description(description: &str) -> ApiResult<()> {
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::field(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters, got {chars}"),
        ));
    }
    Ok(())
}

fn metadata_json(metadata: &BTreeMap<String, String>) -> String {
    serde_json::to_string(metadata).unwrap_or_else(|_| "{}".to_owned())
}

async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    only(&Query::parse(raw.as_deref()), &[])?;
    let req: CreateStore = parse(&body)?;
    check_name(&req.name)?;
    let description = req.description.unwrap_or_default();
    check_description(&description)?;
    let metadata = req.metadata.unwrap_or_default();
    check_metadata(&metadata)?;
    let stores = stores(&state, &tenant);
    let id = new_id(STORE_PREFIX);
    let fields = [
        ("name", req.name),
        ("description", description),
        ("metadata", metadata_json(&metadata)),
    ];
    if !stores.create_store(&id, &fields).await.map_err(redis_error)? {
        return Err(ApiError::field(
            "name",
            format!("this namespace holds {MAX_STORES} memory stores, the most it may; delete one first"),
        )
        .with_code("too_many_memory_stores"));
    }
    Ok(Json(store_object(&id, &find(&stores, &id).await?)))
}

async fn retrieve(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    only(&Query::parse(raw.as_deref()), &[])?;
    let stores = stores(&state, &tenant);
    Ok(Json(store_object(&id, &find(&stores, &id).await?)))
}

async fn update(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    only(&Query::parse(raw.as_deref()), &[])?;
    let req: UpdateStore = parse(&body)?;
    let name = req.name.flatten();
    if let Some(name) = &name {
        check_name(name)?;
    }
    let description = req.description.flatten();
    if let Some(description) = &description {
        check_description(description)?;
    }
    let stores = stores(&state, &tenant);
    for _ in 0..ATTEMPTS {
        let current = find(&stores, &id).await?;
        if current.contains_key("archived_at") {
            return Err(archived(&id));
        }
        let mut fields = Vec::new();
        if let Some(name) = &name {
            fields.push(("name", name.clone()));
        }
        if let Some(description) = &description {
            fields.push(("description", description.clone()));
        }
        if let Some(Some(patch)) = &req.metadata {
            let now: BTreeMap<String, String> = current
                .get("metadata")
                .and_then(|m| serde_json::from_str(m).ok())
                .unwrap_or_default();
            let patched = patch_metadata(&now, patch, false);
            check_metadata(&patched)?;
            fields.push(("metadata", metadata_json(&patched)));
        }
        if fields.is_empty() {
            return Ok(Json(store_object(&id, &current)));
        }
        let read_at = current.get("updated_at").cloned().unwrap_or_default();
        match stores
            .update_store(&id, &read_at, &fields)
            .await
            .map_err(redis_error)?
        {
            StoreChange::Done => return Ok(Json(store_object(&id, &find(&stores, &id).await?))),
            StoreChange::Missing => return Err(ApiError::not_found("memory store", &id)),
            StoreChange::Archived => return Err(archived(&id)),
            StoreChange::Retry => {}
        }
    }
    Err(ApiError::conflict(
        "the memory store kept changing while it was being updated; try again",
    ))
}

async fn archive(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    only(&Query::parse(raw.as_deref()), &[])?;
    let stores = stores(&state, &tenant);
    find(&stores, &id).await?;
    if !stores.archive_store(&id).await.map_err(redis_error)? {
        return Err(ApiError::not_found("memory store", &id));
    }
    Ok(Json(store_object(&id, &find(&stores, &id).await?)))
}

async fn delete(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    only(&Query::parse(raw.as_deref()), &[])?;
    let stores = stores(&state, &tenant);
    find(&stores, &id).await?;
    if !stores.delete_store(&id).await.map_err(redis_error)? {
        return Err(ApiError::not_found("memory store", &id));
    }
    Ok(Json(json!({ "id": id, "type": "memory_store_deleted" })))
}

/// `GET /v1/memory_stores`: newest first; `limit`, `page`, `include_archived`, `created_at[gte|lte]`.
async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = Query::parse(raw.as_deref());
    only(
        &query,
        &[
            "limit",
            "page",
            "include_archived",
            "created_at[gte]",
            "created_at[lte]",
        ],
    )?;
    let limit = limit(&query, View::Basic)?;
    let include_archived = query.bool("include_archived")?.unwrap_or(false);
    let range = query.time_range("created_at")?;
    let mut before = match query.get("page").filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(
            p.strip_prefix("page_")
                .filter(|id| valid_id(id, STORE_PREFIX))
                .ok_or_else(|| ApiError::field("page", "invalid page token"))?
                .to_owned(),
        ),
    };
    let stores = stores(&state, &tenant);
    let mut data = Vec::new();
    let mut scanned = 0;
    let mut more = false;
    'pages: loop {
        let ids = stores
            .store_ids(before.as_deref(), 100)
            .await
            .map_err(redis_error)?;
        if ids.is_empty() {
            break;
        }
        for id in ids {
            if data.len() == limit || scanned == MAX_SCAN {
                more = true;
                break 'pages;
            }
            scanned += 1;
            before = Some(id.clone());
            let Some(fields) = stores.store(&id).await.map_err(redis_error)? else {
                continue;
            };
            let object = store_object(&id, &fields);
            let created = object["created_at"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok());
            if !include_archived && fields.contains_key("archived_at") {
                continue;
            }
            if created.is_some_and(|t| !range.contains(t)) {
                continue;
            }
            data.push(object);
        }
    }
    let next = before.filter(|_| more).map(|id| format!("page_{id}"));
    Ok(Json(json!({ "data": data, "next_page": next })))
}
