//! The session log as the harness reads it: every entry with its typed body *and* the harness's private fields.
//!
//! The harness stores a little more than the API shows. Some events carry a `corral` object next to their API
//! fields (see [`hidden`]): the thinking text and signature behind `agent.thinking` (the API's event carries none,
//! but the model needs it back), the summary behind `agent.thread_context_compacted`, the model's stop reason on
//! `span.model_request_end`, and the purpose of a `span.model_request_start`. Event bodies the API defines ignore
//! unknown fields, so anything that reads events through `corral_api` (the gateway) never shows them to clients;
//! the harness reads the raw entries here to get them back.

mod cache;
pub mod hidden;
mod view;

pub use cache::{DEFAULT_BUDGET, LogCache};
pub use view::{LogEntry, LogView};
