//! `/v1/skills` and `/v1/skills/{id}/versions`: create a skill (or a new version of one) from a multipart upload of
//! its directory, list newest first, retrieve (a version by id or `latest`), delete, and download a version's files
//! as a zip archive. Per tenant: another namespace's key finds nothing (404).

use std::io::Write as _;

use axum::{
    Extension, Json, Router,
    body::Body,
    extract::{Multipart, Path, RawQuery, State, multipart::MultipartRejection},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};
use futures::{StreamExt as _, TryStreamExt as _};
use serde_json::{Value, json};

use super::files::{blob_error, storage};
use crate::{
    auth::Tenant,
    error::{ApiError, ApiResult},
    files::FileStorage,
    query::Query,
    skills::{
        Added, MAX_SKILLS, MAX_VERSIONS, Removed, SkillIndex, SkillMeta, VersionMeta, blob_prefix,
        upload::{self, SkillUpload},
        valid_skill_id, valid_version_id,
    },
    state::AppState,
};

/// Page size of a list without `limit`, and the largest allowed.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1000;
/// The `source` values of the SDK's list filter; only `custom` skills exist in Corral.
const SOURCES: [&str; 4] = ["custom", "anthropic", "anthropic_example", "plugin"];

/// The Skills API's routes (authentication is layered on by [`crate::server::router`]).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/skills", get(list).post(create))
        .route("/v1/skills/{skill_id}", get(retrieve).delete(delete))
        .route(
            "/v1/skills/{skill_id}/versions",
            get(list_versions).post(create_version),
        )
        .route(
            "/v1/skills/{skill_id}/versions/{version}",
            get(retrieve_version).delete(delete_version),
        )
        .route("/v1/skills/{skill_id}/versions/{version}/content", get(download))
}

/// The skills of `namespace`.
pub(crate) fn index(state: &AppState, namespace: &str) -> SkillIndex {
    SkillIndex::new(state.log.connection(), namespace)
}

/// A Redis failure: a generic message in the envelope, the cause only in the log.
pub(crate) fn redis_error(err: redis::RedisError) -> ApiError {
    tracing::warn!(error = %err, "skill metadata: Redis failed");
    let mut err = ApiError::unavailable("skill metadata");
    err.session_log_failure = true;
    err
}

/// A skill of the tenant, or a 404.
pub(crate) async fn find(index: &SkillIndex, id: &str) -> ApiResult<SkillMeta> {
    let missing = || ApiError::not_found("skill", id);
    if !valid_skill_id(id) {
        return Err(missing());
    }
    index.get(id).await.map_err(redis_error)?.ok_or_else(missing)
}

/// A version of a skill (`latest` for its newest), or a 404.
pub(crate) async fn find_version(index: &SkillIndex, skill: &str, version: &str) -> ApiResult<VersionMeta> {
    let missing = || ApiError::not_found("skill version", version);
    let id = if version == "latest" {
        index
            .latest(skill)
            .await
            .map_err(redis_error)?
            .ok_or_else(missing)?
    } else if valid_version_id(version) {
        version.to_owned()
    } else {
        return Err(missing());
    };
    index
        .version(skill, &id)
        .await
        .map_err(redis_error)?
        .ok_or_else(missing)
}

/// The wire form of `skill`, with its newest version's id.
async fn render(index: &SkillIndex, skill: &SkillMeta) -> ApiResult<Value> {
    let latest = index
        .latest(&skill.id)
        .await
        .map_err(redis_error)?
        .unwrap_or_default();
    Ok(skill.object(&latest))
}

/// Stores an upload's files and records them as skill `id`'s newest version (creating the skill when `create` is
/// given); on any failure the files are removed again.
async fn store_version(
    files: &FileStorage,
    index: &SkillIndex,
    namespace: &str,
    id: &str,
    upload: SkillUpload,
    create: Option<&SkillMeta>,
) -> ApiResult<VersionMeta> {
    let prefix = blob_prefix(namespace, id, &ulid::Ulid::new().to_string());
    let stored = store_files(files, &prefix, &upload).await?;
    let mut version = VersionMeta {
        skill_id: id.to_owned(),
        version: String::new(),
        name: upload.name,
        description: upload.description,
        blobs: prefix,
        files: stored,
    };
    let err = match index.add_version(id, &version, create).await {
        Ok(Added::Stored(v)) => {
            version.version = v;
            return Ok(version);
        }
        Ok(Added::NoSkill) => ApiError::not_found("skill", id),
        Ok(Added::Exists) => ApiError::internal("a new skill's id is taken"),
        Ok(Added::TooManySkills) => ApiError::field(
            "files",
            format!("this namespace holds {MAX_SKILLS} skills, the most it may; delete one first"),
        )
        .with_code("too_many_skills"),
        Ok(Added::TooManyVersions) => ApiError::field(
            "files",
            format!("this skill holds {MAX_VERSIONS} versions, the most it may; delete an old one first"),
        )
        .with_code("too_many_skill_versions"),
        Err(err) => redis_error(err),
    };
    remove_files(files, &version.blobs, &version.files).await;
    Err(err)
}

fn no_query(raw: Option<&str>) -> ApiResult<()> {
    match Query::parse(raw).keys().next() {
        Some(key) => Err(ApiError::field(key, "Extra inputs are not permitted")),
        None => Ok(()),
    }
}

/// Stores an upload's files under a new prefix; on failure removes what it stored.
async fn store_files(
    files: &FileStorage,
    prefix: &str,
    upload: &SkillUpload,
) -> ApiResult<Vec<crate::skills::SkillFile>> {
    let mut stored = Vec::with_capacity(upload.files.len());
    for (path, bytes) in &upload.files {
        let key = format!("{prefix}{path}");
        let body = futures::stream::once(std::future::ready(Ok(bytes.clone()))).boxed();
        if let Err(err) = files.blobs.put(&key, body, upload::MAX_SKILL_BYTES).await {
            remove_files(files, prefix, &stored).await;
            return Err(blob_error(err, upload::MAX_SKILL_BYTES));
        }
        stored.push(crate::skills::SkillFile {
            path: path.clone(),
            size: bytes.len() as u64,
        });
    }
    Ok(stored)
}

async fn remove_files(files: &FileStorage, prefix: &str, stored: &[crate::skills::SkillFile]) {
    for file in stored {
        if let Err(err) = files.blobs.delete(&format!("{prefix}{}", file.path)).await {
            tracing::warn!(prefix, path = %file.path, error = %err, "could not delete a skill file's bytes");
        }
    }
}

fn multipart_body(multipart: Result<Multipart, MultipartRejection>) -> ApiResult<Multipart> {
    multipart.map_err(|e| ApiError::invalid(format!("body: {}", e.body_text())))
}

/// `POST /v1/skills`: the multipart parts `files[]` (the skill's directory) and `display_name`.
async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(raw): RawQuery,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    no_query(raw.as_deref())?;
    let files = storage(&state)?.clone();
    let upload = upload::read(multipart_body(multipart)?, true).await?;
    let id = format!("skill_{}", ulid::Ulid::new());
    let now = jiff::Timestamp::now();
    let skill = SkillMeta {
        id: id.clone(),
        display_name: upload.display_name.clone().unwrap_or_else(|| upload.name.clone()),
        name: upload.name.clone(),
        created_at: now,
        updated_at: now,
    };
    let index = index(&state, &tenant.namespace);
    store_version(&files, &index, &tenant.namespace, &id, upload, Some(&skill)).await?;
    Ok(Json(render(&index, &find(&index, &id).await?).await?))
}

/// `GET /v1/skills`: newest first; `limit` (1 to 1000, default 20), `page`, `source`.
async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = Query::parse(raw.as_deref());
    if let Some(key) = query.keys().find(|k| !matches!(*k, "limit" | "page" | "source")) {
        return Err(ApiError::field(key, "Extra inputs are not permitted"));
    }
    let limit = query.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    match query.get("source") {
        None | Some("custom") => {}
        Some(s) if SOURCES.contains(&s) => {
            return Ok(Json(json!({ "data": [], "next_page": null, "has_more": false })));
        }
        Some(other) => {
            return Err(ApiError::field(
                "source",
                format!("must be one of {}, got {other:?}", SOURCES.join(", ")),
            ));
        }
    }
    let before = page_token(&query, valid_skill_id)?;
    let index = index(&state, &tenant.namespace);
    let ids = index.page(before, limit + 1).await.map_err(redis_error)?;
    let more = ids.len() > limit;
    let mut data = Vec::new();
    let mut last = None;
    for id in ids.into_iter().take(limit) {
        if let Some(skill) = index.get(&id).await.map_err(redis_error)? {
            data.push(render(&index, &skill).await?);
        }
        last = Some(id);
    }
    Ok(Json(page(data, last.filter(|_| more))))
}

/// The `page` token of a list (`page_<id>`), checked by `valid`.
fn page_token(query: &Query, valid: fn(&str) -> bool) -> ApiResult<Option<&str>> {
    match query.get("page").filter(|p| !p.is_empty()) {
        None => Ok(None),
        Some(p) => p
            .strip_prefix("page_")
            .filter(|id| valid(id))
            .map(Some)
            .ok_or_else(|| ApiError::field("page", "invalid page token")),
    }
}

fn page(data: Vec<Value>, last: Option<String>) -> Value {
    let next = last.map(|id| format!("page_{id}"));
    json!({ "data": data, "has_more": next.is_some(), "next_page": next })
}

/// `GET /v1/skills/{id}`.
async fn retrieve(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    no_query(raw.as_deref())?;
    let index = index(&state, &tenant.namespace);
    Ok(Json(render(&index, &find(&index, &id).await?).await?))
}

/// `DELETE /v1/skills/{id}`: the skill, every version and their files.
async fn delete(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    no_query(raw.as_deref())?;
    let index = index(&state, &tenant.namespace);
    find(&index, &id).await?;
    let removed = index
        .remove_skill(&id)
        .await
        .map_err(redis_error)?
        .ok_or_else(|| ApiError::not_found("skill", &id))?;
    if let Ok(files) = storage(&state) {
        for version in &removed {
            remove_files(files, &version.blobs, &version.files).await;
        }
    }
    Ok(Json(json!({ "id": id, "type": "skill_deleted" })))
}

/// `POST /v1/skills/{id}/versions`: the multipart parts `files[]`; the skill's name cannot change.
async fn create_version(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Json<Value>> {
    no_query(raw.as_deref())?;
    let files = storage(&state)?.clone();
    let index = index(&state, &tenant.namespace);
    let skill = find(&index, &id).await?;
    let upload = upload::read(multipart_body(multipart)?, false).await?;
    if upload.name != skill.name {
        return Err(ApiError::field(
            "files",
            format!(
                "SKILL.md names the skill {:?}, but this skill is {:?}; a skill's name cannot change",
                upload.name, skill.name
            ),
        ));
    }
    let version = store_version(&files, &index, &tenant.namespace, &id, upload, None).await?;
    Ok(Json(version.object()))
}

/// `GET /v1/skills/{id}/versions`: newest first; `limit` (1 to 1000, default 20) and `page`.
async fn list_versions(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = Query::parse(raw.as_deref());
    if let Some(key) = query.keys().find(|k| !matches!(*k, "limit" | "page")) {
        return Err(ApiError::field(key, "Extra inputs are not permitted"));
    }
    let limit = query.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let before = page_token(&query, valid_version_id)?;
    let index = index(&state, &tenant.namespace);
    find(&index, &id).await?;
    let versions = index
        .versions_page(&id, before, limit + 1)
        .await
        .map_err(redis_error)?;
    let more = versions.len() > limit;
    let mut data = Vec::new();
    let mut last = None;
    for v in versions.into_iter().take(limit) {
        if let Some(meta) = index.version(&id, &v).await.map_err(redis_error)? {
            data.push(meta.object());
        }
        last = Some(v);
    }
    Ok(Json(page(data, last.filter(|_| more))))
}

/// `GET /v1/skills/{id}/versions/{version}` (`latest` for the newest).
async fn retrieve_version(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((id, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    no_query(raw.as_deref())?;
    let index = index(&state, &tenant.namespace);
    find(&index, &id).await?;
    Ok(Json(find_version(&index, &id, &version).await?.object()))
}

/// `DELETE /v1/skills/{id}/versions/{version}`: refused for a skill's only version (delete the skill instead).
async fn delete_version(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((id, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    no_query(raw.as_deref())?;
    let index = index(&state, &tenant.namespace);
    find(&index, &id).await?;
    let meta = find_version(&index, &id, &version).await?;
    match index
        .remove_version(&id, &meta.version)
        .await
        .map_err(redis_error)?
    {
        Removed::Version(removed) => {
            if let Ok(files) = storage(&state) {
                remove_files(files, &removed.blobs, &removed.files).await;
            }
        }
        Removed::Missing => return Err(ApiError::not_found("skill version", &version)),
        Removed::Last => {
            return Err(ApiError::field(
                "version",
                "this is the skill's only version; delete the skill instead",
            )
            .with_code("last_skill_version"));
        }
    }
    Ok(Json(
        json!({ "id": meta.version, "type": "skill_version_deleted" }),
    ))
}

/// `GET /v1/skills/{id}/versions/{version}/content`: a zip archive of the version's files under the skill's
/// directory (`<name>/SKILL.md`, ...), entries stored uncompressed.
async fn download(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((id, version)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    no_query(raw.as_deref())?;
    let files = storage(&state)?;
    let index = index(&state, &tenant.namespace);
    find(&index, &id).await?;
    let meta = find_version(&index, &id, &version).await?;
    let mut archive = zip::ZipWriter::new(std::io::Cursor::new(Vec::with_capacity(
        meta.size() as usize + 4096,
    )));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for file in &meta.files {
        let bytes: Vec<bytes::Bytes> = files
            .blobs
            .get(&meta.blob_key(file))
            .await
            .map_err(|e| blob_error(e, upload::MAX_SKILL_BYTES))?
            .try_collect()
            .await
            .map_err(|e| blob_error(e, upload::MAX_SKILL_BYTES))?;
        archive
            .start_file(format!("{}/{}", meta.name, file.path), options)
            .map_err(ApiError::internal)?;
        for chunk in bytes {
            archive.write_all(&chunk).map_err(ApiError::internal)?;
        }
    }
    let zipped = archive.finish().map_err(ApiError::internal)?.into_inner();
    let mut response = Body::from(zipped).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{}.zip\"", meta.name)) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    Ok(response)
}
