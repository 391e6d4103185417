//! The brain: a stateless agent loop. It takes a session's wake-up, holds the session's lease, rebuilds the model
//! context from the session log, calls the model with streaming, routes tool calls to the sandbox, and appends
//! every result to the log. (Filled by the brain issue.)

pub mod providers;
