//! `/v1/memory_stores/{id}/memory_versions`: list (newest first; filters `memory_id`, `operation`, `session_id`,
//! `api_key_id`, `service_account_id`, `created_at[gte|lte]`), retrieve and redact. A redacted version keeps its
//! record (memory, operation, author, times) and loses its path and content; the version that holds a memory's
//! current content cannot be redacted (update or delete the memory first).

use axum::{
    Json, Router,
    routing::{get, post},
};
use serde_json::{Value, json};

use super::memory_call::{Call, MAX_SCAN, redis_error};
use crate::{
    error::{ApiError, ApiResult},
    memory::{
        MEMORY_PREFIX, VERSION_PREFIX, View,
        store::{Fields, MemoryStores, Redacted},
        valid_id, version_object,
    },
    query::TimeRange,
    state::AppState,
};

/// The routes (authentication and body limits are layered on with the other `/v1` routes).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/memory_stores/{memory_store_id}/memory_versions", get(list))
        .route(
            "/v1/memory_stores/{memory_store_id}/memory_versions/{memory_version_id}",
            get(retrieve),
        )
        .route(
            "/v1/memory_stores/{memory_store_id}/memory_versions/{memory_version_id}/redact",
            post(redact),
        )
}

/// A version of the store, or a 404.
async fn find_version(stores: &MemoryStores, store: &str, id: &str) -> ApiResult<Fields> {
    let missing = || ApiError::not_found("memory version", id);
    if !valid_id(id, VERSION_PREFIX) {
        return Err(missing());
    }
    stores
        .version(store, id)
        .await
        .map_err(redis_error)?
        .ok_or_else(missing)
}

async fn retrieve(call: Call) -> ApiResult<Json<Value>> {
    call.only(&["view"])?;
    let view = call.view(View::Full)?;
    let (store, _) = call.store().await?;
    let id = call.id(1);
    let fields = find_version(&call.stores, store, id).await?;
    Ok(Json(version_object(store, id, &fields, view)))
}

async fn redact(call: Call) -> ApiResult<Json<Value>> {
    call.only(&[])?;
    let (store, _) = call.store().await?;
    let id = call.id(1);
    find_version(&call.stores, store, id).await?;
    match call
        .stores
        .redact(store, id, &call.actor)
        .await
        .map_err(redis_error)?
    {
        Redacted::Done => {}
        Redacted::Missing => return Err(ApiError::not_found("memory version", id)),
        Redacted::Current => {
            return Err(ApiError::invalid(format!(
                "memory version {id:?} holds its memory's current content; update or delete the memory first, then redact this version"
            ))
            .with_code("memory_version_is_current"));
        }
    }
    let fields = find_version(&call.stores, store, id).await?;
    Ok(Json(version_object(store, id, &fields, View::Full)))
}

/// The list's filters on a version's own fields.
struct Filter<'a> {
    operation: Option<&'a str>,
    actor: Option<(&'static str, &'a str)>,
    range: TimeRange,
}

impl Filter<'_> {
    fn matches(&self, object: &Value) -> bool {
        if self.operation.is_some_and(|op| object["operation"] != op) {
            return false;
        }
        if let Some((field, id)) = self.actor
            && object["created_by"][field] != id
        {
            return false;
        }
        let created = object["created_at"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok());
        created.is_none_or(|t| self.range.contains(t))
    }
}

/// `GET .../memory_versions`.
async fn list(call: Call) -> ApiResult<Json<Value>> {
    let query = &call.query;
    call.only(&[
        "memory_id",
        "operation",
        "session_id",
        "api_key_id",
        "service_account_id",
        "created_at[gte]",
        "created_at[lte]",
        "view",
        "limit",
        "page",
    ])?;
    let view = call.view(View::Basic)?;
    let limit = call.limit(view)?;
    let operation = query.get("operation");
    if let Some(op) = operation
        && !matches!(op, "created" | "modified" | "deleted")
    {
        return Err(ApiError::field(
            "operation",
            format!("must be created, modified or deleted, got {op:?}"),
        ));
    }
    let actors = [
        ("session_id", "session_id"),
        ("api_key_id", "api_key_id"),
        ("service_account_id", "service_account_id"),
    ];
    let mut actor = None;
    for (param, field) in actors {
        if let Some(id) = query.get(param) {
            if actor.is_some() {
                return Err(ApiError::field(
                    param,
                    "give at most one of session_id, api_key_id and service_account_id",
                ));
            }
            actor = Some((field, id));
        }
    }
    let filter = Filter {
        operation,
        actor,
        range: query.time_range("created_at")?,
    };
    let memory = query.get("memory_id");
    let mut before = match query.get("page").filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(
            p.strip_prefix("page_")
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or_else(|| ApiError::field("page", "invalid page token"))?,
        ),
    };
    let (store, _) = call.store().await?;
    let stores = &call.stores;
    let mut data = Vec::new();
    let mut more = false;
    if memory.is_none_or(|m| valid_id(m, MEMORY_PREFIX)) {
        let mut scanned = 0;
        'pages: loop {
            let ids = stores
                .version_ids(store, memory, before, 100)
                .await
                .map_err(redis_error)?;
            if ids.is_empty() {
                break;
            }
            for (id, seq) in ids {
                if data.len() == limit || scanned == MAX_SCAN {
                    more = true;
                    break 'pages;
                }
                scanned += 1;
                before = Some(seq);
                if let Some(fields) = stores.version(store, &id).await.map_err(redis_error)? {
                    let object = version_object(store, &id, &fields, view);
                    if filter.matches(&object) {
                        data.push(object);
                    }
                }
            }
        }
    }
    let next = before.filter(|_| more).map(|seq| format!("page_{seq}"));
    Ok(Json(json!({ "data": data, "next_page": next })))
}
