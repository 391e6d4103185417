//! The implementations of the built-in tools: [`Toolbox::execute`] runs each [`ToolName`] of the protocol's
//! catalogue on its input type.

mod bash;
mod edit;
mod glob;
mod grep;
mod paths;
mod read;
pub mod shell;
mod walk;
mod write;

use std::{path::PathBuf, sync::Arc};

use serde::de::DeserializeOwned;

pub use corral_sandbox_protocol::ToolName;
use corral_sandbox_protocol::ToolResult;

use crate::{config::Limits, truncate::limit_text};
use shell::{Shell, ShellOptions};

/// The tools with their workspace, limits and the session's shell.
pub struct Toolbox {
    workspace: PathBuf,
    limits: Limits,
    shell: Arc<Shell>,
    /// Where the session's credential placeholders come from, until they have been loaded once.
    egress: tokio::sync::Mutex<Option<crate::egress::EgressIdentity>>,
}

impl Toolbox {
    /// A toolbox working in `workspace` (which should be absolute).
    pub fn new(workspace: PathBuf, limits: Limits) -> Self {
        Self::with_shell_env(workspace, limits, Vec::new())
    }

    /// A toolbox whose shell gets `shell_env` on top of the daemon's environment.
    pub fn with_shell_env(workspace: PathBuf, limits: Limits, shell_env: Vec<(String, String)>) -> Self {
        let shell = Arc::new(Shell::new(ShellOptions {
            program: limits.shell.clone(),
            workspace: workspace.clone(),
            max_output_bytes: limits.max_output_bytes,
            env: shell_env,
        }));
        Self {
            workspace,
            limits,
            shell,
            egress: tokio::sync::Mutex::new(None),
        }
    }

    /// Loads the session's credential placeholders from the egress proxy before the first `bash` call.
    pub fn with_egress(self, egress: Option<crate::egress::EgressIdentity>) -> Self {
        Self {
            egress: tokio::sync::Mutex::new(egress),
            ..self
        }
    }

    /// Before the first shell starts: the session's placeholder variables. A pod is bound to its session before
    /// its first tool call (warm pods at claim time), so one successful answer is enough; a failure is retried at
    /// the next call.
    async fn load_session_env(&self) {
        let mut egress = self.egress.lock().await;
        let Some(identity) = egress.as_ref() else {
            return;
        };
        match identity.placeholders().await {
            Ok(env) => {
                tracing::info!(
                    variables = env.len(),
                    "loaded the session's credential placeholders"
                );
                self.shell.set_session_env(env);
                *egress = None;
            }
            Err(e) => tracing::warn!(error = %e, "could not load the session's credential placeholders"),
        }
    }

    /// The workspace directory.
    pub fn workspace(&self) -> &std::path::Path {
        &self.workspace
    }

    /// Runs `tool` with `input`. Bad input is a tool error the model can read, never a panic.
    pub async fn execute(&self, tool: ToolName, input: serde_json::Value) -> ToolResult {
        let result = match tool {
            ToolName::Bash => match parse(tool, input) {
                Ok(input) => {
                    self.load_session_env().await;
                    bash::run(self.shell.clone(), &self.limits, input).await
                }
                Err(e) => ToolResult::error(e),
            },
            ToolName::Read => self.blocking(tool, input, read::run).await,
            ToolName::Write => self.blocking(tool, input, |ws, _, i| write::run(ws, i)).await,
            ToolName::Edit => self.blocking(tool, input, edit::run).await,
            ToolName::Glob => self.blocking(tool, input, glob::run).await,
            ToolName::Grep => self.blocking(tool, input, grep::run).await,
        };
        let text = limit_text(result.text(), self.limits.max_output_bytes + 1024);
        ToolResult {
            is_error: result.is_error,
            ..ToolResult::ok(text)
        }
    }

    /// The session's shell.
    pub fn shell(&self) -> &Arc<Shell> {
        &self.shell
    }

    /// Kills the shell and what it started.
    pub fn shutdown(&self) {
        self.shell.shutdown();
    }

    async fn blocking<I, F>(&self, tool: ToolName, input: serde_json::Value, run: F) -> ToolResult
    where
        I: DeserializeOwned + Send + 'static,
        F: FnOnce(&std::path::Path, &Limits, &I) -> Result<String, String> + Send + 'static,
    {
        let input: I = match parse(tool, input) {
            Ok(input) => input,
            Err(e) => return ToolResult::error(e),
        };
        let workspace = self.workspace.clone();
        let limits = self.limits.clone();
        match tokio::task::spawn_blocking(move || run(&workspace, &limits, &input)).await {
            Ok(Ok(text)) => ToolResult::ok(text),
            Ok(Err(e)) => ToolResult::error(e),
            Err(e) => ToolResult::error(format!("{} failed inside the sandbox daemon: {e}", tool.as_str())),
        }
    }
}

fn parse<I: DeserializeOwned>(tool: ToolName, input: serde_json::Value) -> Result<I, String> {
    if !input.is_object() {
        return Err(format!(
            "invalid input for {}: expected a JSON object, got {input}",
            tool.as_str()
        ));
    }
    serde_json::from_value(input).map_err(|e| format!("invalid input for {}: {e}", tool.as_str()))
}
