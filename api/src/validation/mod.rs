//! The one rule set of Corral's specs. The CRDs' CEL rules (`#[x_kube(validation = ...)]`) mirror these checks for
//! objects written with kubectl; the gateway runs them before an object reaches Kubernetes (mapping the spec's
//! field paths to the API's names); the operator reports them as conditions. Each rule with a CEL twin fails with
//! the twin's message, and `cel_twins` (a test) runs both on the same inputs.
//!
//! A few rules have no CEL twin (the operator reports them as a condition): the toolset's tool names, custom tool
//! input schemas, names listed twice, and the idle timeout's lower bound.

mod agent;
mod common;
mod environment;
mod session;

#[cfg(test)]
mod cel_twins;

use std::time::Duration;

use schemars::{Schema, SchemaGenerator, json_schema};
use sha2::{Digest, Sha256};

pub use agent::validate_agent;
pub use common::{validate_budget, validate_metadata};
pub use environment::validate_environment;
pub use session::{file_mount_path_ok, validate_session, validate_session_update};

use crate::{conditions::reasons, environment::EnvironmentSpec};

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

/// `Ok` when `ok`, else a [`SpecError`] at `field`.
fn rule(ok: bool, field: impl FnOnce() -> String, message: &str) -> Result<(), SpecError> {
    if ok {
        Ok(())
    } else {
        Err(SpecError::invalid(field(), message))
    }
}

/// Schema of a free-form JSON object (kept as is by the API server), for JSON Schema inputs of custom tools.
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The Environment's idle timeout (15 minutes when unset).
pub fn idle_timeout(spec: &EnvironmentSpec) -> Result<Duration, SpecError> {
    let text = spec
        .sandbox
        .idle_timeout
        .as_deref()
        .unwrap_or(crate::environment::DEFAULT_IDLE_TIMEOUT);
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
