//! `/v1/sessions`: create (with `initial_events`), retrieve, update, list with filters, archive, delete.

use std::collections::BTreeMap;

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, RawQuery, State},
};
use corral_api::{
    Agent, Environment, Session,
    events::{EventBody, EventParam, SessionUpdated, parse_send_events},
    session::SessionPhase,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams};
use serde_json::{Value, json};

use super::{
    objects::{self, api},
    vaults::get_vault,
};
use crate::{
    auth::Tenant,
    body::parse,
    error::{ApiError, ApiResult},
    mapping::{
        common::created_at,
        session::{
            MAX_INITIAL_EVENTS, SessionCreate, SessionUpdate, apply_update, session_agent, session_object,
            spec_from_create,
        },
        vault::archived,
    },
    pagination::{SortKey, paginate},
    query::{Order, Query},
    state::AppState,
    versions::{
        StoredVersion, all_versions, current_version, ensure_version, spec_at, stored_versions, versions_of,
    },
};

const WHAT: &str = "session";

/// The agents (and their versions) session snapshots are built from.
#[derive(Default)]
struct Agents {
    agents: BTreeMap<String, Agent>,
    versions: BTreeMap<String, Vec<(String, StoredVersion)>>,
}

impl Agents {
    /// Loads one agent (`Some(name)`) or every agent of the namespace.
    async fn load(state: &AppState, tenant: &Tenant, only: Option<&str>) -> ApiResult<Self> {
        let api = api::<Agent>(state, tenant);
        let agents = match only {
            Some(name) => api.get_opt(name).await?.into_iter().collect::<Vec<_>>(),
            None => api.list(&ListParams::default()).await?.items,
        };
        let versions = all_versions(&state.kube, &tenant.namespace, only).await?;
        Ok(Self {
            agents: agents
                .into_iter()
                .map(|a| (a.metadata.name.clone().unwrap_or_default(), a))
                .collect(),
            versions,
        })
    }

    /// The session's `agent`: the agent's definition at the version the session runs.
    fn snapshot(&self, session: &Session) -> Value {
        let name = &session.spec.agent.name;
        let pinned = session.effective_agent_version();
        match self.agents.get(name) {
            Some(agent) => {
                let stored = versions_of(agent, &self.versions);
                let version = pinned.unwrap_or_else(|| current_version(agent, &stored));
                let spec = spec_at(agent, &stored, version).map(|(s, _)| s);
                session_agent(name, version, spec.as_ref())
            }
            None => session_agent(name, pinned.unwrap_or(1), None),
        }
    }
}

async fn render(state: &AppState, tenant: &Tenant, session: &Session) -> ApiResult<Value> {
    let agents = Agents::load(state, tenant, Some(&session.spec.agent.name)).await?;
    Ok(session_object(
        session,
        agents.snapshot(session),
        jiff::Timestamp::now(),
    ))
}

/// Checks `initial_events` as `POST .../events` would, naming fields under `initial_events`.
fn initial_events(req: &SessionCreate) -> ApiResult<Vec<EventParam>> {
    let Some(events) = req.initial_events.as_ref().filter(|e| !e.is_empty()) else {
        return Ok(Vec::new());
    };
    if events.len() > MAX_INITIAL_EVENTS {
        return Err(ApiError::field(
            "initial_events",
            format!(
                "holds {} events; at most {MAX_INITIAL_EVENTS} are allowed",
                events.len()
            ),
        ));
    }
    let body = json!({ "events": events }).to_string();
    let params = parse_send_events(body.as_bytes())
        .map_err(|e| ApiError::field(&e.field.replacen("events", "initial_events", 1), e.message))?;
    if let Some(i) = params
        .iter()
        .position(|p| !matches!(p, EventParam::UserMessage(_)))
    {
        return Err(ApiError::field(
            &format!("initial_events[{i}].type"),
            "only user.message events may be sent in initial_events",
        ));
    }
    Ok(params)
}

/// Checks that every vault of `vault_ids` is a vault of the tenant that is not archived.
async fn check_vaults(state: &AppState, tenant: &Tenant, req: &SessionCreate) -> ApiResult<()> {
    let secrets = api::<Secret>(state, tenant);
    for (i, id) in req.vault_ids.iter().flatten().enumerate() {
        let vault = get_vault(&secrets, id).await.map_err(|e| {
            if e.status == 404 {
                ApiError::not_found("vault", id).with_field_prefix(&format!("vault_ids[{i}]"))
            } else {
                e
            }
        })?;
        if archived(&vault.metadata) {
            return Err(ApiError::field(
                &format!("vault_ids[{i}]"),
                format!("vault {id:?} is archived; new sessions cannot use it"),
            ));
        }
    }
    Ok(())
}

/// `POST /v1/sessions`.
pub async fn create(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let req: SessionCreate = parse(&body)?;
    let initial = initial_events(&req)?;
    let env_id = &req.environment_id;
    let env = objects::get(&api::<Environment>(&state, &tenant), "environment", env_id)
        .await
        .map_err(|e| {
            if e.status == 404 {
                e.with_code("environment_not_found")
            } else {
                e
            }
        })?;
    if objects::is_archived(&env) {
        return Err(ApiError::field(
            "environment_id",
            format!("environment {env_id:?} is archived; new sessions cannot use it"),
        )
        .with_code("environment_archived"));
    }
    check_vaults(&state, &tenant, &req).await?;
    let agent = objects::get(&api::<Agent>(&state, &tenant), "agent", &req.agent.id).await?;
    let version = match req.agent.version {
        Some(v) => {
            let stored = stored_versions(&state.kube, &agent).await?;
            if spec_at(&agent, &stored, v).is_none() {
                return Err(ApiError::not_found(
                    "agent version",
                    &format!("{} v{v}", req.agent.id),
                ));
            }
            if v == current_version(&agent, &stored) {
                ensure_version(&state.kube, &agent).await?;
            }
            v
        }
        None => ensure_version(&state.kube, &agent).await?,
    };
    let spec = spec_from_create(&req, version)?;
    let id = objects::new_id("sesn");
    let mut session = Session::new(&id, spec);
    session.metadata.namespace = Some(tenant.namespace.clone());
    let sessions = api::<Session>(&state, &tenant);
    let session = objects::create(&sessions, &id, &session).await?;
    if !initial.is_empty() {
        let log = state.log.session(&tenant.namespace, &id);
        let appended = async {
            super::events::append_traced(&log, initial).await?;
            state.log.enqueue(&tenant.namespace, &id).await
        }
        .await;
        if let Err(err) = appended {
            // Leave no half-created session behind: the client sees the error and may retry the whole create.
            let _ = sessions.delete(&id, &DeleteParams::default()).await;
            return Err(err.into());
        }
    }
    Ok(Json(render(&state, &tenant, &session).await?))
}

/// `GET /v1/sessions/{session_id}`.
pub async fn retrieve(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let session = objects::get(&api::<Session>(&state, &tenant), WHAT, &id).await?;
    Ok(Json(render(&state, &tenant, &session).await?))
}

/// `POST /v1/sessions/{session_id}`: `title`, `metadata` (patch). A change emits `session.updated`.
pub async fn update(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let api = api::<Session>(&state, &tenant);
    let mut last_conflict = None;
    for _ in 0..4 {
        let req: SessionUpdate = parse(&body)?;
        let session = objects::get(&api, WHAT, &id).await?;
        let spent = session
            .status
            .as_ref()
            .and_then(|s| s.list_cost.as_ref())
            .and_then(corral_api::budget::Money::cents);
        let (spec, changes) = apply_update(&session.spec, req, spent)?;
        if changes.is_empty() {
            return Ok(Json(render(&state, &tenant, &session).await?));
        }
        let mut next = session.clone();
        next.spec = spec;
        match objects::replace(&api, &id, &next).await {
            Ok(updated) => {
                let event = EventBody::SessionUpdated(SessionUpdated {
                    title: changes.title,
                    metadata: changes.metadata,
                    budget: changes.budget,
                    ..SessionUpdated::default()
                });
                state
                    .log
                    .session(&tenant.namespace, &id)
                    .append_user([event])
                    .await?;
                return Ok(Json(render(&state, &tenant, &updated).await?));
            }
            Err(err) if err.status == 409 => last_conflict = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last_conflict.unwrap_or_else(|| ApiError::conflict("the session changed concurrently; retry")))
}

/// `POST /v1/sessions/{session_id}/archive`.
pub async fn archive(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let session = objects::archive(&api::<Session>(&state, &tenant), WHAT, &id).await?;
    Ok(Json(render(&state, &tenant, &session).await?))
}

/// `DELETE /v1/sessions/{session_id}`: appends `session.deleted` (which ends every open stream), then deletes the
/// Session; the operator's finalizer removes the log.
pub async fn delete(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let api = api::<Session>(&state, &tenant);
    objects::get(&api, WHAT, &id).await?;
    state
        .log
        .session(&tenant.namespace, &id)
        .append_user([EventBody::SessionDeleted(Default::default())])
        .await?;
    match api.delete(&id, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Json(json!({ "id": id, "type": "session_deleted" })))
}

/// `GET /v1/sessions`: `agent_id`, `agent_version`, `created_at[...]`, `include_archived`, `statuses[]`, `order`
/// (desc), `limit` (20, at most 1000), `page`; answers a bidirectional page.
pub async fn list(
    State(state): State<AppState>,
    Extension(tenant): Extension<Tenant>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let query = Query::parse(query.as_deref());
    let limit = query.limit(20, 1000)?;
    let include_archived = query.bool("include_archived")?.unwrap_or(false);
    let range = query.time_range("created_at")?;
    let order = query.order(Order::Desc)?;
    let agent_id = query.get("agent_id");
    let agent_version = query.positive("agent_version")?;
    if agent_version.is_some() && agent_id.is_none() {
        return Err(ApiError::field(
            "agent_version",
            "may only be given together with agent_id",
        ));
    }
    let mut statuses = Vec::new();
    for (i, s) in query.all("statuses").into_iter().enumerate() {
        statuses.push(match s {
            "idle" => SessionPhase::Idle,
            "running" => SessionPhase::Running,
            "rescheduling" => SessionPhase::Rescheduling,
            "terminated" => SessionPhase::Terminated,
            other => {
                return Err(ApiError::field(
                    &format!("statuses[{i}]"),
                    format!("unknown status {other:?}; expected idle, running, rescheduling or terminated"),
                ));
            }
        });
    }
    // Corral has no deployments or memory stores: nothing can match those filters.
    // An agent id that cannot name an object matches nothing either.
    let impossible = query.get("deployment_id").is_some()
        || query.get("memory_store_id").is_some()
        || agent_id.is_some_and(|a| !objects::plausible(a));
    let sessions = if impossible {
        Vec::new()
    } else {
        api::<Session>(&state, &tenant)
            .list(&ListParams::default())
            .await?
            .items
    };
    let agents = if impossible {
        Agents::default()
    } else {
        Agents::load(&state, &tenant, agent_id).await?
    };
    let items = sessions
        .into_iter()
        .filter(|s| include_archived || !objects::is_archived(s))
        .filter(|s| range.contains(created_at(&s.metadata)))
        .filter(|s| agent_id.is_none_or(|a| s.spec.agent.name == a))
        .filter(|s| agent_version.is_none_or(|v| s.effective_agent_version() == Some(v)))
        .filter(|s| {
            let phase = s.status.as_ref().and_then(|st| st.phase).unwrap_or_default();
            statuses.is_empty() || statuses.contains(&phase)
        })
        .map(|s| {
            let key = SortKey {
                created: created_at(&s.metadata),
                id: s.metadata.name.clone().unwrap_or_default(),
            };
            (key, s)
        })
        .collect();
    let page = paginate(items, order, limit, query.get("page"))?;
    let now = jiff::Timestamp::now();
    let data: Vec<Value> = page
        .data
        .iter()
        .map(|s| session_object(s, agents.snapshot(s), now))
        .collect();
    Ok(Json(
        json!({ "data": data, "next_page": page.next_page, "prev_page": page.prev_page }),
    ))
}
