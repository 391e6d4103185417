//! Semantic checks of a spec that a schema cannot state, shared by the operator (which reports them as
//! conditions) and the gateway (which answers them with the API's error envelope).

use std::time::Duration;

use schemars::{Schema, SchemaGenerator, json_schema};
use sha2::{Digest, Sha256};

use crate::{
    agent::{AgentSpec, BUILTIN_TOOLS, ToolType},
    conditions::reasons,
    environment::{DEFAULT_IDLE_TIMEOUT, EnvironmentSpec},
};

/// A spec that cannot work, with the condition reason and a message naming the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The field path, for example `spec.tools[0].configs[1].name`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
    /// The condition reason to report.
    pub reason: &'static str,
}

impl SpecError {
    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            reason: reasons::INVALID_SPEC,
        }
    }
}

/// Schema of a free-form JSON object (kept as is by the API server), for JSON Schema inputs of custom tools.
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Checks an Agent spec beyond its schema: tool names within the built-in toolset, and custom tool input schemas
/// that are object schemas.
pub fn validate_agent(spec: &AgentSpec) -> Result<(), SpecError> {
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
                if schema_type != Some("object") {
                    return Err(SpecError::invalid(
                        format!("spec.tools[{i}].inputSchema"),
                        "inputSchema must be a JSON Schema with \"type\": \"object\"",
                    ));
                }
            }
            ToolType::McpToolset => {}
        }
    }
    let mut custom_names = std::collections::BTreeSet::new();
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
    if spec
        .tools
        .iter()
        .filter(|t| t.kind == ToolType::AgentToolset20260401)
        .count()
        > 1
    {
        return Err(SpecError::invalid(
            "spec.tools",
            "the agent toolset may be listed once",
        ));
    }
    Ok(())
}

/// Checks an Environment spec beyond its schema: the idle timeout parses and is at least a few seconds.
pub fn validate_environment(spec: &EnvironmentSpec) -> Result<(), SpecError> {
    let timeout = idle_timeout(spec)?;
    if timeout < Duration::from_secs(10) {
        return Err(SpecError::invalid(
            "spec.sandbox.idleTimeout",
            "idleTimeout must be at least 10s",
        ));
    }
    Ok(())
}

/// The Environment's idle timeout (15 minutes when unset).
pub fn idle_timeout(spec: &EnvironmentSpec) -> Result<Duration, SpecError> {
    let text = spec
        .sandbox
        .idle_timeout
        .as_deref()
        .unwrap_or(DEFAULT_IDLE_TIMEOUT);
    humantime::parse_duration(text).map_err(|e| {
        SpecError::invalid(
            "spec.sandbox.idleTimeout",
            format!("{text:?} is not a duration: {e}"),
        )
    })
}

/// A stable hash of a serializable spec, used to tell whether an Agent's spec changed since its last version.
pub fn spec_hash<T: serde::Serialize>(spec: &T) -> String {
    // serde_json writes struct fields in declaration order and BTreeMaps sorted, so equal specs hash equally.
    let bytes = serde_json::to_vec(spec).unwrap_or_default();
    let digest = Sha256::digest(&bytes);
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
    fn custom_tool_names_are_unique() {
        let t =
            json!({ "type": "custom", "name": "t", "description": "d", "inputSchema": { "type": "object" } });
        let err = validate_agent(&agent(json!([t, t]))).unwrap_err();
        assert_eq!(err.field, "spec.tools[1].name");
    }

    #[test]
    fn the_toolset_is_listed_once() {
        let t = json!({ "type": "agent_toolset_20260401" });
        assert_eq!(
            validate_agent(&agent(json!([t, t]))).unwrap_err().field,
            "spec.tools"
        );
    }

    #[test]
    fn idle_timeout_must_parse_and_be_long_enough() {
        let mut spec = EnvironmentSpec::default();
        assert_eq!(
            idle_timeout(&spec),
            Ok(Duration::from_secs(900)),
            "15 minutes by default"
        );
        spec.sandbox.idle_timeout = Some("1h30m".into());
        assert_eq!(idle_timeout(&spec), Ok(Duration::from_secs(5400)));
        spec.sandbox.idle_timeout = Some("3s".into());
        assert!(
            validate_environment(&spec)
                .unwrap_err()
                .message
                .contains("at least 10s")
        );
        spec.sandbox.idle_timeout = Some("soon".into());
        let err = validate_environment(&spec).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.reason),
            ("spec.sandbox.idleTimeout", reasons::INVALID_SPEC)
        );
    }
}
