//! `/v1/agents`: create, retrieve (`?version=`), update (versioned, optimistic `version`), list, archive, versions.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, RawQuery, State},
};
use corral_api::Agent;
use jiff::Timestamp;
use kube::api::ListParams;
use serde_json::{Value, json};

use super::objects::{self, api};
use crate::{
    auth::Tenant,
    body::parse,
    error::{ApiError, ApiResult},
    mapping::{
        agent::{agent_object, apply_update, spec_from_create},
        agent_params::{AgentCreate, AgentUpdate},
        common::created_at,
    },
    pagination::{SortKey, paginate},
    query::{Order, Query},
    state::AppState,
    versions::{all_versions, current_version, ensure_version, spec_at, stored_versions, versions_of},
};

const WHAT: &str = "agent";

/// `POST /v1/agents`.
pub async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let spec = spec_from_create(parse::<AgentCreate>(&body)?)?;
    let id = objects::new_id("agent");
    let mut agent = Agent::new(&id, spec);
    agent.metadata.namespace = Some(tenant.namespace.clone());
    let api = api::<Agent>(&state, &tenant);
    let agent = objects::create(&api, &id, &agent).await?;
    let version = ensure_version(&state.kube, &agent).await?;
    Ok(Json(agent_object(&agent, &agent.spec, version, None)))
}

/// `GET /v1/agents/{agent_id}`.
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = Query::parse(query.as_deref());
    let agent = objects::get(&api::<Agent>(&state, &tenant), WHAT, &id).await?;
    let stored = stored_versions(&state.kube, &agent).await?;
    let version = match query.positive("version")? {
        Some(v) => v,
        None => current_version(&agent, &stored),
    };
    let (spec, updated) = spec_at(&agent, &stored, version)
        .ok_or_else(|| ApiError::not_found("agent version", &format!("{id} v{version}")))?;
    Ok(Json(agent_object(&agent, &spec, version, updated)))
}

/// `POST /v1/agents/{agent_id}`.
pub async fn update(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let api = api::<Agent>(&state, &tenant);
    let mut last_conflict = None;
    for _ in 0..4 {
        let req: AgentUpdate = parse(&body)?;
        let agent = objects::get(&api, WHAT, &id).await?;
        // Store the version the client saw (an object made with kubectl may not have one yet), so that the
        // change below becomes the next version.
        let current = ensure_version(&state.kube, &agent).await?;
        if let Some(expected) = req.version
            && expected != current
        {
            return Err(ApiError::conflict(format!(
                "version: the agent is at version {current}, not {expected}; read it again and retry"
            )));
        }
        let spec = apply_update(&agent.spec, req)?;
        if spec == agent.spec {
            let version = ensure_version(&state.kube, &agent).await?;
            return Ok(Json(agent_object(&agent, &agent.spec, version, None)));
        }
        let mut next = agent.clone();
        next.spec = spec;
        match objects::replace(&api, &id, &next).await {
            Ok(updated) => {
                let version = ensure_version(&state.kube, &updated).await?;
                return Ok(Json(agent_object(&updated, &updated.spec, version, None)));
            }
            Err(err) if err.status == 409 => last_conflict = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_conflict.unwrap_or_else(|| ApiError::conflict("the agent changed concurrently; retry")))
}

/// `POST /v1/agents/{agent_id}/archive`.
pub async fn archive(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let agent = objects::archive(&api::<Agent>(&state, &tenant), WHAT, &id).await?;
    let stored = stored_versions(&state.kube, &agent).await?;
    Ok(Json(agent_object(
        &agent,
        &agent.spec,
        current_version(&agent, &stored),
        None,
    )))
}

/// `GET /v1/agents`: `created_at[gte|lte|gt|lt]`, `include_archived`, `limit` (20, at most 100), `page`.
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
    let agents = api::<Agent>(&state, &tenant).list(&ListParams::default()).await?;
    let all = all_versions(&state.kube, &tenant.namespace, None).await?;
    let items = agents
        .items
        .into_iter()
        .filter(|a| include_archived || !objects::is_archived(a))
        .filter(|a| range.contains(created_at(&a.metadata)))
        .map(|a| {
            let key = SortKey {
                created: created_at(&a.metadata),
                id: a.metadata.name.clone().unwrap_or_default(),
            };
            (key, a)
        })
        .collect();
    let page = paginate(items, order, limit, query.get("page"))?;
    let data: Vec<Value> = page
        .data
        .iter()
        .map(|a| {
            let stored = versions_of(a, &all);
            agent_object(a, &a.spec, current_version(a, &stored), None)
        })
        .collect();
    Ok(Json(json!({ "data": data, "next_page": page.next_page })))
}

/// `GET /v1/agents/{agent_id}/versions`: newest first, `limit` (20, at most 100), `page`.
pub async fn versions(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = Query::parse(query.as_deref());
    let limit = query.limit(20, 100)?;
    let agent = objects::get(&api::<Agent>(&state, &tenant), WHAT, &id).await?;
    let stored = stored_versions(&state.kube, &agent).await?;
    let current = current_version(&agent, &stored);
    let mut items: Vec<(SortKey, VersionItem)> = stored
        .iter()
        .map(|v| {
            let item = (v.version.version, v.version.spec.clone(), Some(v.created));
            (version_key(v.version.version), item)
        })
        .collect();
    if !stored.iter().any(|v| v.version.version == current) {
        items.push((version_key(current), (current, agent.spec.clone(), None)));
    }
    let page = paginate(items, Order::Desc, limit, query.get("page"))?;
    let data: Vec<Value> = page
        .data
        .iter()
        .map(|(version, spec, created)| agent_object(&agent, spec, *version, *created))
        .collect();
    Ok(Json(json!({ "data": data, "next_page": page.next_page })))
}

/// A version number, its spec and when it was stored (`None`: not stored yet).
type VersionItem = (i64, corral_api::AgentSpec, Option<Timestamp>);

fn version_key(version: i64) -> SortKey {
    SortKey {
        created: Timestamp::from_millisecond(version).unwrap_or(Timestamp::UNIX_EPOCH),
        id: String::new(),
    }
}
