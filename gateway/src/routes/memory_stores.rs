//! `/v1/memory_stores`: create, list (newest first), retrieve, update (name, description, a metadata patch), archive
//! and delete. Per tenant: a store lives under its namespace's Redis prefix, so another namespace's key finds
//! nothing (404). Memories and their versions are in [`super::memories`] and [`super::memory_versions`].

use std::collections::BTreeMap;

use axum::{
    Json, Router,
    body::Bytes,
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::memory_call::{Call, MAX_SCAN, archived, find, redis_error};
use crate::{
    body::{nullable, parse},
    error::{ApiError, ApiResult},
    mapping::common::{check_metadata, patch_metadata},
    memory::{
        MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, MAX_STORES, STORE_PREFIX, View, new_id, store::StoreChange,
        store_object, valid_id,
    },
    state::AppState,
};

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

async fn create(call: Call, body: Bytes) -> ApiResult<Json<Value>> {
    call.only(&[])?;
    let req: CreateStore = parse(&body)?;
    check_name(&req.name)?;
    let description = req.description.unwrap_or_default();
    check_description(&description)?;
    let metadata = req.metadata.unwrap_or_default();
    check_metadata(&metadata)?;
    let stores = &call.stores;
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
    Ok(Json(store_object(&id, &find(stores, &id).await?)))
}

async fn retrieve(call: Call) -> ApiResult<Json<Value>> {
    call.only(&[])?;
    let (id, fields) = call.store().await?;
    Ok(Json(store_object(id, &fields)))
}

async fn update(call: Call, body: Bytes) -> ApiResult<Json<Value>> {
    call.only(&[])?;
    let req: UpdateStore = parse(&body)?;
    let name = req.name.flatten();
    if let Some(name) = &name {
        check_name(name)?;
    }
    let description = req.description.flatten();
    if let Some(description) = &description {
        check_description(description)?;
    }
    let (stores, id) = (&call.stores, call.id(0));
    for _ in 0..ATTEMPTS {
        let current = find(stores, id).await?;
        if current.contains_key("archived_at") {
            return Err(archived(id));
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
            return Ok(Json(store_object(id, &current)));
        }
        let read_at = current.get("updated_at").cloned().unwrap_or_default();
        match stores
            .update_store(id, &read_at, &fields)
            .await
            .map_err(redis_error)?
        {
            StoreChange::Done => return Ok(Json(store_object(id, &find(stores, id).await?))),
            StoreChange::Missing => return Err(ApiError::not_found("memory store", id)),
            StoreChange::Archived => return Err(archived(id)),
            StoreChange::Retry => {}
        }
    }
    Err(ApiError::conflict(
        "the memory store kept changing while it was being updated; try again",
    ))
}

async fn archive(call: Call) -> ApiResult<Json<Value>> {
    call.only(&[])?;
    let (id, _) = call.store().await?;
    if !call.stores.archive_store(id).await.map_err(redis_error)? {
        return Err(ApiError::not_found("memory store", id));
    }
    Ok(Json(store_object(id, &find(&call.stores, id).await?)))
}

async fn delete(call: Call) -> ApiResult<Json<Value>> {
    call.only(&[])?;
    let (id, _) = call.store().await?;
    if !call.stores.delete_store(id).await.map_err(redis_error)? {
        return Err(ApiError::not_found("memory store", id));
    }
    Ok(Json(json!({ "id": id, "type": "memory_store_deleted" })))
}

/// `GET /v1/memory_stores`: newest first; `limit`, `page`, `include_archived`, `created_at[gte|lte]`.
async fn list(call: Call) -> ApiResult<Json<Value>> {
    call.only(&[
        "limit",
        "page",
        "include_archived",
        "created_at[gte]",
        "created_at[lte]",
    ])?;
    let query = &call.query;
    let limit = call.limit(View::Basic)?;
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
    let stores = &call.stores;
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
