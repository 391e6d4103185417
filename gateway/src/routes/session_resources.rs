//! `/v1/sessions/{id}/resources`: the files (and repositories) of a live session. They live in the Session custom
//! resource's `spec.resources`, so a GitOps user declares the same list; every change is a read-modify-write of the
//! spec with the version that was read. The harness copies file resources into the session's sandbox at the next
//! tool call (docs/files.md); the spec's new generation is recorded in Redis before the answer, so the harness's
//! watch-fed copy of the Session is never trusted when it is older than a change already answered.

use axum::{
    Extension, Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    routing::get,
};
use corral_api::{
    Session,
    common::SecretKeyRef,
    repository::{TOKEN_KEY, TOKEN_SECRET_TYPE, token_refusal},
    session::SessionResourceType,
};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::api::PostParams;
use serde::Deserialize;
use serde_json::{Value, json};

use std::collections::BTreeMap;

use super::{
    objects::{self, api},
    session_disk,
};
use crate::{
    auth::Tenant,
    body::parse,
    error::{ApiError, ApiResult},
    mapping::{
        common::{created_at, time, updated_at},
        repository,
        session::{ResourceParam, mount_path, resource, resource_id, resource_object},
    },
    query::Query,
    state::AppState,
};

/// Attempts of a read-modify-write before answering 409.
const ATTEMPTS: usize = 5;
/// The most resources one page may hold.
const MAX_LIMIT: usize = 1000;

/// The routes (authentication and body limits are layered on with the other `/v1` routes).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/sessions/{session_id}/resources", get(list).post(add))
        .route(
            "/v1/sessions/{session_id}/resources/{resource_id}",
            get(retrieve).post(update).delete(delete),
        )
}

/// `POST .../resources/{id}`: the SDK's only field, a repository's new token.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct ResourceUpdate {
    authorization_token: Option<String>,
}

async fn session(state: &AppState, tenant: &Tenant, id: &str) -> ApiResult<Session> {
    objects::get(&api::<Session>(state, tenant), "session", id).await
}

fn object_of(session: &Session, index: usize) -> Value {
    let created = time(created_at(&session.metadata));
    let updated = time(updated_at(&session.metadata));
    resource_object(&session.spec.resources[index], &created, &updated)
}

fn position(session: &Session, resource: &str) -> ApiResult<usize> {
    session
        .spec
        .resources
        .iter()
        .position(|r| resource_id(r) == resource)
        .ok_or_else(|| ApiError::not_found("session resource", resource))
}

/// Reads the session, lets `change` edit its spec, and writes it back with the version that was read (again on a
/// conflict). Answers the session as written.
async fn modify(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
    mut change: impl FnMut(&mut Session) -> ApiResult<()>,
) -> ApiResult<Session> {
    for _ in 0..ATTEMPTS {
        let mut current = writable(state, tenant, id).await?;
        change(&mut current)?;
        if let Some(written) = write_back(state, tenant, id, &current).await? {
            return Ok(written);
        }
    }
    Err(ApiError::conflict("the session changed concurrently; retry"))
}

/// The session, unless it is archived (then its resources cannot change).
async fn writable(state: &AppState, tenant: &Tenant, id: &str) -> ApiResult<Session> {
    let current = session(state, tenant, id).await?;
    if objects::is_archived(&current) {
        return Err(ApiError::field(
            "session_id",
            format!("session {id:?} is archived; its resources cannot change"),
        ));
    }
    Ok(current)
}

/// Writes `changed` with the version it was read at: `None` when the session changed meanwhile (read it again).
async fn write_back(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
    changed: &Session,
) -> ApiResult<Option<Session>> {
    match objects::replace(&api::<Session>(state, tenant), id, changed).await {
        Ok(written) => {
            // The change is made either way: a Redis failure here is logged, not answered as one (a retry of the
            // add would then be refused as a clash with itself).
            super::sessions::record_spec_generation(state, &tenant.namespace, &written).await;
            Ok(Some(written))
        }
        Err(err) if err.status == 409 => Ok(None),
        Err(err) => Err(err),
    }
}

/// `GET .../resources`: every resource in the spec's order; `limit` cuts pages whose `next_page` is the last id.
async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = Query::parse(raw.as_deref());
    if let Some(other) = query.keys().find(|k| !matches!(*k, "limit" | "page")) {
        return Err(ApiError::field(other, "unknown query parameter"));
    }
    let session = session(&state, &tenant, &id).await?;
    let all = session.spec.resources.len();
    let limit = match query.get("limit") {
        None => all.max(1),
        Some(_) => query.limit(all.max(1), MAX_LIMIT)?,
    };
    let start = match query.get("page").filter(|p| !p.is_empty()) {
        None => 0,
        Some(after) => {
            position(&session, after).map_err(|_| ApiError::field("page", "invalid page token"))? + 1
        }
    };
    let end = (start + limit).min(all);
    let data: Vec<Value> = (start..end).map(|i| object_of(&session, i)).collect();
    let next_page = (end < all).then(|| resource_id(&session.spec.resources[end - 1]));
    Ok(Json(json!({ "data": data, "next_page": next_page })))
}

/// `POST .../resources`: adds a `file` resource (the SDK adds no other kind).
async fn add(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let param: ResourceParam = parse(&body)?;
    let new = resource(&param, "")?;
    if new.kind == SessionResourceType::GithubRepository {
        return Err(ApiError::field(
            "type",
            "adding a github_repository to a live session is not supported by Corral yet: give it when the \
             session is created (the SDK adds only file resources)",
        ));
    }
    // The file must be one of the namespace's (another tenant's id is not found), and still there.
    let mut sizes = BTreeMap::new();
    if let Some(file) = &new.file_id {
        let meta = super::files::find(&state, &tenant, file)
            .await
            .map_err(|e| e.with_field_prefix("file_id"))?;
        sizes.insert(file.clone(), meta.size_bytes);
    }
    for _ in 0..ATTEMPTS {
        let mut session = writable(&state, &tenant, &id).await?;
        let path = mount_path(&new);
        if session.spec.resources.iter().any(|r| mount_path(r) == path) {
            return Err(ApiError::field(
                "mount_path",
                format!("{path} is already the mount_path of a resource of this session"),
            ));
        }
        if session.spec.resources.len() >= 64 {
            return Err(ApiError::field(
                "resources",
                "a session holds at most 64 resources",
            ));
        }
        session.spec.resources.push(new.clone());
        // Counted on the version that is written: a concurrent add makes this write conflict and be counted again.
        sizes = session_disk::file_sizes(&state, &tenant, &session.spec.resources, sizes).await?;
        let env = session_disk::environment(&state, &tenant, &session.spec.environment_ref.name).await?;
        session_disk::check_fits(&state, env.as_ref(), &session.spec.resources, &sizes)?;
        if let Some(written) = write_back(&state, &tenant, &id, &session).await? {
            return Ok(Json(object_of(&written, written.spec.resources.len() - 1)));
        }
    }
    Err(ApiError::conflict("the session changed concurrently; retry"))
}

/// `GET .../resources/{id}`.
async fn retrieve(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((id, resource)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let session = session(&state, &tenant, &id).await?;
    Ok(Json(object_of(&session, position(&session, &resource)?)))
}

/// `POST .../resources/{id}`: a repository's new `authorization_token` (the SDK's only update); a file resource has
/// nothing to update. The token is written where the resource reads it from, and the operator carries it into the
/// sandbox's egress grant, so the next `git fetch` or `git push` uses it.
async fn update(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((id, resource)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: ResourceUpdate = parse(&body)?;
    let session = writable(&state, &tenant, &id).await?;
    let index = position(&session, &resource)?;
    let token = match (session.spec.resources[index].kind, req.authorization_token) {
        (_, None) => return Err(ApiError::field("authorization_token", "is required")),
        (SessionResourceType::File, Some(_)) => {
            return Err(ApiError::field(
                "authorization_token",
                "file resources have no token; only github_repository resources can be updated",
            ));
        }
        (SessionResourceType::GithubRepository, Some(token)) => token,
    };
    repository::check_token(&token, "authorization_token")?;
    let session = rotate(&state, &tenant, &session, &resource, &token).await?;
    Ok(Json(object_of(&session, position(&session, &resource)?)))
}

/// Puts `token` where repository resource `resource` of `session` reads its token from: the Secret the gateway
/// wrote for it is rewritten in place; a resource without one (or whose Secret is gone) gets a new one, which its
/// spec then names. A Secret the gateway did not write (a GitOps user's) is its author's to change.
async fn rotate(
    state: &AppState,
    tenant: &Tenant,
    session: &Session,
    resource: &str,
    token: &str,
) -> ApiResult<Session> {
    let id = session.metadata.name.clone().unwrap_or_default();
    let secrets = api::<Secret>(state, tenant);
    let own = |secret: &Secret| {
        secret.type_.as_deref() == Some(TOKEN_SECRET_TYPE) && token_refusal(secret, &id).is_none()
    };
    let index = position(session, resource)?;
    if let Some(reference) = &session.spec.resources[index].authorization_secret_ref {
        match secrets.get_opt(&reference.name).await? {
            Some(mut secret) if own(&secret) => {
                let data = secret.data.get_or_insert_with(Default::default);
                data.insert(reference.key.clone(), ByteString(token.as_bytes().to_vec()));
                secrets
                    .replace(&reference.name, &PostParams::default(), &secret)
                    .await?;
                return Ok(session.clone());
            }
            Some(_) => {
                return Err(ApiError::field(
                    "authorization_token",
                    format!(
                        "this repository's token is in Secret {:?}, which Corral does not write; change the \
                         token there (the sandbox's egress grant follows it)",
                        reference.name
                    ),
                ));
            }
            // Gone, and not one the gateway wrote: whoever named it (a GitOps spec) owns the reference; rewriting
            // the spec to a Secret of the gateway's would be undone by their next sync.
            None if !reference.name.starts_with(&format!("{id}-repo-")) => {
                return Err(ApiError::field(
                    "authorization_token",
                    format!(
                        "this repository's token is to be in Secret {:?}, which does not exist; create it there \
                         with the token (labelled {}={})",
                        reference.name,
                        corral_api::model_key::CREDENTIAL_LABEL,
                        corral_api::repository::CREDENTIAL_REPOSITORY
                    ),
                ));
            }
            None => {}
        }
    }
    // A Secret of its own, named after the resource (whose id is stable while others come and go).
    let name = format!("{id}-repo-{}", resource.trim_start_matches("sesrsc_"));
    let secret = repository::token_secret(session, name.clone(), token);
    match secrets.get_opt(&name).await? {
        Some(existing) if own(&existing) => {
            let replaced = Secret {
                metadata: kube::api::ObjectMeta {
                    resource_version: existing.metadata.resource_version.clone(),
                    ..secret.metadata.clone()
                },
                ..secret
            };
            secrets.replace(&name, &PostParams::default(), &replaced).await?;
        }
        Some(_) => {
            return Err(ApiError::conflict(format!(
                "Secret {name:?} exists and is not this session's repository token"
            )));
        }
        None => {
            secrets.create(&PostParams::default(), &secret).await?;
        }
    }
    modify(state, tenant, &id, |session| {
        let index = position(session, resource)?;
        session.spec.resources[index].authorization_secret_ref = Some(SecretKeyRef {
            name: name.clone(),
            key: TOKEN_KEY.to_owned(),
        });
        Ok(())
    })
    .await
}

/// `DELETE .../resources/{id}`: the harness removes a file from the sandbox at the next tool call.
async fn delete(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path((id, resource)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    modify(&state, &tenant, &id, |session| {
        let index = position(session, &resource)?;
        session.spec.resources.remove(index);
        Ok(())
    })
    .await?;
    Ok(Json(
        json!({ "id": resource, "type": "session_resource_deleted" }),
    ))
}
