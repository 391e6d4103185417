//! `/v1/environments`: create, retrieve, update, list, archive, delete.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, RawQuery, State},
};
use corral_api::Environment;
use kube::api::{DeleteParams, ListParams};
use serde_json::{Value, json};

use super::objects::{self, api};
use crate::{
    auth::Tenant,
    body::parse,
    error::{ApiError, ApiResult},
    mapping::{
        common::created_at,
        environment::{
            EnvironmentCreate, EnvironmentUpdate, apply_update, environment_object, spec_from_create,
        },
    },
    pagination::{SortKey, paginate},
    query::{Order, Query},
    state::AppState,
};

const WHAT: &str = "environment";

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(WHAT, id).with_code("environment_not_found")
}

/// `POST /v1/environments`.
pub async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let spec = spec_from_create(parse::<EnvironmentCreate>(&body)?)?;
    let id = objects::new_id("env");
    let mut env = Environment::new(&id, spec);
    env.metadata.namespace = Some(tenant.namespace.clone());
    let env = objects::create(&api::<Environment>(&state, &tenant), &id, &env).await?;
    Ok(Json(environment_object(&env)))
}

/// `GET /v1/environments/{environment_id}`.
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let env = objects::get(&api::<Environment>(&state, &tenant), WHAT, &id)
        .await
        .map_err(|e| if e.status == 404 { not_found(&id) } else { e })?;
    Ok(Json(environment_object(&env)))
}

/// `POST /v1/environments/{environment_id}`.
pub async fn update(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let api = api::<Environment>(&state, &tenant);
    let mut last_conflict = None;
    for _ in 0..4 {
        let req: EnvironmentUpdate = parse(&body)?;
        let env = objects::get(&api, WHAT, &id)
            .await
            .map_err(|e| if e.status == 404 { not_found(&id) } else { e })?;
        if objects::is_archived(&env) {
            return Err(
                ApiError::invalid(format!("environment {id:?} is archived and cannot be updated"))
                    .with_code("environment_archived"),
            );
        }
        let spec = apply_update(&env.spec, req)?;
        if spec == env.spec {
            return Ok(Json(environment_object(&env)));
        }
        let mut next = env.clone();
        next.spec = spec;
        match objects::replace(&api, &id, &next).await {
            Ok(updated) => return Ok(Json(environment_object(&updated))),
            Err(err) if err.status == 409 => last_conflict = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_conflict.unwrap_or_else(|| ApiError::conflict("the environment changed concurrently; retry")))
}

/// `POST /v1/environments/{environment_id}/archive`.
pub async fn archive(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let env = objects::archive(&api::<Environment>(&state, &tenant), WHAT, &id)
        .await
        .map_err(|e| if e.status == 404 { not_found(&id) } else { e })?;
    Ok(Json(environment_object(&env)))
}

/// `DELETE /v1/environments/{environment_id}`.
pub async fn delete(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let api = api::<Environment>(&state, &tenant);
    objects::get(&api, WHAT, &id)
        .await
        .map_err(|e| if e.status == 404 { not_found(&id) } else { e })?;
    match api.delete(&id, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => return Err(not_found(&id)),
        Err(e) => return Err(e.into()),
    }
    Ok(Json(json!({ "id": id, "type": "environment_deleted" })))
}

/// `GET /v1/environments`: `include_archived`, `created_at[...]`, `limit` (20, at most 100), `page`.
pub async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = Query::parse(query.as_deref());
    let limit = query.limit(20, 100)?;
    let include_archived = query.bool("include_archived")?.unwrap_or(false);
    let range = query.time_range("created_at")?;
    let order = query.order(Order::Desc)?;
    let envs = api::<Environment>(&state, &tenant)
        .list(&ListParams::default())
        .await?;
    let items = envs
        .items
        .into_iter()
        .filter(|e| include_archived || !objects::is_archived(e))
        .filter(|e| range.contains(created_at(&e.metadata)))
        .map(|e| {
            let key = SortKey {
                created: created_at(&e.metadata),
                id: e.metadata.name.clone().unwrap_or_default(),
            };
            (key, e)
        })
        .collect();
    let page = paginate(items, order, limit, query.get("page"))?;
    let data: Vec<Value> = page.data.iter().map(environment_object).collect();
    Ok(Json(json!({ "data": data, "next_page": page.next_page })))
}
