//! The parts of the API's agent requests (models, tools, MCP servers, skills), as sent by the SDKs.

use corral_api::agent::{Effort, PermissionPolicy, ProviderKind, SkillType, Speed};
use serde::{Deserialize, Deserializer, de::Error as _};
use serde_json::Value;

/// A model: a bare id or a config object.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelParam {
    /// The model id.
    pub id: String,
    /// Reasoning effort.
    pub effort: Option<Effort>,
    /// Inference geography.
    pub inference_geo: Option<String>,
    /// Speed tier.
    pub speed: Option<Speed>,
    /// Corral's extension: the provider that serves the model.
    pub provider: Option<ProviderParam>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelObject {
    id: String,
    #[serde(default)]
    effort: Option<EffortParam>,
    #[serde(default)]
    inference_geo: Option<String>,
    #[serde(default)]
    speed: Option<Speed>,
    #[serde(default, deserialize_with = "corral_api::json_object::object_or_null")]
    provider: Option<ProviderParam>,
}

impl<'de> Deserialize<'de> for ModelParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match value {
            Value::String(id) => Ok(Self {
                id,
                effort: None,
                inference_geo: None,
                speed: None,
                provider: None,
            }),
            Value::Object(_) => {
                let m: ModelObject = serde_path_to_error::deserialize(value).map_err(|e| {
                    let path = e.path().to_string();
                    D::Error::custom(format!("{path}: {}", e.into_inner()))
                })?;
                Ok(Self {
                    id: m.id,
                    effort: m.effort.map(|e| e.0),
                    inference_geo: m.inference_geo,
                    speed: m.speed,
                    provider: m.provider,
                })
            }
            _ => Err(D::Error::custom(
                "must be a model id string or an object {\"id\": ...}",
            )),
        }
    }
}

/// Effort as `"high"` or `{"type":"high"}`.
#[derive(Debug)]
struct EffortParam(Effort);

impl<'de> Deserialize<'de> for EffortParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        tagged_or_bare(deserializer).map(Self)
    }
}

/// A permission policy as `{"type":"always_allow"}` or the bare string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyParam(pub PermissionPolicy);

impl<'de> Deserialize<'de> for PolicyParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        only_type(&value).map_err(D::Error::custom)?;
        let kind = match &value {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => o.get("type").and_then(Value::as_str),
            _ => None,
        };
        match kind {
            Some("always_allow") => Ok(Self(PermissionPolicy::AlwaysAllow)),
            Some("always_ask") => Ok(Self(PermissionPolicy::AlwaysAsk)),
            Some("auto") => Err(D::Error::custom(
                "permission policy \"auto\" is not supported by Corral; use always_allow or always_ask",
            )),
            _ => Err(D::Error::custom(
                "must be {\"type\": \"always_allow\"} or {\"type\": \"always_ask\"}",
            )),
        }
    }
}

/// An object form `{"type": ...}` holds nothing else: another field would be accepted and ignored.
fn only_type(value: &Value) -> Result<(), String> {
    match value {
        Value::Object(o) => match o.keys().find(|k| *k != "type") {
            Some(other) => Err(format!("unknown field `{other}`, expected `type`")),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Reads an enum given as `"x"` or `{"type":"x"}`.
fn tagged_or_bare<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    deserializer: D,
) -> Result<T, D::Error> {
    let value = Value::deserialize(deserializer)?;
    only_type(&value).map_err(D::Error::custom)?;
    let bare = match value {
        Value::Object(mut o) => o.remove("type").unwrap_or(Value::Null),
        other => other,
    };
    serde_json::from_value(bare).map_err(D::Error::custom)
}

/// Corral's provider extension of the model config.
#[derive(Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ProviderParam {
    /// `anthropic`, `openai` or `scripted`.
    #[serde(rename = "type", default)]
    pub kind: ProviderKind,
    /// Base URL of the provider's API.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Secret key holding the provider's API key.
    #[serde(default)]
    pub api_key_secret_ref: Option<KeyRefParam>,
    /// ConfigMap key holding a script (scripted provider).
    #[serde(default)]
    pub script_ref: Option<KeyRefParam>,
    /// Maximum output tokens per request.
    #[serde(default)]
    pub max_tokens: Option<i64>,
}

/// A `{name, key}` reference to a Secret or ConfigMap key in the tenant's namespace.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyRefParam {
    /// Object name.
    pub name: String,
    /// Key in its data.
    pub key: String,
}

/// One entry of `tools`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(tag = "type")]
pub enum ToolParam {
    /// The built-in toolset.
    #[serde(rename = "agent_toolset_20260401")]
    AgentToolset(ToolsetParam),
    /// The tools of an MCP server.
    #[serde(rename = "mcp_toolset")]
    McpToolset(McpToolsetParam),
    /// A tool the client runs.
    #[serde(rename = "custom")]
    Custom(CustomToolParam),
}

/// `agent_toolset_20260401`.
#[derive(Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ToolsetParam {
    /// Settings of every tool.
    #[serde(default, deserialize_with = "corral_api::json_object::object_or_null")]
    pub default_config: Option<ToolDefaultsParam>,
    /// Per-tool overrides.
    #[serde(default)]
    pub configs: Option<Vec<ToolConfigParam>>,
}

/// `mcp_toolset`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpToolsetParam {
    /// The server, by name.
    pub mcp_server_name: String,
    /// Settings of every tool.
    #[serde(default, deserialize_with = "corral_api::json_object::object_or_null")]
    pub default_config: Option<ToolDefaultsParam>,
    /// Per-tool overrides.
    #[serde(default)]
    pub configs: Option<Vec<ToolConfigParam>>,
}

/// `default_config` of a toolset.
#[derive(Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ToolDefaultsParam {
    /// Offered to the model.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Confirmation policy.
    #[serde(default)]
    pub permission_policy: Option<PolicyParam>,
}

/// One entry of a toolset's `configs`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ToolConfigParam {
    /// The tool's name.
    pub name: String,
    /// The SDKs repeat the name of a built-in tool as its `type`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Offered to the model.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Confirmation policy.
    #[serde(default)]
    pub permission_policy: Option<PolicyParam>,
    /// web_fetch / web_search settings Corral does not store yet: refused when set.
    #[serde(default)]
    pub allowed_domains: Option<Value>,
    /// See `allowed_domains`.
    #[serde(default)]
    pub blocked_domains: Option<Value>,
    /// See `allowed_domains`.
    #[serde(default)]
    pub max_content_tokens: Option<Value>,
    /// See `allowed_domains`.
    #[serde(default)]
    pub url_sources: Option<Value>,
    /// See `allowed_domains`.
    #[serde(default)]
    pub user_location: Option<Value>,
}

/// `custom`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomToolParam {
    /// 1 to 128 characters of `[A-Za-z0-9_-]`.
    pub name: String,
    /// Shown to the model.
    pub description: String,
    /// A JSON Schema object.
    pub input_schema: Value,
}

/// `{type:"url", name, url}`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct McpServerParam {
    /// Only `url`.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// Unique name, referenced by an `mcp_toolset`.
    pub name: String,
    /// Streamable HTTP URL.
    pub url: String,
}

/// `{type, skill_id, version?}`.
#[derive(Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SkillParam {
    /// `anthropic` or `custom`.
    #[serde(rename = "type")]
    pub kind: SkillType,
    /// The skill's id.
    pub skill_id: String,
    /// A pinned version; latest when omitted.
    #[serde(default)]
    pub version: Option<String>,
}
