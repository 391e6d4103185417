//! Agents: API request → `AgentSpec`, and `Agent` (at a version) → the API's Agent object.

use std::collections::BTreeMap;

use corral_api::{
    Agent, AgentSpec,
    agent::{
        Effort, McpServer, ModelConfig, PermissionPolicy, ProviderConfig, Skill, SkillType, Speed,
        ToolConfig, ToolDefaults, ToolSpec, ToolType,
    },
    common::{ConfigMapKeyRef, SecretKeyRef},
    validation::validate_agent,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    agent_params::{
        KeyRefParam, McpServerParam, ModelParam, ProviderParam, SkillParam, ToolConfigParam,
        ToolDefaultsParam, ToolParam,
    },
    common::{archived_at, created_at, id, patch_metadata, spec_error, time, updated_at},
};
use crate::{body::nullable, error::ApiError};

/// `POST /v1/agents`.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct AgentCreate {
    /// Required, 1 to 256 characters.
    pub name: String,
    /// A model id or a model config.
    pub model: ModelParam,
    /// What the agent is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The system prompt.
    #[serde(default)]
    pub system: Option<String>,
    /// Tools.
    #[serde(default)]
    pub tools: Option<Vec<ToolParam>>,
    /// MCP servers.
    #[serde(default)]
    pub mcp_servers: Option<Vec<McpServerParam>>,
    /// Skills.
    #[serde(default)]
    pub skills: Option<Vec<SkillParam>>,
    /// Not supported by Corral: must be absent or null.
    #[serde(default)]
    pub multiagent: Option<Value>,
    /// Only `{"type":"service_account"}` (or null) is supported.
    #[serde(default)]
    pub execution_identity: Option<Value>,
    /// Free-form pairs.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// `POST /v1/agents/{id}`: every field optional; `null` clears where the API allows it.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct AgentUpdate {
    /// New name; cannot be cleared.
    #[serde(default, deserialize_with = "nullable")]
    pub name: Option<Option<String>>,
    /// `null` or `""` clears.
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<String>>,
    /// `null` or `""` clears.
    #[serde(default, deserialize_with = "nullable")]
    pub system: Option<Option<String>>,
    /// Replaced whole; cannot be cleared.
    #[serde(default, deserialize_with = "nullable")]
    pub model: Option<Option<ModelParam>>,
    /// Replaced whole; `null` or `[]` clears.
    #[serde(default, deserialize_with = "nullable")]
    pub tools: Option<Option<Vec<ToolParam>>>,
    /// Replaced whole; `null` or `[]` clears.
    #[serde(default, deserialize_with = "nullable")]
    pub mcp_servers: Option<Option<Vec<McpServerParam>>>,
    /// Replaced whole; `null` or `[]` clears.
    #[serde(default, deserialize_with = "nullable")]
    pub skills: Option<Option<Vec<SkillParam>>>,
    /// Not supported: must be absent or null.
    #[serde(default)]
    pub multiagent: Option<Value>,
    /// Only `service_account` (or null) is supported.
    #[serde(default)]
    pub execution_identity: Option<Value>,
    /// A patch: a string sets, `null` deletes.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, Option<String>>>,
    /// Optimistic concurrency: the version the client last saw.
    #[serde(default)]
    pub version: Option<i64>,
}

/// The effort shown when an agent sets none (the model's default).
pub const DEFAULT_EFFORT: Effort = Effort::High;

/// Builds the spec of a new agent from `POST /v1/agents`.
pub fn spec_from_create(req: AgentCreate) -> Result<AgentSpec, ApiError> {
    unsupported(req.multiagent.as_ref(), req.execution_identity.as_ref())?;
    let spec = AgentSpec {
        name: Some(req.name),
        description: req.description.filter(|d| !d.is_empty()),
        model: model_config(req.model)?,
        system: req.system.filter(|s| !s.is_empty()),
        tools: tools(req.tools.unwrap_or_default())?,
        mcp_servers: mcp_servers(req.mcp_servers.unwrap_or_default())?,
        skills: skills(req.skills.unwrap_or_default())?,
        metadata: req.metadata.unwrap_or_default(),
        budget: None,
        total_budget: None,
    };
    check(&spec)?;
    Ok(spec)
}

/// Applies `POST /v1/agents/{id}` to the current spec: omitted fields keep their values, arrays are replaced whole,
/// `metadata` is patched.
pub fn apply_update(current: &AgentSpec, req: AgentUpdate) -> Result<AgentSpec, ApiError> {
    unsupported(req.multiagent.as_ref(), req.execution_identity.as_ref())?;
    let mut spec = current.clone();
    match req.name {
        Some(Some(name)) => spec.name = Some(name),
        Some(None) => return Err(ApiError::field("name", "cannot be cleared")),
        None => {}
    }
    if let Some(description) = req.description {
        spec.description = description.filter(|d| !d.is_empty());
    }
    if let Some(system) = req.system {
        spec.system = system.filter(|s| !s.is_empty());
    }
    match req.model {
        Some(Some(model)) => spec.model = model_config(model)?,
        Some(None) => return Err(ApiError::field("model", "cannot be cleared")),
        None => {}
    }
    if let Some(t) = req.tools {
        spec.tools = tools(t.unwrap_or_default())?;
    }
    if let Some(m) = req.mcp_servers {
        spec.mcp_servers = mcp_servers(m.unwrap_or_default())?;
    }
    if let Some(s) = req.skills {
        spec.skills = skills(s.unwrap_or_default())?;
    }
    if let Some(patch) = &req.metadata {
        spec.metadata = patch_metadata(&spec.metadata, patch, false);
    }
    check(&spec)?;
    Ok(spec)
}

fn unsupported(multiagent: Option<&Value>, identity: Option<&Value>) -> Result<(), ApiError> {
    if multiagent.is_some_and(|m| !m.is_null()) {
        return Err(ApiError::field(
            "multiagent",
            "multiagent agents are not supported by Corral yet",
        ));
    }
    match identity {
        None | Some(Value::Null) => Ok(()),
        Some(v) if v.get("type").and_then(Value::as_str) == Some("service_account") => Ok(()),
        Some(_) => Err(ApiError::field(
            "execution_identity",
            "only {\"type\": \"service_account\"} is supported",
        )),
    }
}

/// Checks the spec with [`validate_agent`] (the rules the CRD's CEL mirrors), naming the API's fields.
pub fn check(spec: &AgentSpec) -> Result<(), ApiError> {
    validate_agent(spec).map_err(spec_error)
}

/// The model config. `speed` and `inference_geo` are choices of Anthropic's hosted inference that Corral's providers
/// cannot make: only the defaults (`standard`, none) are accepted, so no request is silently served otherwise.
fn model_config(model: ModelParam) -> Result<ModelConfig, ApiError> {
    if model.speed.is_some_and(|s| s != Speed::Standard) {
        return Err(ApiError::field(
            "model.speed",
            "only \"standard\" is supported by Corral (its providers have no fast mode)",
        ));
    }
    if model.inference_geo.is_some() {
        return Err(ApiError::field(
            "model.inference_geo",
            "is not supported by Corral: where inference runs is the provider's base_url",
        ));
    }
    Ok(ModelConfig {
        id: model.id,
        effort: model.effort,
        inference_geo: None,
        speed: model.speed,
        provider: model.provider.map(provider_config).unwrap_or_default(),
    })
}

fn provider_config(p: ProviderParam) -> ProviderConfig {
    ProviderConfig {
        kind: p.kind,
        base_url: p.base_url,
        api_key_secret_ref: p
            .api_key_secret_ref
            .map(|KeyRefParam { name, key }| SecretKeyRef { name, key }),
        script_ref: p
            .script_ref
            .map(|KeyRefParam { name, key }| ConfigMapKeyRef { name, key }),
        max_tokens: p.max_tokens,
    }
}

fn tools(params: Vec<ToolParam>) -> Result<Vec<ToolSpec>, ApiError> {
    params.into_iter().enumerate().map(|(i, p)| tool(p, i)).collect()
}

fn tool(param: ToolParam, i: usize) -> Result<ToolSpec, ApiError> {
    let empty = |kind| ToolSpec {
        kind,
        mcp_server_name: None,
        default_config: None,
        configs: vec![],
        name: None,
        description: None,
        input_schema: None,
    };
    Ok(match param {
        ToolParam::AgentToolset(t) => ToolSpec {
            default_config: t.default_config.map(defaults),
            configs: configs(t.configs.unwrap_or_default(), i)?,
            ..empty(ToolType::AgentToolset20260401)
        },
        ToolParam::McpToolset(t) => ToolSpec {
            mcp_server_name: Some(t.mcp_server_name),
            default_config: t.default_config.map(defaults),
            configs: configs(t.configs.unwrap_or_default(), i)?,
            ..empty(ToolType::McpToolset)
        },
        ToolParam::Custom(t) => ToolSpec {
            name: Some(t.name),
            description: Some(t.description),
            input_schema: Some(t.input_schema),
            ..empty(ToolType::Custom)
        },
    })
}

fn defaults(d: ToolDefaultsParam) -> ToolDefaults {
    ToolDefaults {
        enabled: d.enabled,
        permission_policy: d.permission_policy.map(|p| p.0),
    }
}

fn configs(params: Vec<ToolConfigParam>, i: usize) -> Result<Vec<ToolConfig>, ApiError> {
    params
        .into_iter()
        .enumerate()
        .map(|(j, c)| {
            let extras = [
                ("allowed_domains", &c.allowed_domains),
                ("blocked_domains", &c.blocked_domains),
                ("max_content_tokens", &c.max_content_tokens),
                ("url_sources", &c.url_sources),
                ("user_location", &c.user_location),
            ];
            if let Some((field, _)) = extras
                .iter()
                .find(|(_, v)| v.as_ref().is_some_and(|v| !v.is_null()))
            {
                return Err(ApiError::field(
                    &format!("tools[{i}].configs[{j}].{field}"),
                    "is not supported by Corral yet",
                ));
            }
            Ok(ToolConfig {
                name: c.name,
                enabled: c.enabled,
                permission_policy: c.permission_policy.map(|p| p.0),
            })
        })
        .collect()
}

fn mcp_servers(params: Vec<McpServerParam>) -> Result<Vec<McpServer>, ApiError> {
    params
        .into_iter()
        .enumerate()
        .map(|(i, s)| match s.kind.as_deref() {
            None | Some("url") => Ok(McpServer {
                name: s.name,
                url: s.url,
            }),
            Some(other) => Err(ApiError::field(
                &format!("mcp_servers[{i}].type"),
                format!("unsupported type {other:?}; only \"url\""),
            )),
        })
        .collect()
}

/// Most skills one agent may carry (the Managed Agents API's limit).
pub const MAX_SKILLS: usize = 20;

/// An agent's skills as sent: `custom` skills are kept (checked and pinned against the tenant's skills by the
/// agents route), Anthropic's pre-built ones are refused (they are not Corral's to ship), and none twice.
fn skills(params: Vec<SkillParam>) -> Result<Vec<Skill>, ApiError> {
    if params.len() > MAX_SKILLS {
        return Err(ApiError::field("skills", format!("at most {MAX_SKILLS} skills")));
    }
    let mut out: Vec<Skill> = Vec::with_capacity(params.len());
    for (i, p) in params.into_iter().enumerate() {
        if matches!(p.kind, SkillType::ConfigMap | SkillType::GitRepository) {
            return Err(ApiError::field(
                &format!("skills[{i}].type"),
                "skills kept in ConfigMaps or git repositories are declared in the Agent custom resource (kubectl, \
                 GitOps), not through the API; upload the skill with POST /v1/skills to name it here",
            ));
        }
        if p.kind == SkillType::Anthropic {
            return Err(ApiError::field(
                &format!("skills[{i}].type"),
                format!(
                    "Anthropic's pre-built skills ({:?}) are not available in Corral; upload the skill's directory \
                     with POST /v1/skills and name it as a \"custom\" skill",
                    p.skill_id
                ),
            ));
        }
        if p.skill_id.is_empty() {
            return Err(ApiError::field(
                &format!("skills[{i}].skill_id"),
                "must not be empty",
            ));
        }
        if out.iter().any(|s| s.skill_id == p.skill_id) {
            return Err(ApiError::field(
                &format!("skills[{i}].skill_id"),
                format!("{:?} is named twice", p.skill_id),
            ));
        }
        out.push(Skill {
            kind: p.kind,
            skill_id: p.skill_id,
            version: p.version.filter(|v| !v.is_empty()),
            path: None,
            authorization_secret_ref: None,
        });
    }
    Ok(out)
}

/// A skill as the API shows it. Those declared in the custom resource only (a ConfigMap's, a git repository's)
/// are shown as they are, though the API refuses to set them; a git repository's `version` is its branch, tag or
/// commit (`null`: the default branch) and its `path` the skill's directory.
fn skill_object(skill: &Skill) -> Value {
    let kind = match skill.kind {
        SkillType::Anthropic => "anthropic",
        SkillType::Custom => "custom",
        SkillType::ConfigMap => "config_map",
        SkillType::GitRepository => "git_repository",
    };
    let version = match skill.kind {
        SkillType::ConfigMap => None,
        SkillType::GitRepository => skill.version.as_deref(),
        _ => Some(skill.version.as_deref().unwrap_or("latest")),
    };
    let mut out = json!({ "type": kind, "skill_id": skill.skill_id, "version": version });
    if skill.kind == SkillType::GitRepository {
        out["path"] = json!(skill.path);
    }
    out
}

/// The definition part of an Agent object (what a Session's `agent` snapshot also carries): `name`,
/// `description`, `system`, `model`, `tools`, `mcp_servers`, `skills`, `multiagent`, `execution_identity`.
pub fn definition(name: &str, spec: &AgentSpec) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("name".into(), json!(spec.name.as_deref().unwrap_or(name)));
    out.insert("description".into(), json!(spec.description));
    out.insert("system".into(), json!(spec.system));
    out.insert("model".into(), model_object(&spec.model));
    out.insert(
        "tools".into(),
        Value::Array(spec.tools.iter().map(tool_object).collect()),
    );
    out.insert(
        "mcp_servers".into(),
        Value::Array(
            spec.mcp_servers
                .iter()
                .map(|s| json!({ "type": "url", "name": s.name, "url": s.url }))
                .collect(),
        ),
    );
    out.insert(
        "skills".into(),
        Value::Array(spec.skills.iter().map(skill_object).collect()),
    );
    out.insert("multiagent".into(), Value::Null);
    out.insert("execution_identity".into(), json!({ "type": "service_account" }));
    out
}

/// The API's Agent object for `agent` showing `spec` as `version` (the current spec, or an older version's).
pub fn agent_object(
    agent: &Agent,
    spec: &AgentSpec,
    version: i64,
    updated: Option<jiff::Timestamp>,
) -> Value {
    let name = id(&agent.metadata);
    let mut out = Map::new();
    out.insert("id".into(), json!(name));
    out.insert("type".into(), json!("agent"));
    out.extend(definition(&name, spec));
    out.insert("metadata".into(), json!(spec.metadata));
    out.insert("version".into(), json!(version));
    out.insert("created_at".into(), json!(time(created_at(&agent.metadata))));
    out.insert(
        "updated_at".into(),
        json!(time(updated.unwrap_or_else(|| updated_at(&agent.metadata)))),
    );
    out.insert("archived_at".into(), json!(archived_at(&agent.metadata)));
    Value::Object(out)
}

fn model_object(model: &ModelConfig) -> Value {
    let effort = match model.effort.unwrap_or(DEFAULT_EFFORT) {
        Effort::Low => "low",
        Effort::Medium => "medium",
        Effort::High => "high",
        Effort::Xhigh => "xhigh",
        Effort::Max => "max",
    };
    let p = &model.provider;
    let key_ref = |name: &str, key: &str| json!({ "name": name, "key": key });
    json!({
        "id": model.id,
        "effort": { "type": effort },
        "inference_geo": model.inference_geo,
        "speed": match model.speed.unwrap_or(Speed::Standard) { Speed::Standard => "standard", Speed::Fast => "fast" },
        "provider": {
            "type": serde_json::to_value(p.kind).unwrap_or(Value::Null),
            "base_url": p.base_url,
            "api_key_secret_ref": p.api_key_secret_ref.as_ref().map(|r| key_ref(&r.name, &r.key)),
            "script_ref": p.script_ref.as_ref().map(|r| key_ref(&r.name, &r.key)),
            "max_tokens": p.max_tokens,
        },
    })
}

fn policy(p: PermissionPolicy) -> Value {
    match p {
        PermissionPolicy::AlwaysAllow => json!({ "type": "always_allow" }),
        PermissionPolicy::AlwaysAsk => json!({ "type": "always_ask" }),
    }
}

/// The policy a toolset applies when it names none: the built-in tools run at once, MCP tools ask first.
pub fn default_policy(kind: ToolType) -> PermissionPolicy {
    match kind {
        ToolType::McpToolset => PermissionPolicy::AlwaysAsk,
        _ => PermissionPolicy::AlwaysAllow,
    }
}

fn tool_object(tool: &ToolSpec) -> Value {
    match tool.kind {
        ToolType::Custom => json!({
            "type": "custom",
            "name": tool.name,
            "description": tool.description,
            "input_schema": tool.input_schema,
        }),
        kind => {
            let d = tool.default_config.clone().unwrap_or_default();
            let enabled = d.enabled.unwrap_or(true);
            let pol = d.permission_policy.unwrap_or_else(|| default_policy(kind));
            let configs: Vec<Value> = tool
                .configs
                .iter()
                .map(|c| {
                    let mut o = json!({
                        "name": c.name,
                        "enabled": c.enabled.unwrap_or(enabled),
                        "permission_policy": policy(c.permission_policy.unwrap_or(pol)),
                    });
                    if kind == ToolType::AgentToolset20260401 {
                        o["type"] = json!(c.name);
                    }
                    o
                })
                .collect();
            let mut o = json!({
                "type": if kind == ToolType::McpToolset { "mcp_toolset" } else { "agent_toolset_20260401" },
                "default_config": { "enabled": enabled, "permission_policy": policy(pol) },
                "configs": configs,
            });
            if kind == ToolType::McpToolset {
                o["mcp_server_name"] = json!(tool.mcp_server_name);
            }
            o
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::parse;

    fn create(body: Value) -> Result<AgentSpec, ApiError> {
        spec_from_create(parse(body.to_string().as_bytes())?)
    }

    fn agent(spec: AgentSpec) -> Agent {
        let mut a = Agent::new("agent-1", spec);
        a.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            "2026-05-01T10:00:00Z".parse().unwrap(),
        ));
        a
    }

    #[test]
    fn nested_objects_refuse_arrays_and_errors_name_their_field_without_markers() {
        for (body, field) in [
            (json!({ "model": { "id": "m", "provider": [] } }), "model"),
            (
                json!({ "model": { "id": "m", "provider": { "type": "bogus" } } }),
                "model",
            ),
            (
                json!({ "tools": [{ "type": "agent_toolset_20260401", "default_config": [] }] }),
                "tools[0]",
            ),
        ] {
            let mut body = body;
            body["name"] = json!("a");
            body.as_object_mut().unwrap().entry("model").or_insert(json!("m"));
            let err = create(body.clone()).unwrap_err();
            assert!(err.message.starts_with(field), "{body}: {}", err.message);
            assert!(
                !err.message.contains('\u{1}') && !err.message.contains("inner:"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn a_bare_model_id_gets_every_required_field() {
        let spec = create(json!({ "name": "coder", "model": "claude-sonnet-4-5" })).unwrap();
        let obj = agent_object(
            &agent(spec),
            &agent(create(json!({ "name": "coder", "model": "claude-sonnet-4-5" })).unwrap()).spec,
            1,
            None,
        );
        for field in [
            "id",
            "type",
            "name",
            "model",
            "tools",
            "mcp_servers",
            "skills",
            "execution_identity",
            "metadata",
            "version",
            "created_at",
            "updated_at",
        ] {
            assert!(!obj[field].is_null(), "{field} missing in {obj}");
        }
        assert_eq!(obj["type"], "agent");
        assert_eq!(obj["model"]["id"], "claude-sonnet-4-5");
        assert_eq!(obj["model"]["effort"], json!({ "type": "high" }));
        assert_eq!(obj["model"]["speed"], "standard");
        assert_eq!(obj["tools"], json!([]));
        assert_eq!(obj["metadata"], json!({}));
        assert_eq!(obj["execution_identity"], json!({ "type": "service_account" }));
        assert_eq!(obj["created_at"], "2026-05-01T10:00:00.000Z");
        assert_eq!(obj["archived_at"], Value::Null);
    }

    #[test]
    fn request_round_trips_through_the_spec() {
        let body = json!({
            "name": "coder",
            "description": "writes code",
            "system": "be brief",
            "model": { "id": "m", "effort": "low", "speed": "standard",
                       "provider": { "type": "scripted", "script_ref": { "name": "s", "key": "k" } } },
            "tools": [
                { "type": "agent_toolset_20260401", "default_config": { "permission_policy": { "type": "always_ask" } },
                  "configs": [{ "name": "bash", "enabled": false }] },
                { "type": "mcp_toolset", "mcp_server_name": "docs" },
                { "type": "custom", "name": "lookup", "description": "d", "input_schema": { "type": "object" } }
            ],
            "mcp_servers": [{ "type": "url", "name": "docs", "url": "https://mcp.example.com" }],
            "skills": [],
            "metadata": { "team": "a" },
            "execution_identity": { "type": "service_account" }
        });
        let spec = create(body).unwrap();
        assert_eq!(spec.model.effort, Some(Effort::Low));
        assert_eq!(spec.tools[0].configs[0].enabled, Some(false));
        let obj = agent_object(&agent(spec.clone()), &spec, 3, None);
        assert_eq!(obj["version"], 3);
        assert_eq!(obj["description"], "writes code");
        assert_eq!(obj["model"]["effort"], json!({ "type": "low" }));
        assert_eq!(obj["model"]["provider"]["type"], "scripted");
        assert_eq!(
            obj["model"]["provider"]["script_ref"],
            json!({ "name": "s", "key": "k" })
        );
        assert_eq!(
            obj["tools"][0],
            json!({
                "type": "agent_toolset_20260401",
                "default_config": { "enabled": true, "permission_policy": { "type": "always_ask" } },
                "configs": [{ "type": "bash", "name": "bash", "enabled": false, "permission_policy": { "type": "always_ask" } }]
            })
        );
        assert_eq!(obj["tools"][1]["mcp_server_name"], "docs");
        assert_eq!(
            obj["tools"][1]["default_config"]["permission_policy"],
            json!({ "type": "always_ask" })
        );
        assert_eq!(obj["tools"][2]["input_schema"], json!({ "type": "object" }));
        assert_eq!(
            obj["mcp_servers"][0],
            json!({ "type": "url", "name": "docs", "url": "https://mcp.example.com" })
        );
        assert_eq!(obj["skills"], json!([]));
        // The object's fields, sent back as a create request, give the same spec: nothing is lost.
        // Read-only fields are not request fields: refused by name.
        let err = create(obj.clone()).unwrap_err();
        assert_eq!(err.status, 400);
        assert!(
            err.message.ends_with(": Extra inputs are not permitted"),
            "{}",
            err.message
        );
        let mut obj = obj;
        for field in ["id", "type", "version", "created_at", "updated_at", "archived_at"] {
            obj.as_object_mut().unwrap().remove(field);
        }
        let again = create(obj).unwrap();
        assert_eq!(again.tools[2], spec.tools[2]);
        assert_eq!(again.mcp_servers, spec.mcp_servers);
        assert_eq!(
            again.model,
            ModelConfig {
                effort: Some(Effort::Low),
                speed: Some(Speed::Standard),
                ..spec.model.clone()
            }
        );
    }

    #[test]
    fn validation_names_the_api_field() {
        let err = create(json!({ "name": "a", "model": "m", "tools": [{ "type": "agent_toolset_20260401", "configs": [{ "name": "rm" }] }] })).unwrap_err();
        assert!(
            err.message.starts_with("tools[0].configs[0].name:"),
            "{}",
            err.message
        );
        let err = create(json!({ "name": "a", "model": "m", "tools": [{ "type": "custom", "name": "t", "description": "d", "input_schema": { "type": "string" } }] })).unwrap_err();
        assert!(
            err.message.starts_with("tools[0].input_schema:"),
            "{}",
            err.message
        );
        let err = create(
            json!({ "name": "a", "model": "m", "mcp_servers": [{ "name": "x", "url": "https://x" }] }),
        )
        .unwrap_err();
        assert!(err.message.starts_with("mcp_servers[0]:"), "{}", err.message);
        let err = create(json!({ "name": "a", "model": "m", "tools": [{ "type": "mcp_toolset", "mcp_server_name": "nope" }] })).unwrap_err();
        assert!(
            err.message.starts_with("tools[0].mcp_server_name:"),
            "{}",
            err.message
        );
        let err = create(json!({ "name": "", "model": "m" })).unwrap_err();
        assert!(err.message.starts_with("name:"), "{}", err.message);
        let err = create(json!({ "name": "a", "model": { "id": "m", "effort": "extreme" } })).unwrap_err();
        assert!(err.message.starts_with("model:"), "{}", err.message);
        let err = create(json!({ "name": "a", "model": 7 })).unwrap_err();
        assert!(err.message.starts_with("model:"), "{}", err.message);
        let err = create(json!({ "name": "a", "model": "m", "tools": [{ "type": "agent_toolset_20260401", "default_config": { "permission_policy": { "type": "always_ask", "extra": 42 } } }] })).unwrap_err();
        assert!(
            err.message.ends_with("extra: Extra inputs are not permitted"),
            "{}",
            err.message
        );
        let err = create(json!({ "name": "a", "model": "m", "tools": [{ "type": "agent_toolset_20260401", "default_config": { "permission_policy": { "type": "auto" } } }] })).unwrap_err();
        assert!(err.message.contains("auto"), "{}", err.message);
        let err = create(json!({ "name": "a", "model": "m", "tools": [{ "type": "browser" }] })).unwrap_err();
        assert!(err.message.starts_with("tools[0]"), "{}", err.message);
        let err = create(
            json!({ "name": "a", "model": "m", "multiagent": { "type": "coordinator", "agents": [] } }),
        )
        .unwrap_err();
        assert!(err.message.starts_with("multiagent:"), "{}", err.message);
        let err = create(json!({ "name": "a", "model": "m", "metadata": { "": "x" } })).unwrap_err();
        assert_eq!(err.error_code, Some("invalid_metadata"));
        // Anthropic's pre-built skills are not Corral's to ship: refused by name, not accepted and ignored.
        let err = create(
            json!({ "name": "a", "model": "m", "skills": [{ "type": "anthropic", "skill_id": "xlsx" }] }),
        )
        .unwrap_err();
        assert!(err.message.starts_with("skills[0].type:"), "{}", err.message);
        // A ConfigMap's skill is declared in the custom resource only.
        for kind in ["configMap", "config_map", "gitRepository", "git_repository"] {
            let err =
                create(json!({ "name": "a", "model": "m", "skills": [{ "type": kind, "skill_id": "cm" }] }))
                    .unwrap_err();
            assert!(
                err.message.starts_with("skills[0].type"),
                "{kind}: {}",
                err.message
            );
        }
        let twice = json!({ "type": "custom", "skill_id": "skill_1" });
        let err = create(json!({ "name": "a", "model": "m", "skills": [twice, twice] })).unwrap_err();
        assert!(err.message.starts_with("skills[1].skill_id:"), "{}", err.message);
        let err = create(json!({ "name": "a", "model": { "id": "m", "speed": "fast" } })).unwrap_err();
        assert!(err.message.starts_with("model.speed:"), "{}", err.message);
        let err = create(json!({ "name": "a", "model": { "id": "m", "inference_geo": "eu" } })).unwrap_err();
        assert!(err.message.starts_with("model.inference_geo:"), "{}", err.message);
        let spec = create(json!({ "name": "a", "model": "m" })).unwrap();
        let err = apply_update(
            &spec,
            parse(br#"{"skills":[{"type":"anthropic","skill_id":"pdf"}]}"#).unwrap(),
        )
        .unwrap_err();
        assert!(err.message.starts_with("skills[0].type:"), "{}", err.message);
        let kept = apply_update(
            &spec,
            parse(br#"{"skills":[{"type":"custom","skill_id":"skill_1","version":"17"}]}"#).unwrap(),
        )
        .unwrap();
        assert_eq!(kept.skills[0].version.as_deref(), Some("17"));
    }

    #[test]
    fn update_keeps_omitted_fields_replaces_arrays_and_patches_metadata() {
        let spec = create(json!({
            "name": "a", "model": { "id": "m", "effort": "low" }, "system": "s", "description": "d",
            "tools": [{ "type": "agent_toolset_20260401" }], "metadata": { "k": "v", "x": "y" }
        }))
        .unwrap();
        let upd = |b: Value| apply_update(&spec, parse(b.to_string().as_bytes()).unwrap());
        let same = upd(json!({})).unwrap();
        assert_eq!(same, spec);
        let changed = upd(
            json!({ "system": null, "description": "", "tools": [], "metadata": { "k": null, "n": "1" } }),
        )
        .unwrap();
        assert_eq!(changed.system, None);
        assert_eq!(changed.description, None);
        assert!(changed.tools.is_empty());
        assert_eq!(
            changed.metadata,
            [("n".to_owned(), "1".to_owned()), ("x".into(), "y".into())].into()
        );
        let model = upd(json!({ "model": { "id": "m2" } })).unwrap();
        assert_eq!(model.model.effort, None, "model is replaced whole");
        assert!(
            upd(json!({ "name": null }))
                .unwrap_err()
                .message
                .starts_with("name:")
        );
        assert!(
            upd(json!({ "model": null }))
                .unwrap_err()
                .message
                .starts_with("model:")
        );
    }
}
