//! The Session status fields the harness owns (`phase`, `usage`, `activeSeconds`, `lastEventTime` and
//! `sandbox.requestedAt`), computed from the log and written by server-side apply under the field manager
//! `corral-harness` at phase changes and turn ends only, never per event; and an Agent's `status.spent` when it has
//! a `totalBudget`.

mod compute;
mod kube;

use std::future::Future;
use std::pin::Pin;

use corral_api::budget::Spent;

pub use compute::{StatusFields, compute};
pub use kube::StatusWriter;

/// A boxed future of a status write.
pub type StatusFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where the harness reports a session's status. Failures are logged, never fatal: the log stays the truth.
pub trait StatusSink: Send + Sync {
    /// Records the fields of `session`.
    fn report<'a>(&'a self, namespace: &'a str, session: &'a str, fields: StatusFields) -> StatusFuture<'a>;

    /// Records what all sessions of `agent` spent together (for its `totalBudget`).
    fn report_agent_spent<'a>(
        &'a self,
        _namespace: &'a str,
        _agent: &'a str,
        _spent: Spent,
    ) -> StatusFuture<'a> {
        Box::pin(async {})
    }
}

/// Local mode: no Session objects, nothing to write.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoStatus;

impl StatusSink for NoStatus {
    fn report<'a>(&'a self, _: &'a str, _: &'a str, _: StatusFields) -> StatusFuture<'a> {
        Box::pin(async {})
    }
}
