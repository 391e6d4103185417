//! Which tools an agent may call, and with which permission, from its `tools` list.

use std::collections::BTreeMap;

use corral_api::agent::{AgentSpec, PermissionPolicy, ToolSpec, ToolType};
use corral_api::events::{Evaluation, Permission};
use serde_json::json;

use crate::providers::ToolDefinition;
use corral_sandbox_protocol::ToolName;

/// What a tool name means for an agent.
#[derive(Clone, Debug, PartialEq)]
pub enum ToolKind {
    /// A built-in tool run in the sandbox, with the permission its policy gives.
    Builtin {
        /// `allow` or `ask`.
        permission: Permission,
        /// How the permission was decided.
        evaluation: Evaluation,
    },
    /// A tool of the MCP server `server`, run by the harness, with the permission its toolset's policy gives.
    Mcp {
        /// The server's name (`mcpServers[].name`).
        server: String,
        /// `allow` or `ask`.
        permission: Permission,
        /// How the permission was decided.
        evaluation: Evaluation,
    },
    /// A custom tool the client runs.
    Custom,
    /// A tool the agent may not call (unknown or disabled): the call is denied without running.
    Denied,
}

/// A tool an MCP server lists.
#[derive(Clone, Debug, PartialEq)]
pub struct McpToolInfo {
    /// Its name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// The JSON Schema of its input.
    pub input_schema: serde_json::Value,
}

/// The permission a policy gives, and how it was decided.
fn permission(policy: PermissionPolicy) -> (Permission, Evaluation) {
    match policy {
        PermissionPolicy::AlwaysAllow => (Permission::Allow, Evaluation::AlwaysAllow),
        PermissionPolicy::AlwaysAsk => (Permission::Ask, Evaluation::AlwaysAsk),
    }
}

/// Whether `name` is enabled in a toolset entry, and its policy (`default` when neither the tool's config nor the
/// toolset's default sets one).
fn configured(tool: &ToolSpec, name: &str, default: PermissionPolicy) -> Option<PermissionPolicy> {
    let defaults = tool.default_config.clone().unwrap_or_default();
    let config = tool.configs.iter().find(|c| c.name == name);
    let enabled = config
        .and_then(|c| c.enabled)
        .or(defaults.enabled)
        .unwrap_or(true);
    enabled.then(|| {
        config
            .and_then(|c| c.permission_policy)
            .or(defaults.permission_policy)
            .unwrap_or(default)
    })
}

/// The agent's tools: definitions for the model and the policy of each name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolSet {
    kinds: BTreeMap<String, ToolKind>,
    definitions: Vec<ToolDefinition>,
}

impl ToolSet {
    /// Reads the tools of an Agent spec. MCP tools are added by [`ToolSet::add_mcp_tools`] once listed.
    pub fn from_spec(spec: &AgentSpec) -> Self {
        let mut set = Self::default();
        for tool in &spec.tools {
            match tool.kind {
                ToolType::AgentToolset20260401 => {
                    // Only the tools a sandbox serves are offered; `web_fetch` and `web_search` are not, yet.
                    for builtin in ToolName::ALL {
                        let name = builtin.as_str();
                        let Some(policy) = configured(tool, name, PermissionPolicy::AlwaysAllow) else {
                            continue;
                        };
                        let (permission, evaluation) = permission(policy);
                        let kind = ToolKind::Builtin {
                            permission,
                            evaluation,
                        };
                        let definition = ToolDefinition {
                            name: name.to_owned(),
                            description: builtin.description(),
                            input_schema: builtin.input_schema(),
                        };
                        set.add(name, kind, definition);
                    }
                }
                ToolType::Custom => {
                    let (Some(name), Some(schema)) = (&tool.name, &tool.input_schema) else {
                        continue;
                    };
                    let definition = ToolDefinition {
                        name: name.clone(),
                        description: tool.description.clone().unwrap_or_default(),
                        input_schema: if schema.is_object() {
                            schema.clone()
                        } else {
                            json!({"type": "object"})
                        },
                    };
                    set.add(name, ToolKind::Custom, definition);
                }
                // The tools of an MCP server are known once the harness connected to it: see `add_mcp_tools`.
                ToolType::McpToolset => {}
            }
        }
        set
    }

    /// Adds the tools MCP server `server` lists, as its `mcp_toolset` entry in `spec` configures them: disabled tools
    /// are left out; the policy defaults to `always_ask` (a remote server's tools run only once confirmed, unless
    /// the agent allows them). A name that another tool already has is left out, with a warning.
    pub fn add_mcp_tools(&mut self, spec: &AgentSpec, server: &str, tools: &[McpToolInfo]) {
        let Some(entry) = spec
            .tools
            .iter()
            .find(|t| t.kind == ToolType::McpToolset && t.mcp_server_name.as_deref() == Some(server))
        else {
            return;
        };
        for tool in tools {
            let Some(policy) = configured(entry, &tool.name, PermissionPolicy::AlwaysAsk) else {
                continue;
            };
            if self.kinds.contains_key(&tool.name) {
                tracing::warn!(
                    server,
                    tool = tool.name,
                    "an MCP tool has the name of another tool of the agent; it is left out"
                );
                continue;
            }
            let (permission, evaluation) = permission(policy);
            let definition = ToolDefinition {
                name: tool.name.clone(),
                description: tool.description.clone(),
                input_schema: if tool.input_schema.is_object() {
                    tool.input_schema.clone()
                } else {
                    json!({"type": "object"})
                },
            };
            let kind = ToolKind::Mcp {
                server: server.to_owned(),
                permission,
                evaluation,
            };
            self.add(&tool.name, kind, definition);
        }
    }

    fn add(&mut self, name: &str, kind: ToolKind, definition: ToolDefinition) {
        if self.kinds.insert(name.to_owned(), kind).is_none() {
            self.definitions.push(definition);
        }
    }

    /// What calling `name` means.
    pub fn kind(&self, name: &str) -> ToolKind {
        self.kinds.get(name).cloned().unwrap_or(ToolKind::Denied)
    }

    /// The definitions to offer the model, in the order the agent lists them.
    pub fn definitions(&self) -> &[ToolDefinition] {
        &self.definitions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tools: serde_json::Value) -> AgentSpec {
        serde_json::from_value(json!({"model": {"id": "m"}, "tools": tools})).unwrap()
    }

    #[test]
    fn toolset_policies_and_overrides() {
        let set = ToolSet::from_spec(&spec(json!([
            {"type": "agent_toolset_20260401",
             "defaultConfig": {"permissionPolicy": "always_ask"},
             "configs": [{"name": "read", "permissionPolicy": "always_allow"}, {"name": "grep", "enabled": false}]},
            {"type": "custom", "name": "lookup", "description": "d", "inputSchema": {"type": "object"}}
        ])));
        assert!(matches!(
            set.kind("bash"),
            ToolKind::Builtin {
                permission: Permission::Ask,
                ..
            }
        ));
        assert!(matches!(
            set.kind("read"),
            ToolKind::Builtin {
                permission: Permission::Allow,
                ..
            }
        ));
        assert_eq!(set.kind("grep"), ToolKind::Denied);
        assert_eq!(set.kind("web_fetch"), ToolKind::Denied);
        assert_eq!(set.kind("lookup"), ToolKind::Custom);
        let names: Vec<_> = set.definitions().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["bash", "edit", "read", "write", "glob", "lookup"]);
    }

    #[test]
    fn mcp_tools_follow_their_toolset_config_and_default_to_ask() {
        let spec = spec(json!([
            {"type": "agent_toolset_20260401"},
            {"type": "mcp_toolset", "mcpServerName": "gh",
             "configs": [{"name": "search", "permissionPolicy": "always_allow"}, {"name": "delete", "enabled": false}]}
        ]));
        let mut set = ToolSet::from_spec(&spec);
        let tool = |name: &str| McpToolInfo {
            name: name.into(),
            description: format!("{name} things"),
            input_schema: json!({"type": "object"}),
        };
        set.add_mcp_tools(
            &spec,
            "gh",
            &[tool("search"), tool("create"), tool("delete"), tool("bash")],
        );
        set.add_mcp_tools(&spec, "unknown", &[tool("other")]);
        assert_eq!(
            set.kind("search"),
            ToolKind::Mcp {
                server: "gh".into(),
                permission: Permission::Allow,
                evaluation: Evaluation::AlwaysAllow
            }
        );
        assert!(matches!(
            set.kind("create"),
            ToolKind::Mcp {
                permission: Permission::Ask,
                ..
            }
        ));
        assert_eq!(set.kind("delete"), ToolKind::Denied);
        assert_eq!(set.kind("other"), ToolKind::Denied);
        assert!(
            matches!(set.kind("bash"), ToolKind::Builtin { .. }),
            "built-in names win"
        );
        let names: Vec<_> = set.definitions().iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names[names.len() - 2..], ["search", "create"]);
    }
}
