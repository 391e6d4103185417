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
use futures::StreamExt;
use serde_json::{Value, json};

use crate::{
    auth::Tenant,
    error::{ApiError, ApiResult},
    files::{
        BlobError, FileStorage,
        limits::{Busy, Pace},
        meta::{FileIndex, FileMeta, Inserted, blob_key},
        sweep::{forget, sweep},
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
/// Seconds a client is asked to wait when its namespace has every upload slot it may have.
const BUSY_RETRY_SECONDS: u64 = 5;

/// The Files API's routes (authentication is layered on by [`crate::server::router`]; request bodies are not
/// capped by the API's body limit here: an upload is counted against the file size limit as it streams).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/files", get(list).post(upload))
        .route("/v1/files/{file_id}", get(retrieve).delete(delete))
        .route("/v1/files/{file_id}/content", get(download))
}

/// The object storage, or a 503 naming the missing setting.
pub(crate) fn storage(state: &AppState) -> ApiResult<&FileStorage> {
    state.settings.files.as_ref().ok_or_else(|| {
        let mut err = ApiError::for_status(StatusCode::SERVICE_UNAVAILABLE);
        err.message = "the Files API needs object storage, and this gateway has none configured \
                       (--object-store-bucket; see docs/files.md)"
            .to_owned();
        err.with_code("files_not_configured")
    })
}

pub(crate) fn index(state: &AppState, tenant: &Tenant) -> FileIndex {
    FileIndex::new(state.log.connection(), &tenant.namespace)
}

/// A Redis failure: a generic message in the envelope, the cause (addresses, server text) only in the log.
pub(crate) fn redis_error(err: redis::RedisError) -> ApiError {
    tracing::warn!(error = %err, "file metadata: Redis failed");
    let mut err = ApiError::unavailable("file metadata");
    err.session_log_failure = true;
    err
}

pub(crate) fn too_large(max: u64) -> ApiError {
    let mut err = ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE);
    err.message = format!("file: over the limit of {max} bytes per file");
    err.with_code("file_too_large")
}

pub(crate) fn over_quota(quota: u64) -> ApiError {
    let mut err = ApiError::for_status(StatusCode::PAYLOAD_TOO_LARGE);
    err.message = format!(
        "file: this namespace's files would take more than its storage quota of {quota} bytes; delete files to make room"
    );
    err.with_code("storage_quota_exceeded")
}

pub(crate) fn busy(why: Busy) -> ApiError {
    match why {
        Busy::Namespace(n) => {
            let mut err = ApiError::rate_limited(BUSY_RETRY_SECONDS);
            err.message = format!("this namespace already has {n} uploads in progress; retry when one ends");
            err.with_code("too_many_uploads")
        }
        Busy::Gateway(n) => {
            let mut err = ApiError::for_status(StatusCode::SERVICE_UNAVAILABLE);
            err.message = format!("this gateway already streams {n} uploads; retry later");
            err.retry_after = Some(BUSY_RETRY_SECONDS);
            err.with_code("too_many_uploads")
        }
    }
}

/// A blob failure; object storage's own text (endpoint, bucket, server messages) goes only to the log.
pub(crate) fn blob_error(err: BlobError, max: u64) -> ApiError {
    match err {
        BlobError::TooLarge(_) => too_large(max),
        BlobError::Idle(after) => ApiError::field(
            "file",
            format!(
                "the upload sent nothing for {} seconds and was dropped",
                after.as_secs()
            ),
        )
        .with_code("upload_timeout"),
        BlobError::TooSlow(rate) => ApiError::field(
            "file",
            format!(
                "the upload sent less than {} KiB per second on average and was dropped",
                rate.div_ceil(1024)
            ),
        )
        .with_code("upload_too_slow"),
        BlobError::Body(msg) => {
            tracing::info!(error = %msg, "an upload's body failed while it was read");
            ApiError::field(
                "file",
                "the upload failed while it was read (the client sent a broken or incomplete body)",
            )
        }
        BlobError::NotFound => ApiError::internal("the file's bytes are missing from object storage"),
        BlobError::Store(msg) => {
            tracing::warn!(error = %msg, "object storage failed");
            ApiError::unavailable("object storage")
        }
    }
}

/// A plausible file id (`file_` and a ULID): anything else is a 404 without a lookup.
fn valid_id(id: &str) -> bool {
    id.strip_prefix("file_")
        .is_some_and(|u| u.len() == 26 && u.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The file, unless it does not exist, belongs to another namespace, or has expired (then it is removed).
/// The metadata of the tenant's file `id`: 404 when it has none (another namespace's id included) or it expired.
pub(crate) async fn find(state: &AppState, tenant: &Tenant, id: &str) -> ApiResult<FileMeta> {
    let not_found = || ApiError::not_found("file", id);
    if !valid_id(id) {
        return Err(not_found());
    }
    let index = index(state, tenant);
    let meta = index.get(id).await.map_err(redis_error)?.ok_or_else(not_found)?;
    if meta.expired(jiff::Timestamp::now()) {
        if let Ok(files) = storage(state) {
            let _ = forget(&index, files, &tenant.namespace, &meta).await;
        }
        return Err(not_found());
    }
    Ok(meta)
}

/// The longest non-file part an upload may have (its only one, `expires_in_seconds`, is a few digits).
const MAX_FIELD_BYTES: usize = 64;

/// Reads a non-file part, refusing it once it passes `MAX_FIELD_BYTES`: `Field::text` would hold a part of any
/// length in memory, and a chunked body has no length to refuse up front.
async fn small_text(
    mut field: axum::extract::multipart::Field<'_>,
    name: &str,
    idle: std::time::Duration,
) -> ApiResult<String> {
    let mut bytes = Vec::new();
    loop {
        let chunk = tokio::time::timeout(idle, field.chunk())
            .await
            .map_err(|_| blob_error(BlobError::Idle(idle), 0))?
            .map_err(|e| ApiError::invalid(format!("body: {e}")))?;
        let Some(chunk) = chunk else { break };
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

/// The file part's next chunk, failing when the client sends nothing for `idle` or falls under its minimum rate
/// (checked whenever a window of waiting for it closes, chunk or not); None at the part's end.
async fn next_chunk(
    field: &mut axum::extract::multipart::Field<'_>,
    pace: &mut Pace,
    idle: std::time::Duration,
) -> Option<Result<bytes::Bytes, BlobError>> {
    let since = tokio::time::Instant::now();
    let rate = pace.min().bytes_per_second;
    let slow = || Some(Err(BlobError::TooSlow(rate)));
    loop {
        let waited = since.elapsed();
        let idle_left = idle.saturating_sub(waited);
        let wait = pace.window_left().map_or(idle_left, |w| w.min(idle_left));
        let start = tokio::time::Instant::now();
        // `Field::chunk` keeps what it has read in the field's buffer, so a wait cut short by a window's end
        // loses nothing.
        let read = tokio::time::timeout(wait, field.chunk()).await;
        let this_wait = start.elapsed();
        match read {
            Ok(Ok(Some(chunk))) => {
                if !pace.record(this_wait, chunk.len() as u64) {
                    return slow();
                }
                return Some(Ok(chunk));
            }
            Ok(Ok(None)) => return None,
            Ok(Err(e)) => return Some(Err(BlobError::Body(e.to_string()))),
            Err(_) => {
                if !pace.record(this_wait, 0) {
                    return slow();
                }
                if since.elapsed() >= idle {
                    return Some(Err(BlobError::Idle(idle)));
                }
            }
        }
    }
}

/// `POST /v1/files`: a multipart body with the part `file` (streamed to object storage) and, optionally,
/// `expires_in_seconds`. Bounded four ways: the file size limit, the namespace's storage quota, the number of
/// uploads in progress (per gateway and per namespace), and an idle timeout for a client that stops sending.
async fn upload(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    let files = storage(&state)?.clone();
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|l| l > files.max_bytes + FRAMING_BYTES) {
        return Err(too_large(files.max_bytes));
    }
    let slot = files.slots.acquire(&tenant.namespace).map_err(busy)?;
    let index = index(&state, &tenant);
    let used = index.usage().await.map_err(redis_error)?;
    let room = files.namespace_quota_bytes.saturating_sub(used);
    if room == 0 || length.is_some_and(|l| l.saturating_sub(FRAMING_BYTES) > room) {
        return Err(over_quota(files.namespace_quota_bytes));
    }
    let multipart = multipart.map_err(|e| ApiError::invalid(format!("body: {}", e.body_text())))?;
    // The upload runs in a task of its own: a client that goes away mid-upload ends the body (the parts sent so
    // far are aborted), but can never stop the task between storing the bytes and indexing them, which would leave
    // a stored blob that nothing lists.
    let namespace = tenant.namespace.clone();
    let task = tokio::spawn(async move {
        let _slot = slot;
        store(&files, &index, &namespace, multipart, room).await
    });
    let meta = task.await.map_err(ApiError::internal)??;
    Ok(Json(meta.object()))
}

/// Streams the upload's file to object storage (at most `room` bytes, the namespace's quota left when the upload
/// began), then charges it against the quota and indexes it in one script, which checks the quota again (uploads
/// running at once may each have fitted alone); on any failure nothing is kept.
async fn store(
    files: &FileStorage,
    index: &FileIndex,
    namespace: &str,
    mut multipart: Multipart,
    room: u64,
) -> ApiResult<FileMeta> {
    let id = format!("file_{}", ulid::Ulid::new());
    let key = blob_key(namespace, &id);
    let idle = files.idle_timeout;
    let limit = files.max_bytes.min(room);
    let mut stored: Option<(String, String, u64)> = None;
    let mut expires_in: Option<i64> = None;
    let outcome: ApiResult<()> = async {
        loop {
            let field = tokio::time::timeout(idle, multipart.next_field())
                .await
                .map_err(|_| blob_error(BlobError::Idle(idle), 0))?
                .map_err(|e| ApiError::invalid(format!("body: {e}")))?;
            let Some(field) = field else { break };
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
                    let body = futures::stream::unfold(
                        (field, Pace::new(files.min_rate)),
                        move |(mut field, mut pace)| async move {
                            let item = next_chunk(&mut field, &mut pace, idle).await?;
                            Some((item, (field, pace)))
                        },
                    )
                    .boxed();
                    let size = match files.blobs.put(&key, body, limit).await {
                        Err(BlobError::TooLarge(_)) if limit < files.max_bytes => {
                            return Err(over_quota(files.namespace_quota_bytes));
                        }
                        other => other.map_err(|e| blob_error(e, files.max_bytes))?,
                    };
                    stored = Some((filename, mime, size));
                }
                "expires_in_seconds" => {
                    let text = small_text(field, "expires_in_seconds", idle).await?;
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
        id: id.clone(),
        filename,
        mime_type,
        size_bytes,
        created_at,
        expires_at: expires_in.map(|s| created_at + jiff::SignedDuration::from_secs(s)),
        downloadable: true,
        scope: None,
    };
    index_stored(files, index, &meta).await?;
    sweep(index, files, namespace).await;
    Ok(meta)
}

/// Indexes `meta`, whose bytes are stored under its blob key already, charging them against the namespace's quota
/// (one script, which checks the quota again). Over the quota, or surely not stored, its bytes are deleted. The
/// script may have run before its reply was lost: a file that is there is the result; one whose state is unknown
/// keeps its bytes (at worst an orphaned blob, never a listed file without them).
pub(crate) async fn index_stored(files: &FileStorage, index: &FileIndex, meta: &FileMeta) -> ApiResult<()> {
    let id = &meta.id;
    let discard = || async {
        if let Err(err) = files.blobs.delete(&blob_key(index.namespace(), id)).await {
            tracing::warn!(file = %id, error = %err, "could not delete the bytes of a file that was not kept");
        }
    };
    match index.insert(meta, files.namespace_quota_bytes).await {
        Ok(Inserted::Stored) => Ok(()),
        Ok(Inserted::OverQuota) => {
            discard().await;
            Err(over_quota(files.namespace_quota_bytes))
        }
        Err(err) => match index.get(id).await {
            Ok(Some(_)) => {
                tracing::warn!(file = %id, error = %err, "Redis failed after storing a file's metadata; it is kept");
                Ok(())
            }
            Ok(None) => {
                discard().await;
                Err(redis_error(err))
            }
            Err(again) => {
                tracing::warn!(file = %id, error = %again, "could not tell whether a file was stored; its bytes are kept");
                Err(redis_error(err))
            }
        },
    }
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
    // A tenant's bytes are never rendered as a page of the API's origin: no type sniffing, always a download.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(disposition) = HeaderValue::from_str(&attachment(&meta.filename)) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}

/// `Content-Disposition` for a download of `filename`: an ASCII fallback name (anything outside a safe set becomes
/// `_`) and the exact name percent-encoded as RFC 6266's `filename*`.
fn attachment(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ' ') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact: String = filename
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}")
}

/// `DELETE /v1/files/{id}`: metadata first, then the bytes.
async fn delete(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let files = storage(&state)?;
    let meta = find(&state, &tenant, &id).await?;
    // A Redis failure is a 503 with the file untouched (one script removes and releases it, or nothing); only a
    // file someone else removed first is a 404.
    if !forget(&index(&state, &tenant), files, &tenant.namespace, &meta)
        .await
        .map_err(redis_error)?
    {
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
    fn a_download_is_an_attachment_whatever_its_name() {
        assert_eq!(
            attachment("report 1.pdf"),
            "attachment; filename=\"report 1.pdf\"; filename*=UTF-8''report%201.pdf"
        );
        let odd = attachment("a\"b\r\n;é.txt");
        assert!(HeaderValue::from_str(&odd).is_ok(), "{odd}");
        assert!(odd.starts_with("attachment; filename=\"a_b____.txt\";"), "{odd}");
        assert!(odd.ends_with("a%22b%0D%0A%3B%C3%A9.txt"), "{odd}");
    }

    #[test]
    fn store_and_redis_failures_do_not_show_their_cause() {
        let err = blob_error(
            BlobError::Store("PUT http://corral-objects:8333/corral-files/t/x: 500".into()),
            10,
        );
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            !err.message.contains("8333") && !err.message.contains("corral-files"),
            "{}",
            err.message
        );
        let err = redis_error(redis::RedisError::from((
            redis::ErrorKind::Io,
            "connection refused",
            "redis://corral-redis:6379".to_owned(),
        )));
        assert!(!err.message.contains("6379"), "{}", err.message);
    }

    #[test]
    fn busy_uploads_are_a_429_for_the_namespace_and_a_503_for_the_gateway() {
        let err = busy(Busy::Namespace(4));
        assert_eq!(
            (err.status, err.error_code),
            (StatusCode::TOO_MANY_REQUESTS, Some("too_many_uploads"))
        );
        let err = busy(Busy::Gateway(16));
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.retry_after, Some(BUSY_RETRY_SECONDS));
        let err = over_quota(100);
        assert_eq!(
            (err.status, err.error_code),
            (StatusCode::PAYLOAD_TOO_LARGE, Some("storage_quota_exceeded"))
        );
    }

    #[test]
    fn an_oversized_upload_is_a_413_naming_the_limit() {
        let err = too_large(10);
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.message, "file: over the limit of 10 bytes per file");
    }
}
