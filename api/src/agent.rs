//! The `Agent` custom resource: a model, a system prompt and the tools it may use.
//!
//! Fields follow the Managed Agents API's Agent object (camelCase instead of snake_case) so that the gateway maps
//! between the two without loss. Provider settings are Corral's addition: any provider can serve any agent.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ConfigMapKeyRef, Metadata, SecretKeyRef};

/// An agent: the model it runs, its system prompt, its tools, MCP servers and skills.
///
/// Every change of the spec creates a new version (`status.version`); each version's spec is kept as a
/// `ControllerRevision` owned by the Agent so that sessions can pin a version.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "corral.dev",
    version = "v1alpha1",
    kind = "Agent",
    namespaced,
    label("app.kubernetes.io/part-of", "corral"),
    status = "AgentStatus",
    shortname = "agent",
    shortname = "ag",
    category = "corral",
    doc = "An agent: the model it runs, its system prompt, its tools, MCP servers and skills.",
    printcolumn = r#"{"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name": "Version", "type": "integer", "jsonPath": ".status.version"}"#,
    printcolumn = r#"{"name": "Model", "type": "string", "jsonPath": ".spec.model.id"}"#,
    printcolumn = r#"{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new(
    "!has(self.tools) || self.tools.filter(t, t.type == 'mcp_toolset').all(t, has(self.mcpServers) && self.mcpServers.exists(s, s.name == t.mcpServerName))"
).message("every mcp_toolset must name a server listed in mcpServers"))]
#[x_kube(validation = Rule::new(
    "!has(self.mcpServers) || self.mcpServers.all(s, has(self.tools) && self.tools.exists(t, t.type == 'mcp_toolset' && t.mcpServerName == s.name))"
).message("every MCP server must be referenced by an mcp_toolset in tools"))]
#[serde(rename_all = "camelCase")]
pub struct AgentSpec {
    /// Human-readable name (the API's `name`). Defaults to `metadata.name` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() > 0 && self.size() <= 256").message("name must be 1 to 256 characters"))]
    pub name: Option<String>,

    /// What the agent is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,

    /// The model that runs the agent, and the provider that serves it.
    pub model: ModelConfig,

    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.size() <= 100000").message("system prompt must be at most 100000 characters"))]
    pub system: Option<String>,

    /// Tools the agent may call: the built-in agent toolset, MCP toolsets and custom (client-side) tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.size() <= 256").message("at most 256 tools"))]
    #[schemars(length(max = 256))]
    pub tools: Vec<ToolSpec>,

    /// Remote MCP servers the agent connects to. Each must be referenced by an `mcp_toolset` in `tools`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.size() <= 20").message("at most 20 MCP servers"))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 20))]
    pub mcp_servers: Vec<McpServer>,

    /// Skills the agent may load.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub skills: Vec<Skill>,

    /// Free-form key/value pairs (at most 16; keys up to 64 characters, values up to 512).
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    #[schemars(extend("maxProperties" = 16))]
    #[x_kube(validation = Rule::new(crate::common::METADATA_RULE).message(crate::common::METADATA_RULE_MESSAGE))]
    pub metadata: Metadata,

    /// A spending limit applied to each session of this agent (a Session's own `budget` takes precedence).
    /// Corral's extension; see `budget` on Session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<crate::budget::Budget>,

    /// A spending limit for all sessions of this agent in its namespace together, counted from their first model
    /// request on (deleted sessions still count). When their sum reaches it, every session of the agent ends its
    /// turn with `stop_reason: budget_reached` before its next model request. `status.spent` shows the sum.
    /// Corral's extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_budget: Option<crate::budget::Budget>,
}

/// The model configuration (the API's `ModelConfig`) plus the provider that serves it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ModelConfig {
    /// Model id as the provider knows it, for example `claude-sonnet-4-5` or `gpt-4.1`.
    #[x_kube(validation = Rule::new("self.size() > 0 && self.size() <= 256").message("model id must be 1 to 256 characters"))]
    pub id: String,
    /// Reasoning effort. The provider's default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
    /// Where inference runs, when the provider supports choosing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inference_geo: Option<String>,
    /// Output speed tier. `standard` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<Speed>,
    /// Which provider serves the model and how to reach it. The Anthropic Messages API when omitted.
    #[serde(default)]
    pub provider: ProviderConfig,
}

/// Reasoning effort levels.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Effort {
    /// Least reasoning.
    Low,
    /// Moderate reasoning.
    Medium,
    /// Thorough reasoning.
    High,
    /// More than high.
    Xhigh,
    /// The most the model offers.
    Max,
}

/// Output speed tiers.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Speed {
    /// The default tier.
    Standard,
    /// The fast tier, where offered.
    Fast,
}

/// How the harness reaches the model.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'scripted' || has(self.scriptRef)").message("a scripted provider needs scriptRef"))]
#[x_kube(validation = Rule::new("self.type != 'openai' || has(self.baseUrl)").message("an openai-compatible provider needs baseUrl"))]
pub struct ProviderConfig {
    /// Provider protocol: `anthropic` (Messages API), `openai` (OpenAI-compatible chat completions: OpenAI, vLLM,
    /// Ollama, LiteLLM, ...) or `scripted` (replays a recorded script; for tests and demos).
    #[serde(rename = "type", default)]
    pub kind: ProviderKind,
    /// Base URL of the provider's API. Defaults to the provider's public endpoint; required for `openai`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("baseUrl must be an http(s) URL"))]
    pub base_url: Option<String>,
    /// The Secret key holding the API key. The Secret must carry the label `corral.dev/credential=model`; vault
    /// credentials and the Secrets Corral manages are never read. Keys are only ever read by the harness, never by
    /// the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
    /// The ConfigMap key holding the script a `scripted` provider replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_ref: Option<ConfigMapKeyRef>,
    /// Maximum tokens the model may produce per request. The harness's default when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0").message("maxTokens must be positive"))]
    pub max_tokens: Option<i64>,
}

/// Supported provider protocols.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// The Anthropic Messages API.
    #[default]
    Anthropic,
    /// An OpenAI-compatible chat completions API.
    Openai,
    /// A recorded script replayed through the same interface (tests and demos only).
    Scripted,
}

/// One entry of `tools`, discriminated by `type` as in the API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type == 'mcp_toolset' ? has(self.mcpServerName) : !has(self.mcpServerName)").message("mcpServerName is set on, and only on, mcp_toolset entries"))]
#[x_kube(validation = Rule::new("self.type == 'custom' ? (has(self.name) && has(self.description) && has(self.inputSchema)) : !(has(self.name) || has(self.inputSchema))").message("custom tools need name, description and inputSchema; other tool types take none of them"))]
#[x_kube(validation = Rule::new("self.type != 'custom' || (!has(self.defaultConfig) && !has(self.configs))").message("custom tools take no defaultConfig or configs"))]
pub struct ToolSpec {
    /// `agent_toolset_20260401` (the built-in tools run in the sandbox), `mcp_toolset` (tools of an MCP server)
    /// or `custom` (a tool the client runs).
    #[serde(rename = "type")]
    pub kind: ToolType,
    /// For `mcp_toolset`: the name of a server in `mcpServers`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub mcp_server_name: Option<String>,
    /// For toolsets: what applies to every tool of the set unless `configs` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_config: Option<ToolDefaults>,
    /// For toolsets: per-tool overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 128))]
    pub configs: Vec<ToolConfig>,
    /// For `custom`: the tool's name (1 to 128 characters of `[A-Za-z0-9_-]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9_-]{1,128}$')").message("custom tool names are 1 to 128 characters of [A-Za-z0-9_-]"))]
    #[schemars(length(max = 128))]
    pub name: Option<String>,
    /// For `custom`: what the tool does, shown to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// For `custom`: the JSON Schema of the tool's input (an object schema).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::validation::free_form_object")]
    pub input_schema: Option<serde_json::Value>,
}

/// Tool entry kinds.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolType {
    /// The built-in toolset: bash, read, write, edit, glob, grep, web_fetch, web_search.
    #[serde(rename = "agent_toolset_20260401")]
    AgentToolset20260401,
    /// The tools of one MCP server.
    #[serde(rename = "mcp_toolset")]
    McpToolset,
    /// A tool executed by the client, which answers with `user.custom_tool_result`.
    #[serde(rename = "custom")]
    Custom,
}

/// Settings applied to every tool of a toolset.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ToolDefaults {
    /// Whether the tools are offered to the model. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Whether a call runs at once or waits for a `user.tool_confirmation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_policy: Option<PermissionPolicy>,
}

/// A per-tool override within a toolset.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig {
    /// The tool's name, for example `bash`.
    #[x_kube(validation = Rule::new("self.size() > 0 && self.size() <= 128").message("tool names are 1 to 128 characters"))]
    #[schemars(length(max = 128))]
    pub name: String,
    /// Whether the tool is offered to the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Whether a call runs at once or waits for a `user.tool_confirmation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission_policy: Option<PermissionPolicy>,
}

/// Permission policies for tool calls.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PermissionPolicy {
    /// The call runs without confirmation.
    AlwaysAllow,
    /// The call waits for a `user.tool_confirmation` (the session idles with `requires_action`).
    AlwaysAsk,
}

/// A remote MCP server reached over Streamable HTTP.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct McpServer {
    /// Name referenced by an `mcp_toolset` (1 to 255 characters, unique within the agent).
    #[x_kube(validation = Rule::new("self.size() > 0 && self.size() <= 255").message("MCP server names are 1 to 255 characters"))]
    #[schemars(length(max = 255))]
    pub name: String,
    /// The server's URL.
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')").message("MCP server url must be an http(s) URL"))]
    #[schemars(length(max = 2048))]
    pub url: String,
}

/// A skill the agent may load.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.type != 'configMap' || !has(self.version)").message("a configMap skill has no version: its ConfigMap is read as it is"))]
#[x_kube(validation = Rule::new("self.type != 'gitRepository' || self.skillId.startsWith('https://') || self.skillId.startsWith('http://')").message("a gitRepository skill's skillId is the repository's http(s) URL"))]
#[x_kube(validation = Rule::new("self.type == 'gitRepository' || (!has(self.path) && !has(self.authorizationSecretRef))").message("path and authorizationSecretRef belong to gitRepository skills"))]
pub struct Skill {
    /// `anthropic` (a published skill), `custom` (one uploaded to this installation), `configMap` (a ConfigMap of
    /// the Agent's namespace holding the skill's files, each key a file name, `SKILL.md` among them) or
    /// `gitRepository` (a directory of a git repository, read over http(s) by the harness).
    #[serde(rename = "type")]
    pub kind: SkillType,
    /// The skill's id, for example `xlsx` or `skill_01...`; for a `configMap` skill, the ConfigMap's name; for a
    /// `gitRepository` skill, the repository's http(s) URL.
    #[x_kube(validation = Rule::new("self.size() > 0").message("skillId must not be empty"))]
    #[schemars(length(max = 2048))]
    pub skill_id: String,
    /// A pinned version. The latest when omitted. For a `gitRepository` skill: the branch, tag or full commit id
    /// to read (the repository's default branch when omitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 255))]
    pub version: Option<String>,
    /// For a `gitRepository` skill: the directory holding its `SKILL.md`, relative to the repository's root (the
    /// root when omitted).
    #[x_kube(validation = Rule::new("!self.startsWith('/') && !self.contains('..')").message("path is relative to the repository's root and has no '..'"))]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub path: Option<String>,
    /// For a `gitRepository` skill of a private repository: the Secret key holding a token, sent to the
    /// repository's host only (HTTP basic authentication as `x-access-token`). The Secret must carry the label
    /// `corral.dev/credential=repository`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_secret_ref: Option<SecretKeyRef>,
}

/// Skill sources.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SkillType {
    /// A published skill.
    Anthropic,
    /// A skill uploaded to this installation.
    Custom,
    /// A skill kept in a ConfigMap of the Agent's namespace (GitOps): its keys are the skill's files.
    #[serde(rename = "configMap")]
    ConfigMap,
    /// A skill kept in a git repository (GitOps): a directory holding `SKILL.md`, read at a branch, tag or commit.
    #[serde(rename = "gitRepository")]
    GitRepository,
}

/// Observed state of an Agent.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    /// The agent's current version: 1 at creation, incremented on every change of the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` and the reason when it is not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<crate::conditions::Condition>,
    /// What all sessions of this agent have spent together, written by the harness when the agent has a
    /// `totalBudget`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent: Option<AgentSpent>,
}

/// What all sessions of an agent have spent together.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AgentSpent {
    /// Tokens of every kind.
    pub tokens: i64,
    /// Estimated list-price cost; absent when some of it could not be priced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_cost: Option<crate::budget::Money>,
}

impl Agent {
    /// The human-readable name: `spec.name`, or `metadata.name` when that is unset.
    pub fn display_name(&self) -> &str {
        self.spec
            .name
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }
}

/// The built-in tool names of `agent_toolset_20260401` (the sandbox protocol's catalogue).
pub const BUILTIN_TOOLS: &[&str] = corral_sandbox_protocol::TOOLSET;
