//! The rules of an Agent's spec.

use std::collections::BTreeSet;

use super::{
    SpecError,
    common::{between, config_map_ref, http_url, secret_ref, validate_budget, validate_metadata},
    rule,
};
use crate::agent::{AgentSpec, BUILTIN_TOOLS, ModelConfig, ProviderKind, ToolSpec, ToolType};

/// Checks an Agent spec: its CEL rules, and the tool names of the built-in toolset, custom tool input schemas that
/// are object schemas, names listed once.
pub fn validate_agent(spec: &AgentSpec) -> Result<(), SpecError> {
    if let Some(name) = &spec.name {
        rule(
            between(name, 1, 256),
            || "spec.name".into(),
            "name must be 1 to 256 characters",
        )?;
    }
    rule(
        spec.system.as_ref().is_none_or(|s| s.chars().count() <= 100_000),
        || "spec.system".into(),
        "system prompt must be at most 100000 characters",
    )?;
    rule(
        spec.tools.len() <= 256,
        || "spec.tools".into(),
        "at most 256 tools",
    )?;
    rule(
        spec.mcp_servers.len() <= 20,
        || "spec.mcpServers".into(),
        "at most 20 MCP servers",
    )?;
    validate_metadata("spec.metadata", &spec.metadata)?;
    model(&spec.model)?;
    for (i, tool) in spec.tools.iter().enumerate() {
        tool_rules(&format!("spec.tools[{i}]"), tool)?;
    }
    mcp_servers(spec)?;
    for (i, skill) in spec.skills.iter().enumerate() {
        rule(
            !skill.skill_id.is_empty(),
            || format!("spec.skills[{i}].skillId"),
            "skillId must not be empty",
        )?;
        rule(
            skill.kind != crate::agent::SkillType::ConfigMap || skill.version.is_none(),
            || format!("spec.skills[{i}].version"),
            "a configMap skill has no version: its ConfigMap is read as it is",
        )?;
        let git = skill.kind == crate::agent::SkillType::GitRepository;
        rule(
            !git || skill.skill_id.starts_with("https://") || skill.skill_id.starts_with("http://"),
            || format!("spec.skills[{i}]"),
            "a gitRepository skill's skillId is the repository's http(s) URL",
        )?;
        rule(
            git || (skill.path.is_none() && skill.authorization_secret_ref.is_none()),
            || format!("spec.skills[{i}]"),
            "path and authorizationSecretRef belong to gitRepository skills",
        )?;
        if let Some(path) = &skill.path {
            rule(
                !path.starts_with('/') && !path.contains(".."),
                || format!("spec.skills[{i}].path"),
                "path is relative to the repository's root and has no '..'",
            )?;
        }
    }
    if let Some(budget) = &spec.budget {
        validate_budget("spec.budget", budget)?;
    }
    if let Some(budget) = &spec.total_budget {
        validate_budget("spec.totalBudget", budget)?;
    }
    rust_only(spec)
}

fn model(model: &ModelConfig) -> Result<(), SpecError> {
    rule(
        between(&model.id, 1, 256),
        || "spec.model.id".into(),
        "model id must be 1 to 256 characters",
    )?;
    let p = &model.provider;
    let at = "spec.model.provider";
    rule(
        p.kind != ProviderKind::Scripted || p.script_ref.is_some(),
        || format!("{at}.scriptRef"),
        "a scripted provider needs scriptRef",
    )?;
    rule(
        p.kind != ProviderKind::Openai || p.base_url.is_some(),
        || format!("{at}.baseUrl"),
        "an openai-compatible provider needs baseUrl",
    )?;
    rule(
        p.base_url.as_deref().is_none_or(http_url),
        || format!("{at}.baseUrl"),
        "baseUrl must be an http(s) URL",
    )?;
    rule(
        p.max_tokens.is_none_or(|t| t > 0),
        || format!("{at}.maxTokens"),
        "maxTokens must be positive",
    )?;
    if let Some(r) = &p.api_key_secret_ref {
        secret_ref(&format!("{at}.apiKeySecretRef"), r)?;
    }
    if let Some(r) = &p.script_ref {
        config_map_ref(&format!("{at}.scriptRef"), r)?;
    }
    Ok(())
}

fn tool_rules(at: &str, tool: &ToolSpec) -> Result<(), SpecError> {
    let mcp = tool.kind == ToolType::McpToolset;
    let custom = tool.kind == ToolType::Custom;
    rule(
        mcp == tool.mcp_server_name.is_some(),
        || format!("{at}.mcpServerName"),
        "mcpServerName is set on, and only on, mcp_toolset entries",
    )?;
    let custom_fields_ok = if custom {
        tool.name.is_some() && tool.description.is_some() && tool.input_schema.is_some()
    } else {
        tool.name.is_none() && tool.input_schema.is_none()
    };
    rule(
        custom_fields_ok,
        || at.to_owned(),
        "custom tools need name, description and inputSchema; other tool types take none of them",
    )?;
    rule(
        !custom || (tool.default_config.is_none() && tool.configs.is_empty()),
        || at.to_owned(),
        "custom tools take no defaultConfig or configs",
    )?;
    if let Some(name) = &tool.name {
        let ok = (1..=128).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        rule(
            ok,
            || format!("{at}.name"),
            "custom tool names are 1 to 128 characters of [A-Za-z0-9_-]",
        )?;
    }
    for (j, config) in tool.configs.iter().enumerate() {
        rule(
            between(&config.name, 1, 128),
            || format!("{at}.configs[{j}].name"),
            "tool names are 1 to 128 characters",
        )?;
    }
    Ok(())
}

fn mcp_servers(spec: &AgentSpec) -> Result<(), SpecError> {
    for (i, server) in spec.mcp_servers.iter().enumerate() {
        let at = format!("spec.mcpServers[{i}]");
        rule(
            between(&server.name, 1, 255),
            || format!("{at}.name"),
            "MCP server names are 1 to 255 characters",
        )?;
        rule(
            http_url(&server.url),
            || format!("{at}.url"),
            "MCP server url must be an http(s) URL",
        )?;
        // Rust only: the API server refuses duplicates as keys of the list.
        if spec.mcp_servers[..i].iter().any(|s| s.name == server.name) {
            return Err(SpecError::invalid(
                format!("{at}.name"),
                format!("{:?} is listed twice", server.name),
            ));
        }
    }
    for (i, tool) in spec.tools.iter().enumerate() {
        if let Some(name) = tool.mcp_server_name.as_deref() {
            rule(
                spec.mcp_servers.iter().any(|s| s.name == name),
                || format!("spec.tools[{i}].mcpServerName"),
                "every mcp_toolset must name a server listed in mcpServers",
            )?;
        }
    }
    for (i, server) in spec.mcp_servers.iter().enumerate() {
        let used = spec
            .tools
            .iter()
            .any(|t| t.kind == ToolType::McpToolset && t.mcp_server_name.as_deref() == Some(&server.name));
        rule(
            used,
            || format!("spec.mcpServers[{i}]"),
            "every MCP server must be referenced by an mcp_toolset in tools",
        )?;
    }
    Ok(())
}

/// The rules without a CEL twin.
fn rust_only(spec: &AgentSpec) -> Result<(), SpecError> {
    for (i, tool) in spec.tools.iter().enumerate() {
        match tool.kind {
            ToolType::AgentToolset20260401 => {
                for (j, config) in tool.configs.iter().enumerate() {
                    if !BUILTIN_TOOLS.contains(&config.name.as_str()) {
                        return Err(SpecError::invalid(
                            format!("spec.tools[{i}].configs[{j}].name"),
                            format!(
                                "unknown tool {:?}; the toolset has {}",
                                config.name,
                                BUILTIN_TOOLS.join(", ")
                            ),
                        ));
                    }
                }
            }
            ToolType::Custom => {
                let schema_type = tool
                    .input_schema
                    .as_ref()
                    .and_then(|s| s.get("type"))
                    .and_then(|t| t.as_str());
                rule(
                    schema_type == Some("object"),
                    || format!("spec.tools[{i}].inputSchema"),
                    "inputSchema must be a JSON Schema with \"type\": \"object\"",
                )?;
            }
            ToolType::McpToolset => {}
        }
    }
    let mut custom_names = BTreeSet::new();
    for (i, tool) in spec.tools.iter().enumerate() {
        if tool.kind == ToolType::Custom
            && let Some(name) = tool.name.as_deref()
            && !custom_names.insert(name)
        {
            return Err(SpecError::invalid(
                format!("spec.tools[{i}].name"),
                format!("custom tool {name:?} is defined twice"),
            ));
        }
    }
    let toolsets = spec
        .tools
        .iter()
        .filter(|t| t.kind == ToolType::AgentToolset20260401)
        .count();
    rule(
        toolsets <= 1,
        || "spec.tools".into(),
        "the agent toolset may be listed once",
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::conditions::reasons;

    fn agent(tools: serde_json::Value) -> AgentSpec {
        serde_json::from_value(json!({ "model": { "id": "m" }, "tools": tools })).unwrap()
    }

    #[test]
    fn valid_agent_passes() {
        let spec = agent(json!([
            { "type": "agent_toolset_20260401", "configs": [{ "name": "bash", "permissionPolicy": "always_ask" }] },
            { "type": "custom", "name": "t", "description": "d", "inputSchema": { "type": "object" } }
        ]));
        assert_eq!(validate_agent(&spec), Ok(()));
    }

    #[test]
    fn unknown_builtin_tool_names_the_field() {
        let spec = agent(
            json!([{ "type": "agent_toolset_20260401", "configs": [{ "name": "bash" }, { "name": "rm" }] }]),
        );
        let err = validate_agent(&spec).unwrap_err();
        assert_eq!(err.reason, reasons::INVALID_SPEC);
        assert_eq!(err.field, "spec.tools[0].configs[1].name");
        assert!(err.message.contains("\"rm\""), "{err}");
    }

    #[test]
    fn custom_tool_input_schema_must_be_an_object_schema() {
        let spec = agent(
            json!([{ "type": "custom", "name": "t", "description": "d", "inputSchema": { "type": "string" } }]),
        );
        assert_eq!(
            validate_agent(&spec).unwrap_err().field,
            "spec.tools[0].inputSchema"
        );
    }

    #[test]
    fn names_are_listed_once() {
        let t =
            json!({ "type": "custom", "name": "t", "description": "d", "inputSchema": { "type": "object" } });
        let err = validate_agent(&agent(json!([t, t]))).unwrap_err();
        assert_eq!(err.field, "spec.tools[1].name");
        let t = json!({ "type": "agent_toolset_20260401" });
        assert_eq!(
            validate_agent(&agent(json!([t, t]))).unwrap_err().field,
            "spec.tools"
        );
        let mut spec = agent(json!([{ "type": "mcp_toolset", "mcpServerName": "a" }]));
        let server: crate::agent::McpServer =
            serde_json::from_value(json!({ "name": "a", "url": "https://a" })).unwrap();
        spec.mcp_servers = vec![server.clone(), server];
        assert_eq!(
            validate_agent(&spec).unwrap_err().field,
            "spec.mcpServers[1].name"
        );
    }
}
