//! Which tools an agent may call, and with which permission, from its `tools` list.

use std::collections::BTreeMap;

use corral_api::agent::{AgentSpec, PermissionPolicy, ToolType};
use corral_api::events::{Evaluation, Permission};
use serde_json::json;

use super::builtin;
use crate::providers::ToolDefinition;

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
    /// A custom tool the client runs.
    Custom,
    /// A tool the agent may not call (unknown or disabled): the call is denied without running.
    Denied,
}

/// The agent's tools: definitions for the model and the policy of each name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ToolSet {
    kinds: BTreeMap<String, ToolKind>,
    definitions: Vec<ToolDefinition>,
}

impl ToolSet {
    /// Reads the tools of an Agent spec. MCP toolsets are not served yet and are left out (with a warning).
    pub fn from_spec(spec: &AgentSpec) -> Self {
        let mut set = Self::default();
        for tool in &spec.tools {
            match tool.kind {
                ToolType::AgentToolset20260401 => {
                    let defaults = tool.default_config.clone().unwrap_or_default();
                    for name in builtin::SANDBOX_TOOLS {
                        let config = tool.configs.iter().find(|c| c.name == name);
                        let enabled = config
                            .and_then(|c| c.enabled)
                            .or(defaults.enabled)
                            .unwrap_or(true);
                        if !enabled {
                            continue;
                        }
                        let policy = config
                            .and_then(|c| c.permission_policy)
                            .or(defaults.permission_policy)
                            .unwrap_or(PermissionPolicy::AlwaysAllow);
                        let kind = match policy {
                            PermissionPolicy::AlwaysAllow => ToolKind::Builtin {
                                permission: Permission::Allow,
                                evaluation: Evaluation::AlwaysAllow,
                            },
                            PermissionPolicy::AlwaysAsk => ToolKind::Builtin {
                                permission: Permission::Ask,
                                evaluation: Evaluation::AlwaysAsk,
                            },
                        };
                        if let Some(definition) = builtin::definition(name) {
                            set.add(name, kind, definition);
                        }
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
                ToolType::McpToolset => {
                    tracing::warn!(
                        server = tool.mcp_server_name.as_deref().unwrap_or_default(),
                        "MCP toolsets are not served yet; the agent runs without them"
                    );
                }
            }
        }
        set
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
        assert_eq!(names, ["bash", "read", "write", "edit", "glob", "lookup"]);
    }
}
