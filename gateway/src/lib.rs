//! Corral's HTTP API, wire-compatible with the Managed Agents API.
//!
//! Agents, environments and sessions are stored as the custom resources of `corral_api` in the namespace of the
//! caller's API key; events live in the session log (`corral_session`). The gateway keeps no state of its own: any
//! replica serves any request, and a restart loses nothing.
//!
//! - [`server::router`] builds the axum application; [`server::serve`] runs it with graceful shutdown.
//! - [`mapping`] holds the pure request → spec and resource → API object functions.
//! - [`auth`] maps API keys (hashed in labelled Secrets) to namespaces; [`ratelimit`] limits each key.

pub mod admin;
pub mod approval;
pub mod attachments;
pub mod auth;
pub mod body;
pub mod config;
pub mod error;
pub mod files;
pub mod keys;
pub mod mapping;
pub mod memory;
pub mod metrics;
pub mod pagination;
pub mod query;
pub mod ratelimit;
pub mod request_id;
pub mod resource;
pub mod routes;
pub mod server;
pub mod session_cache;
pub mod skills;
pub mod state;
pub mod unsupported;
pub mod versions;
pub mod viewer;
