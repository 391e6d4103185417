//! Sessions: API request → `SessionSpec`, and `Session` → the API's Session object.

use std::collections::BTreeMap;

use corral_api::{
    AgentSpec, Session, SessionSpec,
    common::{LocalObjectRef, SecretKeyRef},
    session::{
        Checkout, CheckoutType, SessionAgentRef, SessionResource, SessionResourceType,
        default_file_mount_path,
    },
    validation::{file_mount_path_ok, validate_session, validate_session_update},
};
use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::{Map, Value, json};

use super::{
    agent::definition,
    agent_params::KeyRefParam,
    common::{archived_at, created_at, id, patch_metadata, spec_error, time, updated_at},
};
use crate::{body::nullable, error::ApiError};

/// The most `initial_events` a create may carry.
pub const MAX_INITIAL_EVENTS: usize = 50;

/// `POST /v1/sessions`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SessionCreate {
    /// The agent: an id, `{type:"agent", id, version?}`.
    pub agent: AgentRefParam,
    /// The environment's id.
    pub environment_id: String,
    /// A title.
    #[serde(default)]
    pub title: Option<String>,
    /// Free-form pairs.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Repositories and files to mount.
    #[serde(default)]
    pub resources: Option<Vec<ResourceParam>>,
    /// Vaults the session may use.
    #[serde(default)]
    pub vault_ids: Option<Vec<String>>,
    /// `user.message` events to start with (checked by `corral_api::events::parse_send_events`).
    #[serde(default)]
    pub initial_events: Option<Vec<Value>>,
    /// `{type:"limit", max_list_cost:{amount, currency}}` (plus Corral's `max_tokens`), or null.
    #[serde(default)]
    pub budget: Option<Value>,
}

/// `POST /v1/sessions/{id}`.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct SessionUpdate {
    /// `null` clears.
    #[serde(default, deserialize_with = "nullable")]
    pub title: Option<Option<String>>,
    /// A patch: a string sets, `null` deletes.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, Option<String>>>,
    /// Not supported.
    #[serde(default)]
    pub agent: Option<Value>,
    /// A new budget replaces the old one; `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    pub budget: Option<Option<Value>>,
    /// Reserved; rejected.
    #[serde(default)]
    pub vault_ids: Option<Value>,
}

/// Which agent a new session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRefParam {
    /// The agent's id.
    pub id: String,
    /// A pinned version; the latest when `None`.
    pub version: Option<i64>,
}

impl<'de> Deserialize<'de> for AgentRefParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Object {
            #[serde(rename = "type", default)]
            kind: Option<String>,
            id: String,
            #[serde(default)]
            version: Option<i64>,
        }
        match Value::deserialize(deserializer)? {
            Value::String(id) => Ok(Self { id, version: None }),
            value @ Value::Object(_) => {
                let o: Object = serde_json::from_value(value).map_err(D::Error::custom)?;
                if o.version.is_some_and(|v| v < 1) {
                    return Err(D::Error::custom("version: must be at least 1"));
                }
                match o.kind.as_deref() {
                    None | Some("agent") => Ok(Self {
                        id: o.id,
                        version: o.version,
                    }),
                    Some("agent_with_overrides") => Err(D::Error::custom(
                        "agent_with_overrides is not supported by Corral yet; create an agent version instead",
                    )),
                    Some(other) => Err(D::Error::custom(format!("unknown agent type {other:?}"))),
                }
            }
            _ => Err(D::Error::custom(
                "must be an agent id or {\"type\": \"agent\", \"id\": ...}",
            )),
        }
    }
}

/// A resource to mount.
#[derive(Deserialize, Debug)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ResourceParam {
    /// A git repository.
    #[serde(rename = "github_repository")]
    GithubRepository {
        /// Clone URL.
        url: String,
        /// A token for a private repository: stored write-only in a Secret (`super::repository`), never echoed.
        #[serde(default)]
        authorization_token: Option<String>,
        /// Corral's extension: the Secret key holding the token.
        #[serde(default)]
        authorization_secret_ref: Option<KeyRefParam>,
        /// What to check out.
        #[serde(default)]
        checkout: Option<CheckoutParam>,
        /// Where it appears.
        #[serde(default)]
        mount_path: Option<String>,
    },
    /// An uploaded file.
    #[serde(rename = "file")]
    File {
        /// The file's id.
        file_id: String,
        /// Where it appears.
        #[serde(default)]
        mount_path: Option<String>,
    },
}

/// `{type:"branch", name}` or `{type:"commit", sha}`.
#[derive(Deserialize, Debug)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum CheckoutParam {
    /// A branch.
    Branch {
        /// Its name.
        name: String,
    },
    /// A commit.
    Commit {
        /// Its SHA.
        sha: String,
    },
}

/// Builds the spec of a new session; `version` is the agent version resolved for it.
pub fn spec_from_create(req: &SessionCreate, version: i64) -> Result<SessionSpec, ApiError> {
    let budget = match &req.budget {
        None | Some(Value::Null) => None,
        Some(b) => Some(super::budget::parse(b)?),
    };
    let resources = req
        .resources
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, r)| resource(r, &format!("resources[{i}]")))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, r) in resources.iter().enumerate() {
        // Checked after parsing, so a malformed resource is still reported field by field.
        let path = mount_path(r);
        if resources[..i].iter().any(|o| mount_path(o) == path) {
            return Err(ApiError::field(
                &format!("resources[{i}].mount_path"),
                format!("{path} is the mount_path of an earlier resource"),
            ));
        }
    }
    let spec = SessionSpec {
        agent: SessionAgentRef {
            name: req.agent.id.clone(),
            version: Some(version),
        },
        environment_ref: LocalObjectRef {
            name: req.environment_id.clone(),
        },
        title: req.title.clone(),
        metadata: req.metadata.clone().unwrap_or_default(),
        vault_refs: req
            .vault_ids
            .iter()
            .flatten()
            .map(|name| LocalObjectRef { name: name.clone() })
            .collect(),
        resources,
        budget,
    };
    validate_session(&spec).map_err(spec_error)?;
    Ok(spec)
}

/// The spec of one resource; `prefix` names it in errors (`resources[0]`, or empty for the resources endpoint).
pub fn resource(param: &ResourceParam, prefix: &str) -> Result<SessionResource, ApiError> {
    let at = |f: &str| {
        if prefix.is_empty() {
            f.to_owned()
        } else {
            format!("{prefix}.{f}")
        }
    };
    match param {
        ResourceParam::GithubRepository {
            url,
            authorization_token: _,
            authorization_secret_ref,
            checkout,
            mount_path,
        } => {
            // The token itself goes into a Secret once the session exists (`super::repository`).
            super::repository::token(param, prefix)?;
            Ok(SessionResource {
                kind: SessionResourceType::GithubRepository,
                url: Some(url.clone()),
                checkout: checkout.as_ref().map(|c| match c {
                    CheckoutParam::Branch { name } => Checkout {
                        kind: CheckoutType::Branch,
                        name: Some(name.clone()),
                        sha: None,
                    },
                    CheckoutParam::Commit { sha } => Checkout {
                        kind: CheckoutType::Commit,
                        name: None,
                        sha: Some(sha.clone()),
                    },
                }),
                authorization_secret_ref: authorization_secret_ref.as_ref().map(|r| SecretKeyRef {
                    name: r.name.clone(),
                    key: r.key.clone(),
                }),
                file_id: None,
                mount_path: mount_path.clone(),
            })
        }
        ResourceParam::File { file_id, mount_path } => {
            if file_id.is_empty() {
                return Err(ApiError::field(&at("file_id"), "must not be empty"));
            }
            if let Some(path) = mount_path
                && !file_mount_path_ok(path)
            {
                return Err(ApiError::field(
                    &at("mount_path"),
                    "must be a file path under /mnt/session/ or /workspace/ (the sandbox's writable volumes), \
                     without ..",
                ));
            }
            Ok(SessionResource {
                kind: SessionResourceType::File,
                url: None,
                checkout: None,
                authorization_secret_ref: None,
                file_id: Some(file_id.clone()),
                mount_path: mount_path.clone(),
            })
        }
    }
}

/// What an update changed, for the `session.updated` event.
#[derive(Debug, Default, PartialEq)]
pub struct SessionChanges {
    /// The new title, when it changed (`Some(None)`: cleared).
    pub title: Option<Option<String>>,
    /// The full new metadata, when it changed.
    pub metadata: Option<BTreeMap<String, String>>,
    /// The new budget object, or `Some(None)` when it was removed.
    pub budget: Option<Option<Value>>,
}

impl SessionChanges {
    /// Whether anything changed.
    pub fn is_empty(&self) -> bool {
        self.title.is_none() && self.metadata.is_none() && self.budget.is_none()
    }
}

/// Applies `POST /v1/sessions/{id}` to the current spec; `spent` is the session's list cost so far, in cents.
pub fn apply_update(
    current: &SessionSpec,
    req: SessionUpdate,
    spent: Option<f64>,
) -> Result<(SessionSpec, SessionChanges), ApiError> {
    if req.agent.as_ref().is_some_and(|a| !a.is_null()) {
        return Err(ApiError::field(
            "agent",
            "changing a session's agent is not supported by Corral yet",
        ));
    }
    if req.vault_ids.is_some() {
        return Err(ApiError::field("vault_ids", "cannot be changed after create"));
    }
    let mut spec = current.clone();
    match req.budget {
        None => {}
        Some(_) if current.budget.is_none() => {
            return Err(ApiError::field(
                "budget",
                "a budget cannot be added to a session created without one",
            )
            .with_code("budget_create_only"));
        }
        Some(None) => spec.budget = None,
        Some(Some(value)) => {
            let budget = super::budget::parse(&value)?;
            let max = budget
                .max_cost
                .as_ref()
                .and_then(corral_api::budget::Money::cents);
            if let (Some(max), Some(spent)) = (max, spent)
                && max <= spent
            {
                return Err(ApiError::field(
                    "budget.max_list_cost.amount",
                    format!("must be above the {spent} cents already spent"),
                )
                .with_code("budget_not_raised"));
            }
            spec.budget = Some(budget);
        }
    }
    if let Some(title) = req.title {
        spec.title = title;
    }
    if let Some(patch) = &req.metadata {
        spec.metadata = patch_metadata(&spec.metadata, patch, false);
    }
    validate_session_update(current, &spec).map_err(spec_error)?;
    let changes = changes(current, &spec);
    Ok((spec, changes))
}

/// What changed from `before` to `after`, for the `session.updated` event.
pub fn changes(before: &SessionSpec, after: &SessionSpec) -> SessionChanges {
    SessionChanges {
        title: (before.title != after.title).then(|| after.title.clone()),
        metadata: (before.metadata != after.metadata).then(|| after.metadata.clone()),
        budget: (before.budget != after.budget).then(|| after.budget.as_ref().map(super::budget::object)),
    }
}

/// The session's `agent` snapshot: the agent's definition at the version the session runs. `spec` is `None` when
/// that version can no longer be read (the agent was deleted).
pub fn session_agent(agent_id: &str, version: i64, spec: Option<&AgentSpec>) -> Value {
    let mut out = Map::new();
    out.insert("type".into(), json!("agent"));
    out.insert("id".into(), json!(agent_id));
    out.insert("version".into(), json!(version));
    match spec {
        Some(spec) => out.extend(definition(agent_id, spec)),
        None => {
            out.insert("name".into(), json!(agent_id));
            out.insert("model".into(), json!({ "id": "unknown" }));
            out.insert("tools".into(), json!([]));
            out.insert("mcp_servers".into(), json!([]));
            out.insert("skills".into(), json!([]));
            out.insert("execution_identity".into(), json!({ "type": "service_account" }));
        }
    }
    Value::Object(out)
}

/// The API's Session object. `agent` is the snapshot from [`session_agent`]; `now` computes `duration_seconds`.
pub fn session_object(session: &Session, agent: Value, now: jiff::Timestamp) -> Value {
    let spec = &session.spec;
    let status = session.status.clone().unwrap_or_default();
    let created = created_at(&session.metadata);
    let updated = time(updated_at(&session.metadata));
    let phase = status.phase.unwrap_or_default();
    let end = match (phase, status.last_event_time.as_deref()) {
        (corral_api::session::SessionPhase::Terminated, Some(t)) => t.parse().unwrap_or(now),
        _ => now,
    };
    let duration = end.duration_since(created).as_secs_f64().max(0.0);
    let mut stats = json!({ "duration_seconds": (duration * 1000.0).round() / 1000.0 });
    if let Some(active) = status.active_seconds {
        stats["active_seconds"] = json!(active);
    }
    let mut usage = json!({});
    if let Some(u) = &status.usage {
        usage = json!({
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_input_tokens": u.cache_read_input_tokens,
            "cache_creation": { "ephemeral_5m_input_tokens": u.cache_creation_input_tokens },
        });
    }
    if let Some(active) = status.active_seconds {
        usage["active_seconds"] = json!(active);
    }
    if let Some(cost) = &status.list_cost {
        usage["list_cost"] = json!({ "amount": cost.amount, "currency": cost.currency });
    }
    let session_id = id(&session.metadata);
    let resources: Vec<Value> = spec
        .resources
        .iter()
        .map(|r| resource_object(r, &time(created), &updated))
        .collect();
    json!({
        "id": session_id,
        "type": "session",
        "status": phase.as_str(),
        "agent": agent,
        "environment_id": spec.environment_ref.name,
        "title": spec.title,
        "metadata": spec.metadata,
        "resources": resources,
        "vault_ids": spec.vault_refs.iter().map(|v| v.name.clone()).collect::<Vec<_>>(),
        "outcome_evaluations": [],
        "stats": stats,
        "usage": usage,
        "budget": spec.budget.as_ref().map(super::budget::object),
        "deployment_id": null,
        "created_at": time(created),
        "updated_at": updated,
        "archived_at": archived_at(&session.metadata),
    })
}

/// Where a resource appears in the sandbox: its `mount_path`, or the default of its kind.
pub fn mount_path(r: &SessionResource) -> String {
    if let Some(path) = &r.mount_path {
        return path.clone();
    }
    match r.kind {
        SessionResourceType::GithubRepository => {
            let url = r.url.as_deref().unwrap_or_default();
            let repo = url
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("repo");
            format!("/workspace/{repo}")
        }
        SessionResourceType::File => default_file_mount_path(r.file_id.as_deref().unwrap_or_default()),
    }
}

/// A resource's id (`sesrsc_` and 24 hex digits): derived from its kind and mount path, which no other resource of
/// the session shares, so it stays the same while other resources come and go, and a resource a GitOps user
/// declared in the custom resource has one too.
pub fn resource_id(r: &SessionResource) -> String {
    use sha2::Digest as _;
    let kind = match r.kind {
        SessionResourceType::GithubRepository => "github_repository",
        SessionResourceType::File => "file",
    };
    let digest = sha2::Sha256::digest(format!("{kind}\n{}", mount_path(r)).as_bytes());
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("sesrsc_{hex}")
}

/// The API's object of one session resource; `created` and `updated` are the session's times (Corral does not
/// keep a time per resource).
pub fn resource_object(r: &SessionResource, created: &str, updated: &str) -> Value {
    let id = resource_id(r);
    match r.kind {
        SessionResourceType::GithubRepository => json!({
            "id": id,
            "type": "github_repository",
            "url": r.url.clone().unwrap_or_default(),
            "mount_path": mount_path(r),
            "checkout": r.checkout.as_ref().map(|c| match c.kind {
                CheckoutType::Branch => json!({ "type": "branch", "name": c.name }),
                CheckoutType::Commit => json!({ "type": "commit", "sha": c.sha }),
            }),
            "authorization_secret_ref": r.authorization_secret_ref.as_ref().map(|s| json!({ "name": s.name, "key": s.key })),
            "created_at": created,
            "updated_at": updated,
        }),
        SessionResourceType::File => json!({
            "id": id,
            "type": "file",
            "file_id": r.file_id.clone().unwrap_or_default(),
            "mount_path": mount_path(r),
            "created_at": created,
            "updated_at": updated,
        }),
    }
}

#[cfg(test)]
mod tests {
    use corral_api::session::{SessionPhase, SessionStatus, Usage};

    use super::*;
    use crate::body::parse;

    fn create(body: Value) -> Result<SessionSpec, ApiError> {
        spec_from_create(&parse::<SessionCreate>(body.to_string().as_bytes())?, 2)
    }

    #[test]
    fn agent_may_be_an_id_or_an_object() {
        let a: AgentRefParam = serde_json::from_value(json!("agent-1")).unwrap();
        assert_eq!(
            a,
            AgentRefParam {
                id: "agent-1".into(),
                version: None
            }
        );
        let a: AgentRefParam =
            serde_json::from_value(json!({ "type": "agent", "id": "agent-1", "version": 3 })).unwrap();
        assert_eq!(a.version, Some(3));
        for v in ["0", "-1"] {
            let body =
                format!(r#"{{"agent":{{"type":"agent","id":"a","version":{v}}},"environment_id":"e"}}"#);
            let err = parse::<SessionCreate>(body.as_bytes()).unwrap_err();
            assert_eq!(err.status, 400, "{}", err.message);
            assert!(err.message.contains("at least 1"), "{}", err.message);
        }
        let err = parse::<SessionCreate>(
            br#"{"agent":{"type":"agent_with_overrides","id":"a"},"environment_id":"e"}"#,
        )
        .unwrap_err();
        assert!(err.message.starts_with("agent:"), "{}", err.message);
        let err = parse::<SessionCreate>(br#"{"agent":"a"}"#).unwrap_err();
        assert!(err.message.contains("environment_id"), "{}", err.message);
    }

    #[test]
    fn create_maps_every_field() {
        let spec = create(json!({
            "agent": "agent-1", "environment_id": "env-1", "title": "t", "metadata": { "k": "v" },
            "vault_ids": ["v1"],
        }))
        .unwrap();
        assert_eq!(
            spec.agent,
            SessionAgentRef {
                name: "agent-1".into(),
                version: Some(2)
            }
        );
        assert_eq!(spec.environment_ref.name, "env-1");
        assert_eq!(spec.vault_refs[0].name, "v1");
        let mut spec = spec;
        // A Session custom resource may carry resources (the API refuses repositories until they are cloned).
        spec.resources = [
            json!({ "type": "github_repository", "url": "https://github.com/o/r.git", "checkout": { "type": "branch", "name": "main" } }),
            json!({ "type": "file", "file_id": "file_1", "mount_path": "/workspace/data/x" }),
        ]
        .iter()
        .map(|r| resource(&serde_json::from_value(r.clone()).unwrap(), "").unwrap())
        .collect();
        let mut s = Session::new("sesn-1", spec);
        s.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-05-01T10:00:00Z".parse().unwrap(),
        ));
        let obj = session_object(
            &s,
            session_agent("agent-1", 2, None),
            "2026-05-01T10:00:05Z".parse().unwrap(),
        );
        assert_eq!(obj["status"], "idle", "new sessions start idle");
        assert_eq!(obj["stats"]["duration_seconds"], 5.0);
        assert_eq!(obj["usage"], json!({}));
        assert_eq!(obj["resources"][0]["mount_path"], "/workspace/r");
        assert_eq!(
            obj["resources"][0]["checkout"],
            json!({ "type": "branch", "name": "main" })
        );
        assert_eq!(obj["resources"][1]["mount_path"], "/workspace/data/x");
        let id = obj["resources"][1]["id"].as_str().unwrap();
        assert!(id.starts_with("sesrsc_") && id.len() == 31, "{id}");
        assert_ne!(obj["resources"][0]["id"], obj["resources"][1]["id"]);
        assert_eq!(obj["vault_ids"], json!(["v1"]));
        assert_eq!(obj["agent"]["version"], 2);
        for f in [
            "id",
            "type",
            "status",
            "agent",
            "environment_id",
            "metadata",
            "resources",
            "vault_ids",
            "outcome_evaluations",
            "stats",
            "usage",
            "created_at",
            "updated_at",
        ] {
            assert!(!obj[f].is_null(), "{f}");
        }
    }

    #[test]
    fn file_resources_are_kept_with_their_default_mount_path() {
        let spec = create(json!({ "agent": "a", "environment_id": "e", "resources": [
            { "type": "file", "file_id": "file_1" },
            { "type": "file", "file_id": "file_1", "mount_path": "/workspace/copy.txt" },
        ] }))
        .unwrap();
        assert_eq!(spec.resources.len(), 2);
        assert_eq!(mount_path(&spec.resources[0]), "/mnt/session/uploads/file_1");
        assert_eq!(
            spec.resources[0].mount_path, None,
            "the default is not written into the spec"
        );
        assert_eq!(mount_path(&spec.resources[1]), "/workspace/copy.txt");
        let obj = resource_object(&spec.resources[0], "t0", "t1");
        assert_eq!(
            obj,
            json!({ "id": resource_id(&spec.resources[0]), "type": "file", "file_id": "file_1",
                "mount_path": "/mnt/session/uploads/file_1", "created_at": "t0", "updated_at": "t1" })
        );
    }

    #[test]
    fn status_and_usage_come_from_the_session_status() {
        let mut s = Session::new(
            "sesn-1",
            create(json!({ "agent": "a", "environment_id": "e" })).unwrap(),
        );
        s.status = Some(SessionStatus {
            phase: Some(SessionPhase::Running),
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_read_input_tokens: 2,
                cache_creation_input_tokens: 1,
            }),
            active_seconds: Some(1.5),
            ..Default::default()
        });
        let obj = session_object(&s, json!({}), jiff::Timestamp::now());
        assert_eq!(obj["status"], "running");
        assert_eq!(obj["usage"]["input_tokens"], 10);
        assert_eq!(obj["usage"]["cache_creation"]["ephemeral_5m_input_tokens"], 1);
        assert_eq!(obj["stats"]["active_seconds"], 1.5);
    }

    #[test]
    fn invalid_input_names_the_field() {
        let err = create(json!({ "agent": "a", "environment_id": "e", "resources": [{ "type": "file", "file_id": "file_1", "mount_path": "/etc/passwd" }] })).unwrap_err();
        assert!(
            err.message.starts_with("resources[0].mount_path:"),
            "{}",
            err.message
        );
        assert!(create(json!({ "agent": "a", "environment_id": "e", "resources": [] })).is_ok());
        assert!(create(json!({ "agent": "a", "environment_id": "e", "resources": [{ "type": "github_repository", "url": "https://x/y", "authorization_token": "t" }] })).is_ok());
        let err = create(json!({ "agent": "a", "environment_id": "e", "resources": [
            { "type": "file", "file_id": "file_1", "mount_path": "/workspace/in" },
            { "type": "file", "file_id": "file_2", "mount_path": "/workspace/in" },
        ] }))
        .unwrap_err();
        assert!(
            err.message.starts_with("resources[1].mount_path:"),
            "{}",
            err.message
        );
        let err = create(json!({ "agent": "a", "environment_id": "e", "resources": [{ "type": "github_repository", "url": "https://x/y", "authorization_token": "" }] })).unwrap_err();
        assert!(
            err.message.starts_with("resources[0].authorization_token:"),
            "{}",
            err.message
        );
        let err = create(json!({ "agent": "a", "environment_id": "e", "budget": { "type": "limit" } }))
            .unwrap_err();
        assert!(err.message.starts_with("budget:"), "{}", err.message);
        let err = create(json!({ "agent": "a", "environment_id": "e", "budget": { "type": "limit", "max_list_cost": { "amount": "ten" } } }))
            .unwrap_err();
        assert!(
            err.message.starts_with("budget.max_list_cost.amount:"),
            "{}",
            err.message
        );
        let err = create(json!({ "agent": "a", "environment_id": "e", "resources": [{ "type": "memory_store", "memory_store_id": "m" }] })).unwrap_err();
        assert!(err.message.starts_with("resources[0]"), "{}", err.message);
    }

    #[test]
    fn update_reports_what_changed() {
        let spec =
            create(json!({ "agent": "a", "environment_id": "e", "title": "t", "metadata": { "k": "v" } }))
                .unwrap();
        let upd = |b: Value| apply_update(&spec, parse(b.to_string().as_bytes()).unwrap(), None);
        let (_, changes) = upd(json!({ "title": "t" })).unwrap();
        assert!(changes.is_empty());
        let (s, changes) = upd(json!({ "title": null, "metadata": { "k": null, "n": "1" } })).unwrap();
        assert_eq!(s.title, None);
        assert_eq!(changes.title, Some(None));
        assert_eq!(changes.metadata, Some([("n".to_owned(), "1".to_owned())].into()));
        assert!(
            upd(json!({ "vault_ids": [] }))
                .unwrap_err()
                .message
                .starts_with("vault_ids:")
        );
        let err = upd(json!({ "budget": { "type": "limit", "max_tokens": 10 } })).unwrap_err();
        assert_eq!(err.error_code, Some("budget_create_only"));
    }

    #[test]
    fn a_budget_is_stored_shown_raised_and_removed() {
        let budget = json!({ "type": "limit", "max_list_cost": { "amount": "2500", "currency": "USD" } });
        let spec = create(json!({ "agent": "a", "environment_id": "e", "budget": budget })).unwrap();
        assert_eq!(
            spec.budget.as_ref().unwrap().max_cost.as_ref().unwrap().amount,
            "2500"
        );
        let mut session = Session::new("sesn-1", spec.clone());
        session.status = Some(SessionStatus {
            list_cost: Some(corral_api::budget::Money::from_cents(12.5)),
            ..Default::default()
        });
        let obj = session_object(&session, json!({}), jiff::Timestamp::now());
        assert_eq!(obj["budget"], budget);
        assert_eq!(
            obj["usage"]["list_cost"],
            json!({ "amount": "12.5", "currency": "USD" })
        );

        let upd = |b: Value| apply_update(&spec, parse(b.to_string().as_bytes()).unwrap(), Some(12.5));
        let err =
            upd(json!({ "budget": { "type": "limit", "max_list_cost": { "amount": "12" } } })).unwrap_err();
        assert_eq!(err.error_code, Some("budget_not_raised"));
        let (raised, changes) =
            upd(json!({ "budget": { "type": "limit", "max_list_cost": { "amount": "3000" } } })).unwrap();
        assert_eq!(raised.budget.unwrap().max_cost.unwrap().amount, "3000");
        assert_eq!(
            changes.budget.unwrap().unwrap()["max_list_cost"]["amount"],
            "3000"
        );
        let (removed, changes) = upd(json!({ "budget": null })).unwrap();
        assert_eq!(removed.budget, None);
        assert_eq!(changes.budget, Some(None));
    }
}
