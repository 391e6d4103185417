//! What the harness needs to know about a session's agent: its spec, the provider that serves it, and which tools it
//! may call with which permission. Agents come from a manifest file (local mode) or the Kubernetes API.

pub mod kube;
pub mod manifest;
mod source;
mod toolset;

use std::sync::Arc;

use corral_api::agent::AgentSpec;

use crate::providers::Provider;

pub use source::{AgentSource, FileAgentSource, LoadError};
pub use toolset::{McpToolInfo, ToolKind, ToolSet};

/// Output tokens per model request when the Agent sets no `maxTokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 8192;

/// A session's agent, ready to run.
#[derive(Clone)]
pub struct ResolvedAgent {
    /// The agent's name (for logs).
    pub name: String,
    /// The spec of the pinned version.
    pub spec: AgentSpec,
    /// The provider serving the agent's model.
    pub provider: Arc<dyn Provider>,
    /// The tools it may call.
    pub tools: ToolSet,
    /// The session's budget: the Session's own, else the agent's.
    pub budget: Option<corral_api::budget::Budget>,
    /// Whether each turn waits for the session's sandbox before its first model request (the Environment's
    /// `sandbox.provisioning: Eager`); otherwise the sandbox is asked for on the first tool call.
    pub sandbox_up_front: bool,
    /// Its skills at their versions: named in the system prompt, their files put in the sandbox.
    pub skills: Vec<Arc<crate::skills::LoadedSkill>>,
}

impl std::fmt::Debug for ResolvedAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedAgent")
            .field("name", &self.name)
            .field("provider", &self.provider.name())
            .finish_non_exhaustive()
    }
}

impl ResolvedAgent {
    /// An agent from its spec and provider.
    pub fn new(name: impl Into<String>, spec: AgentSpec, provider: Arc<dyn Provider>) -> Self {
        let tools = ToolSet::from_spec(&spec);
        Self {
            name: name.into(),
            budget: spec.budget.clone(),
            spec,
            provider,
            tools,
            sandbox_up_front: false,
            skills: Vec::new(),
        }
    }

    /// Output tokens per model request.
    pub fn max_tokens(&self) -> u32 {
        self.spec
            .model
            .provider
            .max_tokens
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_MAX_TOKENS)
    }
}
