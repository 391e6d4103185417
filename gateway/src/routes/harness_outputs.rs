//! `/internal/v1/namespaces/{namespace}/sessions/{session}/outputs`: the harness stores what a session's agent left
//! in the sandbox's outputs directory as Files scoped to the session (`scope: {type: "session", id}`), which the API
//! lists with `GET /v1/files?scope_id=<session>`. Not an API route: only the namespace's own harness
//! ServiceAccount token opens it (as `super::harness_files`).
//!
//! - `GET` answers `{"outputs": {"<path>": "<fingerprint>"}}`, what is stored already, so the harness sends only
//!   new and changed files.
//! - `PUT ?path=&fingerprint=` streams one output's bytes to object storage (never whole in memory), then indexes
//!   it as a File (the namespace's quota applies), records it under its path, and removes the File an earlier
//!   version of the same path was stored as: the listing shows each output once, as it is now.

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, header},
    routing::get,
};
use corral_sandbox_protocol::pod::output_path_ok;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Value, json};

use super::files::{blob_error, busy, index_stored, over_quota, redis_error, storage};
use super::harness_files::harness_tenant;
use crate::{
    error::{ApiError, ApiResult},
    files::{
        BlobError,
        meta::{FileIndex, FileMeta, Scope, blob_key},
        sweep::forget,
    },
    state::AppState,
};

/// The route's path.
pub const PATH: &str = "/internal/v1/namespaces/{namespace}/sessions/{session}/outputs";

/// The longest fingerprint taken (the daemon's are `<size>:<ns>`, about 30 bytes).
const MAX_FINGERPRINT_BYTES: usize = 128;

/// The routes (served next to the API, outside its authentication).
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, get(list).put(store))
}

/// A Kubernetes object name (what a session id is): anything else is refused before it names a key.
fn session_ok(session: &str) -> bool {
    !session.is_empty()
        && session.len() <= 253
        && session
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

async fn list(
    State(state): State<AppState>,
    Path((namespace, session)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    harness_tenant(&state, &headers, &namespace).await?;
    if !session_ok(&session) {
        return Err(ApiError::not_found("session", &session));
    }
    let index = FileIndex::new(state.log.connection(), &namespace);
    let outputs = index.outputs(&session).await.map_err(redis_error)?;
    let outputs: serde_json::Map<String, Value> = outputs
        .into_iter()
        .map(|(path, (_, fingerprint))| (path, Value::String(fingerprint)))
        .collect();
    Ok(Json(json!({ "outputs": outputs })))
}

/// The query of `PUT`.
#[derive(Debug, Deserialize)]
struct Output {
    /// The path under the outputs directory: the File's `filename`.
    path: String,
    /// What the daemon listed for the file, recorded so an unchanged file is not sent again.
    fingerprint: String,
}

async fn store(
    State(state): State<AppState>,
    Path((namespace, session)): Path<(String, String)>,
    query: Result<Query<Output>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    harness_tenant(&state, &headers, &namespace).await?;
    // Judged after the caller: a stranger learns nothing from the query's errors.
    let Query(output) = query.map_err(|e| ApiError::invalid(format!("query: {}", e.body_text())))?;
    if !session_ok(&session) {
        return Err(ApiError::not_found("session", &session));
    }
    if !output_path_ok(&output.path) {
        return Err(ApiError::field(
            "path",
            "must be a relative path of plain segments, at most 512 bytes",
        ));
    }
    if output.fingerprint.is_empty()
        || output.fingerprint.len() > MAX_FINGERPRINT_BYTES
        || output.fingerprint.contains(' ')
    {
        return Err(ApiError::field(
            "fingerprint",
            format!("must be 1 to {MAX_FINGERPRINT_BYTES} bytes without spaces"),
        ));
    }
    let files = storage(&state)?.clone();
    let slot = files.slots.acquire(&namespace).map_err(busy)?;
    let index = FileIndex::new(state.log.connection(), &namespace);
    let used = index.usage().await.map_err(redis_error)?;
    let room = files.namespace_quota_bytes.saturating_sub(used);
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if room == 0 || length.is_some_and(|l| l > room) {
        return Err(over_quota(files.namespace_quota_bytes));
    }
    // In a task of its own, as an upload: a harness that goes away cannot stop it between storing the bytes and
    // indexing them.
    let task = tokio::spawn(async move {
        let _slot = slot;
        store_output(&files, &index, &namespace, &session, output, body, room).await
    });
    let meta = task.await.map_err(ApiError::internal)??;
    Ok(Json(meta.object()))
}

async fn store_output(
    files: &crate::files::FileStorage,
    index: &FileIndex,
    namespace: &str,
    session: &str,
    output: Output,
    body: Body,
    room: u64,
) -> ApiResult<FileMeta> {
    let id = format!("file_{}", ulid::Ulid::new());
    let key = blob_key(namespace, &id);
    let limit = files.max_bytes.min(room);
    let stream = body
        .into_data_stream()
        .map_err(|e| BlobError::Body(e.to_string()))
        .boxed();
    let size_bytes = match files.blobs.put(&key, stream, limit).await {
        Err(BlobError::TooLarge(_)) if limit < files.max_bytes => {
            return Err(over_quota(files.namespace_quota_bytes));
        }
        other => other.map_err(|e| blob_error(e, files.max_bytes))?,
    };
    let meta = FileMeta {
        id: id.clone(),
        filename: output.path.clone(),
        mime_type: mime_type(&output.path),
        size_bytes,
        created_at: jiff::Timestamp::now(),
        expires_at: None,
        downloadable: true,
        scope: Some(Scope {
            kind: "session".to_owned(),
            id: session.to_owned(),
        }),
    };
    index_stored(files, index, &meta).await?;
    // A failure here leaves the new File listed and the path's record unchanged: the next sync stores the output
    // once more (two Files for it, never none).
    let replaced = index
        .record_output(session, &output.path, &id, &output.fingerprint)
        .await
        .map_err(redis_error)?;
    if let Some(old) = replaced
        && let Ok(Some(old)) = index.get(&old).await
        && let Err(err) = forget(index, files, namespace, &old).await
    {
        tracing::warn!(file = %old.id, error = %err, "could not remove the earlier version of an output");
    }
    Ok(meta)
}

/// The media type an output's name suggests (`application/octet-stream` when it suggests none).
fn mime_type(path: &str) -> String {
    mime_guess::from_path(path)
        .first_or_octet_stream()
        .essence_str()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outputs_type_comes_from_its_name() {
        assert_eq!(mime_type("report.md"), "text/markdown");
        assert_eq!(mime_type("charts/data.csv"), "text/csv");
        assert_eq!(mime_type("plot.png"), "image/png");
        assert_eq!(mime_type("noext"), "application/octet-stream");
    }

    #[test]
    fn only_object_names_can_be_sessions() {
        assert!(session_ok("sesn-01j9"));
        for bad in ["", "A", "a/b", "a b", "a:b", &"a".repeat(254)] {
            assert!(!session_ok(bad), "{bad:?}");
        }
    }
}
