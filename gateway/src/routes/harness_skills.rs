//! The skills a harness loads for a session's agent, outside the API (no API key opens these routes; only the
//! namespace's own harness ServiceAccount token, as for file resources: see [`super::harness_files`]):
//!
//! - `GET /internal/v1/namespaces/{namespace}/skills/{skill_id}/versions/{version}`: the version's name,
//!   description and files (`latest` for the newest), what the system prompt and the sandbox need;
//! - `GET …/versions/{version}/files/{*path}`: one file's bytes, copied into the sandbox.

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use super::{
    files::{blob_error, storage},
    harness_files::harness_tenant,
    skills::{find, find_version, index},
};
use crate::{
    error::{ApiError, ApiResult},
    skills::upload::MAX_SKILL_BYTES,
    state::AppState,
};

/// The version route's path.
pub const VERSION_PATH: &str = "/internal/v1/namespaces/{namespace}/skills/{skill_id}/versions/{version}";

/// The routes (served next to the API, outside its authentication).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(VERSION_PATH, get(version))
        .route(&format!("{VERSION_PATH}/files/{{*path}}"), get(file))
}

async fn version(
    State(state): State<AppState>,
    Path((namespace, skill_id, version)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    harness_tenant(&state, &headers, &namespace).await?;
    let index = index(&state, &namespace);
    find(&index, &skill_id).await?;
    let meta = find_version(&index, &skill_id, &version).await?;
    Ok(Json(json!({
        "skill_id": skill_id,
        "version": meta.version,
        "name": meta.name,
        "description": meta.description,
        "files": meta.files,
    })))
}

async fn file(
    State(state): State<AppState>,
    Path((namespace, skill_id, version, path)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    harness_tenant(&state, &headers, &namespace).await?;
    let files = storage(&state)?;
    let index = index(&state, &namespace);
    find(&index, &skill_id).await?;
    let meta = find_version(&index, &skill_id, &version).await?;
    let entry = meta
        .files
        .iter()
        .find(|f| f.path == path)
        .ok_or_else(|| ApiError::not_found("skill file", &path))?;
    let stream = files
        .blobs
        .get(&meta.blob_key(entry))
        .await
        .map_err(|e| blob_error(e, MAX_SKILL_BYTES))?;
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(entry.size));
    Ok(response)
}
