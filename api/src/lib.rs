//! Corral's shared vocabulary.
//!
//! The custom resources (`Agent`, `Environment`, `Session` in group `corral.dev`, version `v1alpha1`) are defined
//! here and nowhere else: `crdgen` renders their schemas into `crds/`, the operator reconciles them, the gateway maps
//! them to and from the Managed Agents API, and the harness reads them. This crate performs no I/O.
//!
//! Naming: a resource's API id is its `metadata.name`. Objects created through the API get generated names
//! (`agent-…`, `env-…`, `sesn-…`); objects created with kubectl keep the names their authors gave them.

pub mod agent;
pub mod budget;
pub mod common;
pub mod conditions;
pub mod disk;
pub mod egress;
pub mod environment;
pub mod events;
pub mod json_object;
pub mod labels;
pub mod model_key;
pub mod network;
pub mod repository;
pub mod revision;
pub mod session;
pub mod skill_md;
pub mod validation;
pub mod vault;

pub use agent::{Agent, AgentSpec, AgentStatus};
pub use environment::{Environment, EnvironmentSpec, EnvironmentStatus};
pub use session::{Session, SessionSpec, SessionStatus};

/// The API group of every Corral custom resource.
pub const GROUP: &str = "corral.dev";
/// The served and stored version of every Corral custom resource.
pub const VERSION: &str = "v1alpha1";
