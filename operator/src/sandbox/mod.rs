//! Sandboxes, the hands: everything about a session's sandbox pod, from the pure builders of the objects around it to
//! the decisions about its life and the calls that carry them out. The Session and Environment controllers call in
//! through [`reconcile()`] and [`reconcile_environment`]; the gauges read pods through [`census`].
//!
//! - Pure builders: [`pod`] (the pod), [`packages`] (its package installation), [`egress`] (its proxy settings),
//!   [`storage`] (its disk limits), [`network_policy`], [`workspace`] (the persistent claim), with the names and
//!   labels in [`naming`] and the pod contract shared with the harness and the daemon in [`contract`]. [`policy`]
//!   says what an Environment may ask for.
//! - Pure decisions: [`pod_state`] (what a pod's status means) and [`decide`] (what a session's sandbox becomes:
//!   provisioned, ready, reaped after the idle timeout, replaced after it died).
//! - I/O: [`mod@reconcile`] (a session's sandbox), [`provision`] (claiming a warm pod or creating one, after its
//!   NetworkPolicy), [`warm_pool`] and [`environment`] (an Environment's NetworkPolicy and pool), and
//!   [`isolation`] (the probe that checks the NetworkPolicy is enforced), [`grants`] (the egress proxy's
//!   credential [`grant`] of each bound pod, swept when the pod is gone), and [`token`] (each pod's daemon token,
//!   kept in Redis; the pod gets only its digest), deleted with its pod by [`token_reaper`].

pub mod census;
pub mod config;
pub mod contract;
pub mod decide;
pub mod egress;
pub mod environment;
pub mod grant;
pub mod grants;
pub mod isolation;
pub mod naming;
pub mod network_policy;
pub mod packages;
pub mod pod;
pub mod pod_state;
pub mod policy;
pub mod provision;
pub mod reconcile;
pub mod repository_grant;
pub mod storage;
pub mod token;
pub mod token_reaper;
pub mod warm_pool;
pub mod workspace;

#[cfg(test)]
mod test_support;

pub use config::{EgressConfig, SandboxConfig};
pub use decide::Decision;
pub use environment::reconcile_environment;
pub use network_policy::build_network_policy;
pub use pod::build_sandbox_pod;
pub use reconcile::reconcile;
