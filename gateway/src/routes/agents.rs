//! `/v1/agents`: Agent custom resources with versions. Special cases: every stored change is a version (kept as
//! ControllerRevisions), an update may name the `version` it was based on, `GET /v1/agents/{id}?version=` reads an
//! older version, `GET /v1/agents/{id}/versions` lists them; agents are archived, never deleted.

use axum::{Json, Router, extract::RawQuery, routing::get};
use corral_api::{Agent, AgentSpec};
use jiff::Timestamp;
use serde_json::{Value, json};

use crate::{
    error::{ApiError, ApiResult},
    mapping::agent::{AgentCreate, AgentUpdate, agent_object, apply_update, spec_from_create},
    pagination::{SortKey, paginate},
    query::{Order, Query},
    resource::{
        ApiResource, CustomResources, Cx, Names,
        handlers::{Item, fetch},
    },
    state::AppState,
    versions::{all_versions, current_version, ensure_version, spec_at, stored_versions, versions_of},
};

/// The agents resource.
pub struct Agents;

impl ApiResource for Agents {
    type Store = CustomResources<Agent>;
    type Create = AgentCreate;
    type Update = AgentUpdate;
    const NAMES: Names = Names::new("agent", "agent", "/v1/agents", "agent_id");
    const STORE: fn(&Cx) -> Self::Store = CustomResources::of;

    async fn create(cx: &Cx, id: &str, req: &AgentCreate) -> ApiResult<Agent> {
        let mut spec = spec_from_create(req.clone())?;
        pin_skills(cx, &mut spec).await?;
        Ok(Agent::new(id, spec))
    }

    /// Stores the first version.
    async fn created(cx: &Cx, agent: &Agent, _req: &AgentCreate) -> ApiResult<()> {
        ensure_version(&cx.state.kube, agent).await.map(drop)
    }

    async fn update(cx: &Cx, agent: &Agent, req: AgentUpdate) -> ApiResult<Option<Agent>> {
        // Store the version the client saw (an object made with kubectl may not have one yet), so that the change
        // becomes the next version.
        let current = ensure_version(&cx.state.kube, agent).await?;
        if let Some(expected) = req.version
            && expected != current
        {
            return Err(ApiError::conflict(format!(
                "version: the agent is at version {current}, not {expected}; read it again and retry"
            )));
        }
        let skills_sent = req.skills.is_some();
        let mut spec = apply_update(&agent.spec, req)?;
        if skills_sent {
            pin_skills(cx, &mut spec).await?;
        }
        Ok((spec != agent.spec).then(|| Agent {
            spec,
            ..agent.clone()
        }))
    }

    /// Stores the new version.
    async fn updated(cx: &Cx, _before: &Agent, agent: &Agent) -> ApiResult<()> {
        ensure_version(&cx.state.kube, agent).await.map(drop)
    }

    async fn render(cx: &Cx, agents: &[Agent]) -> ApiResult<Vec<Value>> {
        let only = match agents {
            [one] => one.metadata.name.as_deref(),
            _ => None,
        };
        let all = all_versions(&cx.state.kube, &cx.tenant.namespace, only).await?;
        // `updated_at` is the current version's, as `retrieve` gives it, so a created or listed agent reads the
        // same as a fetched one (the version is stored a moment after the object).
        Ok(agents
            .iter()
            .map(|a| {
                let stored = versions_of(a, &all);
                let version = current_version(a, &stored);
                let updated = spec_at(a, &stored, version).and_then(|(_, updated)| updated);
                agent_object(a, &a.spec, version, updated)
            })
            .collect())
    }

    async fn retrieve(cx: &Cx, agent: Agent, query: Query) -> ApiResult<Value> {
        let stored = stored_versions(&cx.state.kube, &agent).await?;
        let version = match query.positive("version")? {
            Some(v) => v,
            None => current_version(&agent, &stored),
        };
        let (spec, updated) = spec_at(&agent, &stored, version).ok_or_else(|| {
            let id = agent.metadata.name.clone().unwrap_or_default();
            ApiError::not_found("agent version", &format!("{id} v{version}"))
        })?;
        Ok(agent_object(&agent, &spec, version, updated))
    }

    fn extra_routes(router: Router<AppState>) -> Router<AppState> {
        router.route("/v1/agents/{agent_id}/versions", get(versions))
    }
}

/// Checks that each custom skill of `spec` is one of the tenant's and pins its version: an omitted version (or
/// `latest`) becomes the skill's newest, so an agent version always runs the same files.
async fn pin_skills(cx: &Cx, spec: &mut AgentSpec) -> ApiResult<()> {
    let index = crate::routes::skills::index(&cx.state, &cx.tenant.namespace);
    // Each skill's files go to a directory named after it: two skills of one name would share it.
    let mut names: Vec<String> = Vec::with_capacity(spec.skills.len());
    for (i, skill) in spec.skills.iter_mut().enumerate() {
        let named = |err: ApiError, field: &str| {
            if err.status == axum::http::StatusCode::NOT_FOUND {
                ApiError::field(&format!("skills[{i}].{field}"), err.message)
            } else {
                err
            }
        };
        crate::routes::skills::find(&index, &skill.skill_id)
            .await
            .map_err(|e| named(e, "skill_id"))?;
        let wanted = skill.version.as_deref().unwrap_or("latest");
        let version = crate::routes::skills::find_version(&index, &skill.skill_id, wanted)
            .await
            .map_err(|e| named(e, "version"))?;
        if let Some(j) = names.iter().position(|n| *n == version.name) {
            return Err(ApiError::field(
                &format!("skills[{i}].skill_id"),
                format!(
                    "skill {:?} is named {:?}, as skills[{j}] is; their files would share /mnt/session/skills/{}",
                    skill.skill_id, version.name, version.name
                ),
            ));
        }
        names.push(version.name);
        skill.version = Some(version.version);
    }
    Ok(())
}

/// `GET /v1/agents/{agent_id}/versions`: newest first, `limit` (20, at most 100), `page`.
pub async fn versions(Item(cx, id, _): Item<Agents>, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    let query = Query::parse(query.as_deref());
    let limit = query.limit(20, 100)?;
    let agent = fetch::<Agents>(&cx, &id).await?;
    let stored = stored_versions(&cx.state.kube, &agent).await?;
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
type VersionItem = (i64, AgentSpec, Option<Timestamp>);

fn version_key(version: i64) -> SortKey {
    SortKey {
        created: Timestamp::from_millisecond(version).unwrap_or(Timestamp::UNIX_EPOCH),
        id: String::new(),
    }
}
