//! `GET /internal/v1/namespaces/{namespace}/files/{file_id}/content`: the bytes of a file resource, for the harness
//! that copies them into a session's sandbox. Not an API route: no API key opens it. The caller presents a
//! ServiceAccount token issued for the audience [`HARNESS_AUDIENCE`]; the API server asserts whose it is (a
//! TokenReview), and only the ServiceAccount of that namespace's own harness (`corral-harness-<namespace>` in the
//! system namespace) is served, so one tenant's harness never reads another tenant's files. Sandboxes never reach
//! this route (their egress refuses cluster addresses) and hold no token for it.

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, header},
    response::{IntoResponse, Response},
    routing::get,
};

use super::files::{blob_error, find, storage};
use crate::{
    auth::Tenant,
    error::{ApiError, ApiResult},
    files::meta::blob_key,
    state::AppState,
};

/// The audience of the tokens harnesses present (their projected ServiceAccount token; see the operator's
/// harness Deployment).
pub const HARNESS_AUDIENCE: &str = "corral-gateway";

/// The route's path.
pub const PATH: &str = "/internal/v1/namespaces/{namespace}/files/{file_id}/content";

/// The route (served next to the API, outside its authentication).
pub fn routes() -> Router<AppState> {
    Router::new().route(PATH, get(content))
}

/// The user name the harness of `namespace` authenticates as.
pub fn harness_user(system_namespace: &str, namespace: &str) -> String {
    format!(
        "system:serviceaccount:{system_namespace}:{}",
        corral_api::labels::harness_name(namespace)
    )
}

fn bearer(headers: &HeaderMap) -> ApiResult<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= 16 << 10)
        .ok_or_else(|| {
            ApiError::unauthenticated(
                "this route needs a harness's ServiceAccount token (Authorization: Bearer)",
            )
        })
}

async fn content(
    State(state): State<AppState>,
    Path((namespace, file_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let token = bearer(&headers)?;
    let Some(system) = state.settings.harness_namespace.clone() else {
        let mut err = ApiError::for_status(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        err.message =
            "this gateway does not know the namespace harnesses run in (--harness-namespace)".to_owned();
        return Err(err.with_code("harness_files_not_configured"));
    };
    let who = crate::approval::authenticate(&state.kube, token, Some(HARNESS_AUDIENCE))
        .await
        .map_err(|e| {
            if e.status == axum::http::StatusCode::FORBIDDEN {
                ApiError::forbidden("the token is not a valid harness token for this gateway")
            } else {
                e
            }
        })?;
    if who.user != harness_user(&system, &namespace) {
        tracing::warn!(user = %who.user, %namespace, "a file resource was asked for by another identity than the namespace's harness");
        return Err(ApiError::forbidden(format!(
            "only the harness of namespace {namespace:?} may read its files"
        )));
    }
    let files = storage(&state)?;
    let tenant = Tenant {
        namespace: namespace.clone(),
        key_name: String::new(),
        key_hash: String::new(),
    };
    let meta = find(&state, &tenant, &file_id).await?;
    let stream = files
        .blobs
        .get(&blob_key(&namespace, &file_id))
        .await
        .map_err(|e| blob_error(e, files.max_bytes))?;
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size_bytes));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_of_a_namespace_is_its_service_account_in_the_system_namespace() {
        assert_eq!(
            harness_user("corral-system", "team-a"),
            "system:serviceaccount:corral-system:corral-harness-team-a"
        );
        let long = "t".repeat(60);
        assert!(harness_user("corral-system", &long).len() < 120);
        assert_ne!(
            harness_user("corral-system", "team-a"),
            harness_user("corral-system", "team-b")
        );
    }

    #[test]
    fn a_request_without_a_bearer_token_is_refused() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers).unwrap_err().status.as_u16(), 401);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&headers).unwrap_err().status.as_u16(), 401);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer tok"));
        assert_eq!(bearer(&headers).unwrap(), "tok");
    }
}
