//! `/v1/files`: upload (multipart, streamed to object storage), list newest first, metadata, download, delete.
//! Bytes live in the object store (`crate::files::blob`), metadata in Redis under the tenant's prefix
//! (`crate::files::meta`); another namespace's key finds nothing (404).

use axum::{
    Extension, Json, Router,
    body::Body,
    extract::{Multipart, Path, RawQuery, State, multipart::MultipartRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};

use crate::{
    auth::Tenant,
    error::{ApiError, ApiResult},
    files::{
        BlobError, FileStorage,
        meta::{FileIndex, FileMeta, blob_key},
    },
    query::Query,
    state::AppState,
};

/// The SDK's range of `expires_in_seconds`: one hour to ninety days.
const EXPIRY_SECONDS: std::ops::RangeInclusive<i64> = 3600..=7_776_000;
/// Page size of a list without `limit`, and the largest allowed.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;
/// Most ids one `ids` filter may name.
const MAX_IDS: usize = 100;
/// Room for the multipart framing and the other fields of an upload, above the file's own limit.
const FRAMING_BYTES: u64 = 64 << 10;
/// Expired files removed per sweep (each upload and list sweeps the tenant's).
const SWEEP_BATCH: usize = 100;

/// The Files API's routes (authentication is layered on by [`crate::server::router`]; request bodies are not
/// capped by the API's body limit here: an upload is counted against the file size limit as it streams).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/files", get(list).post(upload))
        .route("/v1/files/{file_id}", get(retrieve).delete(delete))
        .route("/v1/files/{file_id}/content", get(download))
}

fn storage(state: &AppState) -> ApiResult<&FileStorage> {
    state.settings.files.as_ref().ok_or_else(|| {
        let mut err = ApiError::for_status(StatusCode::SERVICE_UNAVAILABLE);
        err.message = "the Files API needs object storage, and this gateway has none configured \
                       (--object-store-bucket; see docs/files.md)"
            .to_owned();
        err.with_code("files_not_configured")
    })
}

fn index(state: &AppState, tenant: &Tenant) -> FileIndex {
    FileIndex::new(state.log.connection(), &tenant.namespace)
}

fn redis_error(err: redis::RedisError) -> ApiError {
    let mut err = ApiError::unavailable(format!("file metadata: {err}"));
    err.session_log_failure = true;
    err
}

fn too_large(max: u64) -> ApiError {
    let mut err = ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE);
    err.message = format!("file: over the limit of {max} bytes per file");
    err.with_code("file_too_large")
}

fn blob_error(err: BlobError, max: u64) -> ApiError {
    match err {
        BlobError::TooLarge(_) => too_large(max),
        BlobError::Body(msg) => {
            ApiError::field("file", format!("the upload failed while it was read: {msg}"))
        }
        BlobError::NotFound => ApiError::internal("the file's bytes are missing from object storage"),
        BlobError::Store(msg) => ApiError::unavailable(format!("object storage: {msg}")),
    }
}

/// A plausible file id (`file_` and a ULID): anything else is a 404 without a lookup.
fn valid_id(id: &str) -> bool {
    id.strip_prefix("file_")
        .is_some_and(|u| u.len() == 26 && u.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The file, unless it does not exist, belongs to another namespace, or has expired (then it is removed).
async fn find(state: &AppState, tenant: &Tenant, id: &str) -> ApiResult<FileMeta> {
    let not_found = || ApiError::not_found("file", id);
    if !valid_id(id) {
        return Err(not_found());
    }
    let index = index(state, tenant);
    let meta = index.get(id).await.map_err(redis_error)?.ok_or_else(not_found)?;
    if meta.expired(jiff::Timestamp::now()) {
        if let Ok(files) = storage(state) {
            forget(&index, files, &tenant.namespace, &meta).await;
        }
        return Err(not_found());
    }
    Ok(meta)
}

/// Removes a file's metadata, then its bytes (a failure leaves at worst an orphaned blob, never a listed file
/// without bytes).
async fn forget(index: &FileIndex, files: &FileStorage, namespace: &str, meta: &FileMeta) -> bool {
    let removed = index.remove(meta).await.unwrap_or(false);
    if let Err(err) = files.blobs.delete(&blob_key(namespace, &meta.id)).await {
        tracing::warn!(file = %meta.id, error = %err, "could not delete an expired or deleted file's bytes");
    }
    removed
}

/// Removes up to [`SWEEP_BATCH`] of the tenant's expired files.
async fn sweep(index: &FileIndex, files: &FileStorage, namespace: &str) {
    let Ok(ids) = index.expired(jiff::Timestamp::now(), SWEEP_BATCH).await else {
        return;
    };
    for id in ids {
        if let Ok(Some(meta)) = index.get(&id).await {
            forget(index, files, namespace, &meta).await;
        }
    }
}

/// The longest non-file part an upload may have (its only one, `expires_in_seconds`, is a few digits).
const MAX_FIELD_BYTES: usize = 64;

/// Reads a non-file part, refusing it once it passes `MAX_FIELD_BYTES`: `Field::text` would hold a part of any
/// length in memory, and a chunked body has no length to refuse up front.
async fn small_text(mut field: axum::extract::multipart::Field<'_>, name: &str) -> ApiResult<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| ApiError::invalid(format!("body: {e}")))?
    {
        if bytes.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err(ApiError::field(
                name,
                format!("longer than {MAX_FIELD_BYTES} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes).map_err(|_| ApiError::field(name, "not UTF-8 text"))
}

/// `POST /v1/files`: a multipart body with the part `file` (streamed to object storage) and, optionally,
/// `expires_in_seconds`.
async fn upload(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let files = storage(&state)?;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|l| l > files.max_bytes + FRAMING_BYTES) {
        return Err(too_large(files.max_bytes));
    }
    let mut multipart = multipart.map_err(|e| ApiError::invalid(format!("body: {}", e.body_text())))?;
    let id = format!("file_{}", ulid::Ulid::new());
    let key = blob_key(&tenant.namespace, &id);
    let mut stored: Option<(String, String, u64)> = None;
    let mut expires_in: Option<i64> = None;
    let multipart_error =
        |e: axum::extract::multipart::MultipartError| ApiError::invalid(format!("body: {e}"));
    let outcome: ApiResult<()> = async {
        while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
            match field.name().unwrap_or_default() {
                "file" if stored.is_some() => {
                    return Err(ApiError::field("file", "only one file per upload"));
                }
                "file" => {
                    let filename = field
                        .file_name()
                        .and_then(|n| n.rsplit(['/', '\\']).next())
                        .filter(|n| !n.is_empty())
                        .unwrap_or("unnamed")
                        .to_owned();
                    let mime = field
                        .content_type()
                        .unwrap_or("application/octet-stream")
                        .to_owned();
                    let body = field.map_err(|e| BlobError::Body(e.to_string())).boxed();
                    let size = files
                        .blobs
                        .put(&key, body, files.max_bytes)
                        .await
                        .map_err(|e| blob_error(e, files.max_bytes))?;
                    stored = Some((filename, mime, size));
                }
                "expires_in_seconds" => {
                    let text = small_text(field, "expires_in_seconds").await?;
                    let seconds = text
                        .trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|s| EXPIRY_SECONDS.contains(s))
                        .ok_or_else(|| {
                            ApiError::field(
                                "expires_in_seconds",
                                format!(
                                    "must be an integer from {} to {}, got {text:?}",
                                    EXPIRY_SECONDS.start(),
                                    EXPIRY_SECONDS.end()
                                ),
                            )
                        })?;
                    expires_in = Some(seconds);
                }
                other => return Err(ApiError::field(other, "Extra inputs are not permitted")),
            }
        }
        Ok(())
    }
    .await;
    let Some((filename, mime_type, size_bytes)) = stored.clone().filter(|_| outcome.is_ok()) else {
        if stored.is_some() {
            let _ = files.blobs.delete(&key).await;
        }
        outcome?;
        return Err(ApiError::field(
            "file",
            "is required (a multipart part named \"file\")",
        ));
    };
    let created_at = jiff::Timestamp::now();
    let meta = FileMeta {
        id,
        filename,
        mime_type,
        size_bytes,
        created_at,
        expires_at: expires_in.map(|s| created_at + jiff::SignedDuration::from_secs(s)),
        downloadable: true,
        scope: None,
    };
    let index = index(&state, &tenant);
    if let Err(err) = index.insert(&meta).await {
        let _ = files.blobs.delete(&key).await;
        return Err(redis_error(err));
    }
    sweep(&index, files, &tenant.namespace).await;
    Ok(Json(meta.object()))
}

/// `GET /v1/files`: newest first; `limit` (1 to 1000, default 20) and `page`, or `ids` (at most 100, one page);
/// `scope_id` keeps the files of one scope (a session's outputs).
async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let files = storage(&state)?;
    let query = Query::parse(raw.as_deref());
    if let Some(key) = query
        .keys()
        .find(|k| !matches!(*k, "ids" | "ids[]" | "limit" | "page" | "scope_id"))
    {
        return Err(ApiError::field(key, "Extra inputs are not permitted"));
    }
    let index = index(&state, &tenant);
    sweep(&index, files, &tenant.namespace).await;
    let now = jiff::Timestamp::now();
    let scope = query.get("scope_id").filter(|s| !s.is_empty());
    let ids = query.all("ids");
    if !ids.is_empty() {
        if query.get("page").is_some() || query.get("limit").is_some() {
            return Err(ApiError::field("ids", "cannot be combined with page or limit"));
        }
        let mut unique: Vec<&str> = ids.clone();
        unique.sort_unstable_by(|a, b| b.cmp(a));
        unique.dedup();
        if unique.len() > MAX_IDS {
            return Err(ApiError::field("ids", format!("at most {MAX_IDS} ids")));
        }
        let mut data = Vec::new();
        for id in unique.into_iter().filter(|id| valid_id(id)) {
            if let Some(meta) = index.get(id).await.map_err(redis_error)?
                && !meta.expired(now)
                && scope.is_none_or(|s| meta.scope.as_ref().is_some_and(|m| m.id == s))
            {
                data.push(meta.object());
            }
        }
        return Ok(Json(page_object(data, None)));
    }
    let limit = query.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let before = match query.get("page").filter(|p| !p.is_empty()) {
        None => None,
        Some(p) => Some(
            p.strip_prefix("page_")
                .filter(|id| valid_id(id))
                .ok_or_else(|| ApiError::field("page", "invalid page token"))?,
        ),
    };
    let ids = index.page(scope, before, limit + 1).await.map_err(redis_error)?;
    let more = ids.len() > limit;
    let mut data = Vec::new();
    let mut last = None;
    for id in ids.into_iter().take(limit) {
        if let Some(meta) = index.get(&id).await.map_err(redis_error)?
            && !meta.expired(now)
        {
            data.push(meta.object());
        }
        last = Some(id);
    }
    let next = last.filter(|_| more).map(|id| format!("page_{id}"));
    Ok(Json(page_object(data, next)))
}

fn page_object(data: Vec<Value>, next_page: Option<String>) -> Value {
    let first = data.first().map(|f| f["id"].clone());
    let last = data.last().map(|f| f["id"].clone());
    json!({
        "data": data,
        "next_page": next_page,
        "has_more": next_page.is_some(),
        "first_id": first,
        "last_id": last,
    })
}

/// `GET /v1/files/{id}`: the metadata.
async fn retrieve(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    storage(&state)?;
    Ok(Json(find(&state, &tenant, &id).await?.object()))
}

/// `GET /v1/files/{id}/content`: the bytes, streamed from object storage.
async fn download(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let files = storage(&state)?;
    let meta = find(&state, &tenant, &id).await?;
    if !meta.downloadable {
        return Err(
            ApiError::field("file_id", "this file cannot be downloaded").with_code("file_not_downloadable")
        );
    }
    let stream = files
        .blobs
        .get(&blob_key(&tenant.namespace, &id))
        .await
        .map_err(|e| blob_error(e, files.max_bytes))?;
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(&meta.mime_type) {
        headers.insert(header::CONTENT_TYPE, mime);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size_bytes));
    Ok(response)
}

/// `DELETE /v1/files/{id}`: metadata first, then the bytes.
async fn delete(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let files = storage(&state)?;
    let meta = find(&state, &tenant, &id).await?;
    if !forget(&index(&state, &tenant), files, &tenant.namespace, &meta).await {
        return Err(ApiError::not_found("file", &id));
    }
    Ok(Json(json!({ "id": id, "type": "file_deleted" })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_file_ids_are_looked_up() {
        assert!(valid_id("file_01JABCDEFGHJKMNPQRSTVWXYZ0"));
        assert!(!valid_id("file_"));
        assert!(!valid_id("file_01JABCDEFGHJKMNPQRSTVWXYZ0:x"));
        assert!(!valid_id("agent-01JABCDEFGHJKMNPQRSTVWXYZ0"));
    }

    #[test]
    fn a_page_names_its_ends_and_whether_more_follow() {
        let page = page_object(
            vec![json!({ "id": "file_b" }), json!({ "id": "file_a" })],
            Some("page_file_a".into()),
        );
        assert_eq!(page["first_id"], "file_b");
        assert_eq!(page["last_id"], "file_a");
        assert_eq!(page["has_more"], true);
        assert_eq!(page_object(vec![], None)["has_more"], false);
    }

    #[test]
    fn an_oversized_upload_is_a_413_naming_the_limit() {
        let err = too_large(10);
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.message, "file: over the limit of 10 bytes per file");
    }
}
