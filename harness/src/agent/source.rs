//! Where a session's agent comes from.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::ResolvedAgent;
use super::manifest::{Manifest, ManifestError};
use crate::providers::{self, BuildError};

/// Why a session's agent could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The session does not exist (any more): drop its wake-up.
    #[error("session {0} does not exist")]
    NoSession(String),
    /// The agent, its version, or something it references is missing or invalid. Not retryable as is.
    #[error("{0}")]
    Invalid(String),
    /// The Kubernetes API could not be reached; retry later.
    #[error("cannot read the agent: {0}")]
    Unavailable(String),
}

impl From<ManifestError> for LoadError {
    fn from(err: ManifestError) -> Self {
        Self::Invalid(err.to_string())
    }
}

impl From<BuildError> for LoadError {
    fn from(err: BuildError) -> Self {
        Self::Invalid(format!("cannot build the model provider: {err}"))
    }
}

/// A boxed future of a loaded agent.
pub type AgentFuture<'a> = Pin<Box<dyn Future<Output = Result<Arc<ResolvedAgent>, LoadError>> + Send + 'a>>;

/// Loads the agent that runs a session.
pub trait AgentSource: Send + Sync {
    /// The agent (at the session's pinned version) of `session` in `namespace`.
    fn load<'a>(&'a self, namespace: &'a str, session: &'a str) -> AgentFuture<'a>;
}

/// One agent from a manifest file, for every session (local mode: no Kubernetes API).
#[derive(Debug, Clone)]
pub struct FileAgentSource {
    agent: Arc<ResolvedAgent>,
}

impl FileAgentSource {
    /// Reads the manifest and builds its provider once.
    pub fn from_manifest(manifest: &Manifest) -> Result<Self, LoadError> {
        if !manifest.agent.spec.skills.is_empty() {
            return Err(LoadError::Invalid(
                "spec.skills: skills are read from the gateway, which a harness serving a manifest file has not; \
                 run the agent on a cluster"
                    .into(),
            ));
        }
        let inputs = manifest.provider_inputs()?;
        let provider = providers::build(&manifest.agent.spec.model.provider, inputs)?;
        let name = manifest
            .agent
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| "agent".into());
        Ok(Self {
            agent: Arc::new(ResolvedAgent::new(name, manifest.agent.spec.clone(), provider)),
        })
    }

    /// Reads a manifest file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self, LoadError> {
        Self::from_manifest(&Manifest::from_file(path)?)
    }

    /// The agent.
    pub fn agent(&self) -> Arc<ResolvedAgent> {
        self.agent.clone()
    }
}

impl AgentSource for FileAgentSource {
    fn load<'a>(&'a self, _namespace: &'a str, _session: &'a str) -> AgentFuture<'a> {
        let agent = self.agent.clone();
        Box::pin(async move { Ok(agent) })
    }
}
