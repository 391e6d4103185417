//! The `/v1` routes: one line per API resource ([`crate::resource::routes`]), plus the session events.

pub mod agents;
pub mod credentials;
pub mod environments;
pub mod events;
pub mod files;
pub mod harness_files;
pub mod harness_outputs;
pub mod harness_skills;
pub mod memories;
pub mod memory_call;
pub mod memory_stores;
pub mod memory_versions;
pub mod objects;
pub mod session_disk;
pub mod session_resources;
pub mod sessions;
pub mod skills;
pub mod stream;
pub mod vaults;

use axum::{
    Router,
    routing::{get, post},
};

use crate::{resource::routes, state::AppState};

/// Every `/v1` route (authentication is layered on by [`crate::server::router`]).
pub fn v1() -> Router<AppState> {
    Router::new()
        .merge(routes::<agents::Agents>())
        .merge(routes::<environments::Environments>())
        .merge(routes::<sessions::Sessions>())
        .merge(routes::<vaults::Vaults>())
        .merge(routes::<credentials::Credentials>())
        .route(
            "/v1/sessions/{session_id}/events",
            post(events::send).get(events::list),
        )
        .route("/v1/sessions/{session_id}/events/stream", get(stream::stream))
        .merge(session_resources::routes())
        .merge(memory_stores::routes())
        .merge(memories::routes())
        .merge(memory_versions::routes())
}
