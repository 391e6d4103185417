//! The model-facing definitions of the built-in tools the sandbox daemon runs (`agent_toolset_20260401`).

use serde_json::{Value, json};

use crate::providers::ToolDefinition;

/// The built-in tools the sandbox runs. `web_fetch` and `web_search` are not offered: no sandbox serves them yet.
pub const SANDBOX_TOOLS: [&str; 6] = ["bash", "read", "write", "edit", "glob", "grep"];

/// The definition of built-in tool `name`, if the sandbox runs it.
pub fn definition(name: &str) -> Option<ToolDefinition> {
    let (description, schema): (&str, Value) = match name {
        "bash" => (
            "Run a command in a persistent bash shell in the sandbox. The working directory, variables and \
             functions carry over between calls. Output is stdout and stderr merged; long output is truncated in \
             the middle.",
            json!({"type": "object", "properties": {
                "command": {"type": "string", "description": "The command to run."},
                "timeout_ms": {"type": "integer", "description": "How long it may run, in milliseconds."},
                "restart": {"type": "boolean", "description": "Start a fresh shell first."}
            }}),
        ),
        "read" => (
            "Read a text file, with line numbers. Use view_range to read part of a long file.",
            json!({"type": "object", "required": ["file_path"], "properties": {
                "file_path": {"type": "string"},
                "view_range": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
                               "description": "[start, end], 1-indexed; end <= 0 reads to the end."}
            }}),
        ),
        "write" => (
            "Create or overwrite a file with the given content (parent directories are created).",
            json!({"type": "object", "required": ["file_path", "content"], "properties": {
                "file_path": {"type": "string"}, "content": {"type": "string"}
            }}),
        ),
        "edit" => (
            "Replace an exact string in a file. old_string must match exactly once unless replace_all is set.",
            json!({"type": "object", "required": ["file_path", "old_string", "new_string"], "properties": {
                "file_path": {"type": "string"}, "old_string": {"type": "string"},
                "new_string": {"type": "string"}, "replace_all": {"type": "boolean"}
            }}),
        ),
        "glob" => (
            "List files matching a glob pattern (for example **/*.rs), honouring .gitignore.",
            json!({"type": "object", "required": ["pattern"], "properties": {
                "pattern": {"type": "string"}, "path": {"type": "string"}
            }}),
        ),
        "grep" => (
            "Search file contents with a regular expression; prints path:line:text.",
            json!({"type": "object", "required": ["pattern"], "properties": {
                "pattern": {"type": "string"}, "path": {"type": "string"}
            }}),
        ),
        _ => return None,
    };
    Some(ToolDefinition {
        name: name.to_owned(),
        description: description.to_owned(),
        input_schema: schema,
    })
}
