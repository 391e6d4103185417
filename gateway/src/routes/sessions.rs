//! `/v1/sessions`: Session custom resources. Special cases: a create checks the environment, the vaults and the
//! agent version it names and may carry `initial_events`; the wire form carries the agent's definition at the
//! session's version; an update appends `session.updated`, a delete `session.deleted`; the list filters by agent,
//! version and status and pages both ways.

use std::collections::BTreeMap;

use corral_api::{
    Agent, Environment, Session,
    events::{EventBody, EventParam, SessionUpdated, parse_send_events},
    session::SessionPhase,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

use super::{
    objects::{self, api},
    session_disk,
    vaults::Vaults,
};
use crate::{
    auth::Tenant,
    error::{ApiError, ApiResult},
    mapping::repository,
    mapping::session::{
        MAX_INITIAL_EVENTS, ResourceParam, SessionCreate, SessionUpdate, apply_update, changes,
        session_agent, session_object, spec_from_create,
    },
    query::Query,
    resource::{ApiResource, CustomResources, Cx, ListShape, Names, Select, Store, handlers::fetch},
    state::AppState,
    versions::{
        StoredVersion, all_versions, current_version, ensure_version, spec_at, stored_versions, versions_of,
    },
};

/// Records in Redis that the session's spec is now at `written`'s generation, before the change is answered: a turn
/// or tool call that starts after the answer finds the harness's watch-fed copy of the Session older than that and
/// reads the spec from the API server instead. A failure is logged, not answered (the change is made either way):
/// the harness may then act on the previous spec until its watch catches up (milliseconds).
pub(super) async fn record_spec_generation(state: &AppState, namespace: &str, written: &Session) {
    let (Some(generation), Some(id)) = (written.metadata.generation, written.metadata.name.as_deref()) else {
        return;
    };
    if let Err(err) = state
        .log
        .session(namespace, id)
        .raise_spec_generation(generation)
        .await
    {
        tracing::warn!(session = id, %err, "could not record the session's spec generation; the harness may act \
            on its previous spec until its watch catches up");
    }
}

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
async fn check_vaults(cx: &Cx, req: &SessionCreate) -> ApiResult<()> {
    for (i, id) in req.vault_ids.iter().flatten().enumerate() {
        let vault = fetch::<Vaults>(cx, id).await.map_err(|e| {
            if e.status == 404 {
                e.with_field_prefix(&format!("vault_ids[{i}]"))
            } else {
                e
            }
        })?;
        if <<Vaults as ApiResource>::Store as Store>::entry(&vault).archived {
            return Err(ApiError::field(
                &format!("vault_ids[{i}]"),
                format!("vault {id:?} is archived; new sessions cannot use it"),
            ));
        }
    }
    Ok(())
}

/// Checks that every `file` resource names a file of the tenant that is still there (404 naming the field), and
/// answers each file's size.
async fn check_files(cx: &Cx, req: &SessionCreate) -> ApiResult<BTreeMap<String, u64>> {
    let mut sizes = BTreeMap::new();
    for (i, r) in req.resources.iter().flatten().enumerate() {
        if let ResourceParam::File { file_id, .. } = r {
            let meta = super::files::find(&cx.state, &cx.tenant, file_id)
                .await
                .map_err(|e| e.with_field_prefix(&format!("resources[{i}].file_id")))?;
            sizes.insert(file_id.clone(), meta.size_bytes);
        }
    }
    Ok(sizes)
}

/// Refuses (400 naming the field) an `authorization_secret_ref` whose Secret is missing, lacks the key, or may not
/// be used as a repository token (`corral_api::repository::token_refusal`): the operator would never send that
/// token, and the clone of a private repository would fail only at the first tool call. The three cases read the
/// same, so an API key cannot probe which Secrets its namespace holds, nor what they are.
async fn check_token_refs(cx: &Cx, req: &SessionCreate, session: &str) -> ApiResult<()> {
    let secrets = cx.api::<Secret>();
    for (i, r) in req.resources.iter().flatten().enumerate() {
        let ResourceParam::GithubRepository {
            authorization_secret_ref: Some(reference),
            ..
        } = r
        else {
            continue;
        };
        let usable = secrets.get_opt(&reference.name).await?.is_some_and(|secret| {
            corral_api::repository::token_refusal(&secret, session).is_none()
                && secret
                    .data
                    .as_ref()
                    .is_some_and(|d| d.contains_key(&reference.key))
        });
        if !usable {
            return Err(ApiError::field(
                &format!("resources[{i}].authorization_secret_ref"),
                format!(
                    "Secret {:?} (key {:?}) is not usable as a repository token: it must exist in this namespace, \
                     hold the key, and carry the label {}={}",
                    reference.name,
                    reference.key,
                    corral_api::model_key::CREDENTIAL_LABEL,
                    corral_api::repository::CREDENTIAL_REPOSITORY,
                ),
            ));
        }
    }
    Ok(())
}

/// The agent version a new session runs: the one it names (which must exist), or the agent's current one.
async fn agent_version(cx: &Cx, req: &SessionCreate) -> ApiResult<i64> {
    let agent = objects::get(&cx.api::<Agent>(), "agent", &req.agent.id).await?;
    let kube = &cx.state.kube;
    let Some(v) = req.agent.version else {
        return ensure_version(kube, &agent).await;
    };
    let stored = stored_versions(kube, &agent).await?;
    if spec_at(&agent, &stored, v).is_none() {
        return Err(ApiError::not_found(
            "agent version",
            &format!("{} v{v}", req.agent.id),
        ));
    }
    if v == current_version(&agent, &stored) {
        ensure_version(kube, &agent).await?;
    }
    Ok(v)
}

/// The sessions resource.
pub struct Sessions;

impl ApiResource for Sessions {
    type Store = CustomResources<Session>;
    type Create = SessionCreate;
    type Update = SessionUpdate;
    const NAMES: Names =
        Names::new("session", "sesn", "/v1/sessions", "session_id").deletable("session_deleted");
    const STORE: fn(&Cx) -> Self::Store = CustomResources::of;
    const LIST: ListShape = ListShape {
        default_limit: 20,
        max_limit: 1000,
        prev_page: true,
    };

    async fn create(cx: &Cx, id: &str, req: &SessionCreate) -> ApiResult<Session> {
        let initial = initial_events(req)?;
        crate::attachments::check_files(&cx.state, &cx.tenant, &initial, "initial_events").await?;
        let env_id = &req.environment_id;
        let env = objects::get(&cx.api::<Environment>(), "environment", env_id)
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
        check_vaults(cx, req).await?;
        let version = agent_version(cx, req).await?;
        let mut spec = spec_from_create(req, version)?;
        repository::bind_tokens(&mut spec, req, id)?;
        check_token_refs(cx, req, id).await?;
        let sizes = check_files(cx, req).await?;
        session_disk::check_fits(&cx.state, Some(&env), &spec.resources, &sizes)?;
        Ok(Session::new(id, spec))
    }

    /// Stores the repository tokens, appends the `initial_events` and wakes the harness; on failure, deletes the
    /// session again.
    async fn created(cx: &Cx, session: &Session, req: &SessionCreate) -> ApiResult<()> {
        let id = session.metadata.name.clone().unwrap_or_default();
        let secrets = cx.api::<Secret>();
        for secret in repository::token_secrets(session, req)? {
            if let Err(err) = secrets.create(&PostParams::default(), &secret).await {
                // Leave no session behind that names a Secret that does not exist (its tokens go with it).
                let _ = cx.api::<Session>().delete(&id, &DeleteParams::default()).await;
                return Err(err.into());
            }
        }
        let initial = initial_events(req)?;
        if initial.is_empty() {
            return Ok(());
        }
        let (state, namespace) = (&cx.state, &cx.tenant.namespace);
        let log = state.log.session(namespace, &id);
        let appended = super::events::append_traced(&log, initial, None).await;
        if let Err(err) = appended {
            // Leave no half-created session behind: the client sees the error and may retry the whole create.
            let _ = cx.api::<Session>().delete(&id, &DeleteParams::default()).await;
            return Err(err.into());
        }
        Ok(())
    }

    async fn update(_cx: &Cx, session: &Session, req: SessionUpdate) -> ApiResult<Option<Session>> {
        let spent = session
            .status
            .as_ref()
            .and_then(|s| s.list_cost.as_ref())
            .and_then(corral_api::budget::Money::cents);
        let (spec, changes) = apply_update(&session.spec, req, spent)?;
        Ok((!changes.is_empty()).then(|| Session {
            spec,
            ..session.clone()
        }))
    }

    /// Records the new spec generation, then appends `session.updated` with what changed.
    async fn updated(cx: &Cx, before: &Session, after: &Session) -> ApiResult<()> {
        record_spec_generation(&cx.state, &cx.tenant.namespace, after).await;
        let changes = changes(&before.spec, &after.spec);
        let event = EventBody::SessionUpdated(SessionUpdated {
            title: changes.title,
            metadata: changes.metadata,
            budget: changes.budget,
            ..SessionUpdated::default()
        });
        let id = after.metadata.name.clone().unwrap_or_default();
        cx.state
            .log
            .session(&cx.tenant.namespace, &id)
            .append_user([event])
            .await?;
        Ok(())
    }

    /// Appends `session.deleted` (which ends every open stream); the operator's finalizer removes the log.
    async fn deleting(cx: &Cx, session: &Session) -> ApiResult<()> {
        let id = session.metadata.name.clone().unwrap_or_default();
        // From now until this replica's watch reports the delete, its sends and lists ask the API server.
        cx.state.sessions.forget(&cx.tenant.namespace, &id);
        cx.state
            .log
            .session(&cx.tenant.namespace, &id)
            .append_user([EventBody::SessionDeleted(Default::default())])
            .await?;
        Ok(())
    }

    async fn render(cx: &Cx, sessions: &[Session]) -> ApiResult<Vec<Value>> {
        let only = match sessions {
            [] => return Ok(Vec::new()),
            [one] => Some(one.spec.agent.name.as_str()),
            _ => None,
        };
        let agents = Agents::load(&cx.state, &cx.tenant, only).await?;
        let now = jiff::Timestamp::now();
        Ok(sessions
            .iter()
            .map(|s| session_object(s, agents.snapshot(s), now))
            .collect())
    }

    /// `agent_id`, `agent_version`, `statuses[]`; `deployment_id` and `memory_store_id` match nothing in Corral.
    fn select(_cx: &Cx, query: &Query) -> ApiResult<Select<Session>> {
        let agent_id = query.get("agent_id").map(str::to_owned);
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
                        format!(
                            "unknown status {other:?}; expected idle, running, rescheduling or terminated"
                        ),
                    ));
                }
            });
        }
        // An agent id that cannot name an object matches nothing either.
        if query.get("deployment_id").is_some()
            || query.get("memory_store_id").is_some()
            || agent_id.as_deref().is_some_and(|a| !objects::plausible(a))
        {
            return Ok(Select::Nothing);
        }
        Ok(Select::Only(Box::new(move |s: &Session| {
            let phase = s.status.as_ref().and_then(|st| st.phase).unwrap_or_default();
            agent_id.as_deref().is_none_or(|a| s.spec.agent.name == a)
                && agent_version.is_none_or(|v| s.effective_agent_version() == Some(v))
                && (statuses.is_empty() || statuses.contains(&phase))
        })))
    }
}
