//! `/v1/memory_stores/{id}/memories`: create, retrieve, update (content and/or path, with an optional
//! `content_sha256` precondition), list in path order (`path_prefix`, `depth`) and delete (optionally only when the
//! content is the expected one). Every write adds a version whose `created_by` is the caller's `api_actor`. A failed
//! precondition is a 409 `memory_precondition_failed_error`, a taken path a 409 `memory_path_conflict_error`, both
//! with `x-should-retry: false`.

use axum::{Json, Router, body::Bytes, routing::get};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;
use serde_json::{Value, json};

use super::memory_call::{Call, archived, redis_error};
use crate::{
    body::{nullable, parse},
    error::{ApiError, ApiResult},
    memory::{
        MAX_CONTENT_BYTES, MAX_MEMORIES, MAX_STORE_BYTES, MEMORY_PREFIX, VERSION_PREFIX, View, memory_object,
        new_id,
        paths::{Listed, check_path, check_prefix, listed},
        store::{Fields, MemoryStores, Write, Written},
        valid_id, valid_sha256,
    },
    query::Query,
    state::AppState,
};

/// The routes (authentication and body limits are layered on with the other `/v1` routes).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/memory_stores/{memory_store_id}/memories",
            get(list).post(create),
        )
        .route(
            "/v1/memory_stores/{memory_store_id}/memories/{memory_id}",
            get(retrieve).post(update).delete(delete),
        )
}

/// `POST .../memories`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct CreateMemory {
    #[serde(default, deserialize_with = "nullable")]
    path: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    content: Option<Option<String>>,
}

/// `POST .../memories/{id}`: `null` leaves a field as it is.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct UpdateMemory {
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    precondition: Option<Precondition>,
}

/// The SDK's `BetaManagedAgentsPreconditionParam`.
#[derive(Deserialize, Debug)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Precondition {
    ContentSha256 { content_sha256: String },
}

/// A required string field of a create.
fn required(field: &str, value: Option<Option<String>>) -> ApiResult<String> {
    match value {
        None => Err(ApiError::field(field, "Field required")),
        Some(None) => Err(ApiError::field(field, "must be a string")),
        Some(Some(v)) => Ok(v),
    }
}

fn check_content(content: &str) -> ApiResult<()> {
    if content.len() > MAX_CONTENT_BYTES {
        return Err(ApiError::field(
            "content",
            format!(
                "is {} bytes, over the limit of {MAX_CONTENT_BYTES} bytes (UTF-8)",
                content.len()
            ),
        ));
    }
    Ok(())
}

fn check_sha(field: &str, sha: &str) -> ApiResult<()> {
    if valid_sha256(sha) {
        Ok(())
    } else {
        Err(ApiError::field(
            field,
            "must be a SHA-256 as 64 lowercase hexadecimal characters",
        ))
    }
}

/// The answer to a write, or its error.
fn written(
    outcome: Written,
    store: &str,
    memory: &str,
    expected_field: &str,
    view: View,
) -> ApiResult<Option<Value>> {
    match outcome {
        Written::Stored(mut fields) => {
            let content = fields.remove("content");
            let content = if view == View::Full { content } else { None };
            Ok((!fields.is_empty()).then(|| memory_object(store, memory, &fields, content.as_deref())))
        }
        Written::Unchanged => Ok(None),
        Written::NoStore => Err(ApiError::not_found("memory store", store)),
        Written::Archived => Err(archived(store)),
        Written::NoMemory => Err(ApiError::not_found("memory", memory)),
        Written::Precondition(now) => Err(ApiError::memory_precondition_failed(format!(
            "{expected_field}: the memory's content_sha256 is {now}, not the expected one; read it again"
        ))),
        Written::PathTaken(other) => Err(ApiError::memory_path_conflict(format!(
            "path: memory {other:?} of this store already has this path"
        ))),
        Written::TooMany => Err(ApiError::field(
            "path",
            format!("this memory store holds {MAX_MEMORIES} memories, the most it may; delete one first"),
        )
        .with_code("too_many_memories")),
        Written::Full => Err(ApiError::field(
            "content",
            format!(
                "this memory store's versions hold {MAX_STORE_BYTES} bytes, the most they may; redact old versions or delete memories"
            ),
        )
        .with_code("memory_store_full")),
    }
}

/// A memory of the store, or a 404.
async fn find_memory(stores: &MemoryStores, store: &str, id: &str, content: bool) -> ApiResult<Fields> {
    let missing = || ApiError::not_found("memory", id);
    if !valid_id(id, MEMORY_PREFIX) {
        return Err(missing());
    }
    stores
        .memory(store, id, content)
        .await
        .map_err(redis_error)?
        .ok_or_else(missing)
}

/// The wire form of a memory read from Redis.
fn object(store: &str, id: &str, mut fields: Fields) -> Value {
    let content = fields.remove("content");
    memory_object(store, id, &fields, content.as_deref())
}

/// Checks the store (and, unless creating, the memory) the path names, then writes with a new version by the caller.
async fn apply(call: &Call, mode: &str, memory: &str, change: Change<'_>) -> ApiResult<Written> {
    let (store, _) = call.store().await?;
    if mode != "create" {
        find_memory(&call.stores, store, memory, false).await?;
    }
    let write = Write {
        mode,
        memory,
        path: change.path,
        content: change.content,
        expected: change.expected,
        actor: &call.actor,
    };
    call.stores
        .write(store, &new_id(VERSION_PREFIX), write)
        .await
        .map_err(redis_error)
}

/// What a write changes.
#[derive(Default)]
struct Change<'a> {
    path: Option<&'a str>,
    content: Option<&'a str>,
    expected: Option<&'a str>,
}

async fn create(call: Call, body: Bytes) -> ApiResult<Json<Value>> {
    call.only(&["view"])?;
    let view = call.view(View::Basic)?;
    let req: CreateMemory = parse(&body)?;
    let path = required("path", req.path)?;
    let content = required("content", req.content)?;
    check_path("path", &path)?;
    check_content(&content)?;
    let memory = new_id(MEMORY_PREFIX);
    let change = Change {
        path: Some(&path),
        content: Some(&content),
        expected: None,
    };
    let outcome = apply(&call, "create", &memory, change).await?;
    match written(outcome, call.id(0), &memory, "", view)? {
        Some(object) => Ok(Json(object)),
        None => Err(ApiError::internal("a new memory was not stored")),
    }
}

async fn retrieve(call: Call) -> ApiResult<Json<Value>> {
    call.only(&["view"])?;
    let view = call.view(View::Full)?;
    let (store, _) = call.store().await?;
    let id = call.id(1);
    let fields = find_memory(&call.stores, store, id, view == View::Full).await?;
    Ok(Json(object(store, id, fields)))
}

async fn update(call: Call, body: Bytes) -> ApiResult<Json<Value>> {
    call.only(&["view"])?;
    let view = call.view(View::Basic)?;
    let req: UpdateMemory = parse(&body)?;
    if let Some(path) = &req.path {
        check_path("path", path)?;
    }
    if let Some(content) = &req.content {
        check_content(content)?;
    }
    let expected = match &req.precondition {
        Some(Precondition::ContentSha256 { content_sha256 }) => {
            check_sha("precondition.content_sha256", content_sha256)?;
            Some(content_sha256.as_str())
        }
        None => None,
    };
    let (store, id) = (call.id(0), call.id(1));
    let change = Change {
        path: req.path.as_deref(),
        content: req.content.as_deref(),
        expected,
    };
    let outcome = apply(&call, "update", id, change).await?;
    match written(outcome, store, id, "precondition.content_sha256", view)? {
        Some(object) => Ok(Json(object)),
        None => {
            let fields = find_memory(&call.stores, store, id, view == View::Full).await?;
            Ok(Json(object(store, id, fields)))
        }
    }
}

async fn delete(call: Call) -> ApiResult<Json<Value>> {
    call.only(&["expected_content_sha256"])?;
    let expected = call.query.get("expected_content_sha256");
    if let Some(sha) = expected {
        check_sha("expected_content_sha256", sha)?;
    }
    let (store, id) = (call.id(0), call.id(1));
    let change = Change {
        expected,
        ..Change::default()
    };
    let outcome = apply(&call, "delete", id, change).await?;
    written(outcome, store, id, "expected_content_sha256", View::Basic)?;
    Ok(Json(json!({ "id": id, "type": "memory_deleted" })))
}

/// `depth`: a non-negative integer (0: every memory below the prefix).
fn depth(query: &Query) -> ApiResult<usize> {
    match query.get("depth") {
        None => Ok(0),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| ApiError::field("depth", format!("must be a non-negative integer, got {v:?}"))),
    }
}

/// The `page` token: the exclusive lower bound the next page starts after, as URL-safe base64.
fn page_bound(query: &Query) -> ApiResult<Option<Vec<u8>>> {
    match query.get("page").filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(p) => p
            .strip_prefix("page_")
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .filter(|b| b.first() == Some(&b'/'))
            .map(Some)
            .ok_or_else(|| ApiError::field("page", "invalid page token")),
    }
}

/// One item of a listing before its memory is read.
enum Item {
    Memory(String),
    Prefix(String),
}

/// `GET .../memories`: path order; `path_prefix` (ends with `/`), `depth`, `view`, `limit`, `page`.
async fn list(call: Call) -> ApiResult<Json<Value>> {
    call.only(&["path_prefix", "depth", "view", "limit", "page"])?;
    let query = &call.query;
    let view = call.view(View::Basic)?;
    let limit = call.limit(view)?;
    let depth = depth(query)?;
    let prefix = query.get("path_prefix").unwrap_or("/");
    check_prefix(prefix)?;
    let mut after = page_bound(query)?;
    let (store, _) = call.store().await?;
    let stores = &call.stores;

    let mut items = Vec::new();
    let mut more = false;
    'fill: loop {
        let batch = stores
            .paths(store, prefix, after.as_deref(), 100)
            .await
            .map_err(redis_error)?;
        if batch.is_empty() {
            break;
        }
        for path in batch {
            if items.len() == limit {
                more = true;
                break 'fill;
            }
            match listed(&path, prefix, depth) {
                Listed::Memory => {
                    after = Some(path.clone().into_bytes());
                    items.push(Item::Memory(path));
                }
                Listed::Prefix(rolled) => {
                    let mut bound = rolled.as_bytes().to_vec();
                    bound.push(0xff);
                    items.push(Item::Prefix(rolled.to_owned()));
                    after = Some(bound);
                    // Everything below the prefix is skipped: read on after it.
                    continue 'fill;
                }
            }
        }
    }

    let paths: Vec<String> = items
        .iter()
        .filter_map(|i| match i {
            Item::Memory(p) => Some(p.clone()),
            Item::Prefix(_) => None,
        })
        .collect();
    let ids = stores.ids_of(store, &paths).await.map_err(redis_error)?;
    let mut ids = ids.into_iter();
    let mut data = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Prefix(path) => data.push(json!({ "type": "memory_prefix", "path": path })),
            Item::Memory(_) => {
                let Some(Some(id)) = ids.next() else { continue };
                let fields = stores
                    .memory(store, &id, view == View::Full)
                    .await
                    .map_err(redis_error)?;
                if let Some(fields) = fields {
                    data.push(object(store, &id, fields));
                }
            }
        }
    }
    let next = after
        .filter(|_| more)
        .map(|b| format!("page_{}", URL_SAFE_NO_PAD.encode(b)));
    Ok(Json(json!({ "data": data, "next_page": next })))
}
