//! The brain: a stateless agent loop. It takes a session's wake-up, holds the session's lease, rebuilds the model
//! context from the session log, calls the model with streaming, routes tool calls to the sandbox, and appends
//! every result to the log.
//!
//! - [`engine`]: the turn engine (log → scan → plan → act), the context builder and compaction;
//! - [`liveness`]: this replica's liveness beat, its self-fence and the reaper of dead replicas;
//! - [`worker`]: takes wake-ups from the namespace's queue, leases sessions, runs the engine, shuts down gracefully;
//! - [`tools`]: the [`tools::ToolRunner`] interface, with local sandboxes and cluster sandbox pods;
//! - [`agent`]: agents from a manifest file or the Kubernetes API, their tools and permissions;
//! - [`status`]: the Session status fields the harness owns;
//! - [`providers`]: the model providers;
//! - [`local`]: the local runner (`corral-harness run`).

pub mod agent;
pub mod attachments;
pub mod engine;
pub mod git_skills;
pub mod liveness;
pub mod local;
pub mod log;
pub mod mcp;
pub mod metrics;
pub mod outbound;
pub mod pricing;
pub mod providers;
pub mod skills;
pub mod status;
pub mod tools;
pub mod worker;
