//! The turn engine: rebuilds a session's state from its log, decides the next step, does it, appends the result,
//! and repeats until there is nothing left to do.
//!
//! The log is the only state. [`scan`] folds the log into a [`scan::Scan`]; [`plan::plan`] turns it into the next
//! [`plan::Step`] (append some events, call the model, run one tool, or stop); [`context::build`] rebuilds the model
//! request for a model call; [`reply::reply_events`] turns the model's reply into events; [`run::Engine`] does the
//! I/O. Because every decision is re-derived from the log, a
//! replica that takes over after a crash continues exactly where the log stops, and an append whose outcome was
//! unknown is never repeated blindly.
//!
//! Rules that make crash recovery exact:
//! - a model call's output (thinking, message, tool uses, `span.model_request_end`, `session.usage`) is appended in
//!   one atomic batch, so a call is either entirely in the log or not at all; a call cut off by a crash is made
//!   again under its open `span.model_request_start`;
//! - the context of a call is everything before its `span.model_request_start`, so a repeated call sees the same
//!   context, and client events that arrive while it streams are answered by the next call;
//! - a tool runs only in the process that appended what authorised it (the batch holding its `agent.tool_use`, or
//!   the `session.status_running` after its confirmation); any other tool use without a result is answered with an
//!   error result saying it was interrupted and not re-run.

pub mod compaction;
pub mod context;
pub mod events;
pub mod plan;
pub mod reply;
pub mod run;
pub mod scan;
#[cfg(test)]
mod tests;
mod watch;

pub use run::{AlwaysOpen, Engine, EngineConfig, Outcome, ToolGate};
