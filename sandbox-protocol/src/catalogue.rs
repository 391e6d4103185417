//! The built-in tools (`agent_toolset_20260401`) the sandbox daemon runs: one input type per tool. The daemon
//! deserialises a call's input into it, and the model-facing definition (description and JSON schema) is generated
//! from it, so the two cannot drift apart. A type's doc comment is the tool's description for the model and its
//! fields' doc comments describe the properties: write them for the model.
//!
//! Adding a tool: its input type here, its line in the `catalogue!` list below, its implementation in the daemon
//! (`sandbox/src/tools/`), whose `match` on [`ToolName`] the compiler then points at.

use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::schema::tool_schema;

/// Every built-in tool name of `agent_toolset_20260401`, whether or not a sandbox serves it yet (an agent may name
/// any of them; only the [`ToolName`]s are offered to the model).
pub const TOOLSET: &[&str] = &[
    "bash",
    "edit",
    "read",
    "write",
    "glob",
    "grep",
    "web_fetch",
    "web_search",
];

/// Declares the served tools: the [`ToolName`] enum, its names and the input type of each.
macro_rules! catalogue {
    ($($(#[$doc:meta])* $variant:ident = $name:literal => $input:ty,)*) => {
        /// The tools the sandbox daemon runs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ToolName {
            $($(#[$doc])* $variant,)*
        }

        impl ToolName {
            /// Every tool, in the order the API lists them.
            pub const ALL: &[ToolName] = &[$(Self::$variant,)*];

            /// The name the model uses.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// What the model is told the tool does: its input type's doc comment.
            pub fn description(self) -> String {
                self.schema().0
            }

            /// The JSON schema of the tool's input for the model: an `object`, generated from its input type.
            pub fn input_schema(self) -> serde_json::Value {
                self.schema().1
            }

            fn schema(self) -> (String, serde_json::Value) {
                match self {
                    $(Self::$variant => tool_schema::<$input>(),)*
                }
            }
        }
    };
}

catalogue! {
    /// A command in the persistent shell.
    Bash = "bash" => BashInput,
    /// Exact string replacement in a file.
    Edit = "edit" => EditInput,
    /// A text file with line numbers.
    Read = "read" => ReadInput,
    /// Create or overwrite a file.
    Write = "write" => WriteInput,
    /// Files matching a glob.
    Glob = "glob" => GlobInput,
    /// Lines matching a regular expression.
    Grep = "grep" => GrepInput,
}

impl FromStr for ToolName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|tool| tool.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown tool {name:?}; this sandbox runs {}", known.join(", "))
            })
    }
}

impl std::fmt::Display for ToolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Run a command in a persistent bash shell in the sandbox. The working directory, variables and functions carry
/// over between calls. Output is stdout and stderr merged; long output is truncated in the middle.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
pub struct BashInput {
    /// The command to run.
    #[serde(default)]
    pub command: Option<String>,
    /// Start a fresh shell first (working directory back to the workspace, exported variables dropped).
    #[serde(default)]
    pub restart: Option<bool>,
    /// How long it may run, in milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// Read a text file, with line numbers. Use view_range to read part of a long file.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct ReadInput {
    /// The file to read.
    pub file_path: String,
    /// [start, end], 1-indexed and inclusive; end <= 0 reads to the end.
    #[serde(default)]
    pub view_range: Option<[i64; 2]>,
}

/// Create or overwrite a file with the given content (parent directories are created).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct WriteInput {
    /// The file to create or overwrite.
    pub file_path: String,
    /// Its new content.
    pub content: String,
}

/// Replace an exact string in a file. old_string must match exactly once unless replace_all is set.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct EditInput {
    /// The file to edit.
    pub file_path: String,
    /// The exact text to replace.
    pub old_string: String,
    /// The replacement.
    pub new_string: String,
    /// Replace every occurrence instead of requiring exactly one.
    #[serde(default)]
    pub replace_all: Option<bool>,
}

/// List files matching a glob pattern (for example **/*.rs), honouring .gitignore.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct GlobInput {
    /// A glob such as **/*.rs, matched against paths relative to path.
    pub pattern: String,
    /// The directory to search; the workspace by default.
    #[serde(default)]
    pub path: Option<String>,
}

/// Search file contents with a regular expression; prints path:line:text.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct GrepInput {
    /// A regular expression (Rust regex syntax).
    pub pattern: String,
    /// The file or directory to search; the workspace by default.
    #[serde(default)]
    pub path: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_served_tool_belongs_to_the_toolset_and_parses_back_from_its_name() {
        for tool in ToolName::ALL {
            assert!(TOOLSET.contains(&tool.as_str()), "{tool}");
            assert_eq!(tool.as_str().parse::<ToolName>(), Ok(*tool));
        }
        let err = "web_fetch".parse::<ToolName>().unwrap_err();
        assert!(err.contains("bash, edit, read, write, glob, grep"), "{err}");
    }

    #[test]
    fn a_definition_is_an_object_schema_a_provider_accepts() {
        for tool in ToolName::ALL {
            let schema = tool.input_schema();
            let schema = schema.as_object().unwrap();
            assert_eq!(schema["type"], "object", "{tool}");
            assert!(schema["properties"].is_object(), "{tool}");
            for noise in ["$schema", "$defs", "definitions", "title", "description"] {
                assert!(!schema.contains_key(noise), "{tool} has {noise}");
            }
            let description = tool.description();
            assert!(!description.is_empty() && !description.contains('\n'), "{tool}");
        }
    }

    #[test]
    fn the_edit_schema_requires_what_the_daemon_requires() {
        assert_eq!(
            ToolName::Edit.description(),
            "Replace an exact string in a file. old_string must match exactly once unless replace_all is set."
        );
        assert_eq!(
            ToolName::Edit.input_schema(),
            json!({
                "type": "object",
                "required": ["file_path", "old_string", "new_string"],
                "properties": {
                    "file_path": {"type": "string", "description": "The file to edit."},
                    "old_string": {"type": "string", "description": "The exact text to replace."},
                    "new_string": {"type": "string", "description": "The replacement."},
                    "replace_all": {"type": "boolean", "description": "Replace every occurrence instead of requiring exactly one."}
                }
            })
        );
        let missing: Result<EditInput, _> =
            serde_json::from_value(json!({"file_path": "a", "old_string": "x"}));
        assert!(missing.is_err());
    }

    #[test]
    fn optional_numbers_and_ranges_keep_their_shape_without_nulls() {
        let bash = ToolName::Bash.input_schema();
        assert_eq!(bash.get("required"), None);
        assert_eq!(bash["properties"]["timeout_ms"]["type"], "integer");
        assert_eq!(bash["properties"]["timeout_ms"]["minimum"], 0);
        let read = ToolName::Read.input_schema();
        let range = &read["properties"]["view_range"];
        assert_eq!(range["type"], "array");
        assert_eq!(range["items"], json!({"type": "integer"}));
        assert_eq!(
            (range["minItems"].clone(), range["maxItems"].clone()),
            (json!(2), json!(2))
        );
        assert_eq!(read["required"], json!(["file_path"]));
    }
}
