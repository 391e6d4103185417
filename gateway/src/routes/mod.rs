//! The `/v1` routes.

pub mod agents;
pub mod environments;
pub mod events;
pub mod objects;
pub mod sessions;
pub mod stream;
pub mod vaults;

use axum::{
    Router,
    routing::{get, post},
};

use crate::state::AppState;

/// Every `/v1` route (authentication is layered on by [`crate::server::router`]).
pub fn v1() -> Router<AppState> {
    Router::new()
        .route("/v1/agents", post(agents::create).get(agents::list))
        .route(
            "/v1/agents/{agent_id}",
            get(agents::retrieve).post(agents::update),
        )
        .route("/v1/agents/{agent_id}/archive", post(agents::archive))
        .route("/v1/agents/{agent_id}/versions", get(agents::versions))
        .route(
            "/v1/environments",
            post(environments::create).get(environments::list),
        )
        .route(
            "/v1/environments/{environment_id}",
            get(environments::retrieve)
                .post(environments::update)
                .delete(environments::delete),
        )
        .route(
            "/v1/environments/{environment_id}/archive",
            post(environments::archive),
        )
        .route("/v1/sessions", post(sessions::create).get(sessions::list))
        .route(
            "/v1/sessions/{session_id}",
            get(sessions::retrieve)
                .post(sessions::update)
                .delete(sessions::delete),
        )
        .route("/v1/sessions/{session_id}/archive", post(sessions::archive))
        .route(
            "/v1/sessions/{session_id}/events",
            post(events::send).get(events::list),
        )
        .route("/v1/sessions/{session_id}/events/stream", get(stream::stream))
        .route("/v1/vaults", post(vaults::create).get(vaults::list))
        .route(
            "/v1/vaults/{vault_id}",
            get(vaults::retrieve).post(vaults::update).delete(vaults::delete),
        )
        .route("/v1/vaults/{vault_id}/archive", post(vaults::archive))
        .route(
            "/v1/vaults/{vault_id}/credentials",
            post(vaults::create_credential).get(vaults::list_credentials),
        )
        .route(
            "/v1/vaults/{vault_id}/credentials/{credential_id}",
            get(vaults::retrieve_credential)
                .post(vaults::update_credential)
                .delete(vaults::delete_credential),
        )
        .route(
            "/v1/vaults/{vault_id}/credentials/{credential_id}/archive",
            post(vaults::archive_credential),
        )
}
