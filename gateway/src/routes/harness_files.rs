//! `GET /internal/v1/namespaces/{namespace}/files/{file_id}/content`: the bytes of a file (with its own type), for
//! the harness that copies them into a session's sandbox or hands them to the model. Not an API route: no API key
//! opens it. The caller presents a ServiceAccount token issued for the audience [`HARNESS_AUDIENCE`]; the API server
//! asserts whose it is (a TokenReview), and only the ServiceAccount of that namespace's own harness
//! (`corral-harness-<namespace>` in the system namespace) is served, so one tenant's harness never reads another
//! tenant's files. Sandboxes never reach this route (their egress refuses cluster addresses) and hold no token for
//! it.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

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

/// How long a token the API server accepted is taken without asking again (projected tokens live 10 minutes at
/// least): a harness asks for files before every tool call, and each TokenReview is a round trip to the API server.
const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// The most tokens remembered as verified.
const MAX_VERIFIED: usize = 1024;
/// The most TokenReviews this route has in flight: a flood of forged tokens costs the API server no more.
const MAX_REVIEWS: usize = 4;

/// Tokens the API server accepted, by SHA-256: the user, and when that answer is too old.
type Verified = HashMap<[u8; 32], (String, Instant)>;
static VERIFIED: LazyLock<Mutex<Verified>> = LazyLock::new(Mutex::default);
static REVIEWS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(MAX_REVIEWS));

/// Whether `token` could be a ServiceAccount token of `user` for [`HARNESS_AUDIENCE`], judged from its claims
/// without checking its signature: anything else is refused before it costs the API server a TokenReview.
fn claims_fit(token: &str, user: &str) -> bool {
    use base64::Engine;
    let Some(payload) = token.split('.').nth(1) else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return false;
    };
    let Ok(claims) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    let audience_fits = match &claims["aud"] {
        serde_json::Value::String(a) => a == HARNESS_AUDIENCE,
        serde_json::Value::Array(all) => all.iter().any(|a| a == HARNESS_AUDIENCE),
        _ => false,
    };
    audience_fits && claims["sub"] == user
}

/// The user `token` authenticates as for [`HARNESS_AUDIENCE`], from the cache or a TokenReview.
async fn verified_user(state: &AppState, token: &str, expected: &str) -> ApiResult<String> {
    let forged = || ApiError::forbidden("the token is not a valid harness token for this gateway");
    if !claims_fit(token, expected) {
        return Err(forged());
    }
    let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let now = Instant::now();
    if let Some((user, until)) = lock(&VERIFIED).get(&key)
        && *until > now
    {
        return Ok(user.clone());
    }
    let _review = REVIEWS.try_acquire().map_err(|_| {
        let mut err = ApiError::rate_limited(1);
        err.message = "too many harness token checks at once; retry".to_owned();
        err
    })?;
    let who = crate::approval::authenticate(&state.kube, token, Some(HARNESS_AUDIENCE))
        .await
        .map_err(|e| {
            if e.status == axum::http::StatusCode::FORBIDDEN {
                forged()
            } else {
                e
            }
        })?;
    let mut verified = lock(&VERIFIED);
    verified.retain(|_, (_, until)| *until > now);
    if verified.len() < MAX_VERIFIED {
        verified.insert(key, (who.user.clone(), now + VERIFIED_FOR));
    }
    Ok(who.user)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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

/// The tenant whose harness presented the request's token: only the ServiceAccount of `namespace`'s own harness
/// is let through (401 without a token, 403 for any other identity).
pub(crate) async fn harness_tenant(
    state: &AppState,
    headers: &HeaderMap,
    namespace: &str,
) -> ApiResult<Tenant> {
    let token = bearer(headers)?;
    let Some(system) = state.settings.harness_namespace.clone() else {
        let mut err = ApiError::for_status(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        err.message =
            "this gateway does not know the namespace harnesses run in (--harness-namespace)".to_owned();
        return Err(err.with_code("harness_files_not_configured"));
    };
    let expected = harness_user(&system, namespace);
    let user = verified_user(state, token, &expected).await?;
    if user != expected {
        tracing::warn!(%user, %namespace, "an internal route was asked by another identity than the namespace's harness");
        return Err(ApiError::forbidden(format!(
            "only the harness of namespace {namespace:?} may read its files"
        )));
    }
    Ok(Tenant {
        namespace: namespace.to_owned(),
        key_name: String::new(),
        key_hash: String::new(),
        key_id: String::new(),
    })
}

async fn content(
    State(state): State<AppState>,
    Path((namespace, file_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let tenant = harness_tenant(&state, &headers, &namespace).await?;
    let files = storage(&state)?;
    let meta = find(&state, &tenant, &file_id).await?;
    let stream = files
        .blobs
        .get(&blob_key(&namespace, &file_id))
        .await
        .map_err(|e| blob_error(e, files.max_bytes))?;
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    // The file's own type: the harness hands attached files to the model by it.
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&meta.mime_type)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream")),
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
    fn only_a_token_claiming_the_harness_and_the_audience_is_worth_a_token_review() {
        use base64::Engine;
        let jwt = |claims: serde_json::Value| {
            let part = |v: &serde_json::Value| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
            };
            format!(
                "{}.{}.sig",
                part(&serde_json::json!({"alg": "RS256"})),
                part(&claims)
            )
        };
        let user = harness_user("corral-system", "team-a");
        assert!(claims_fit(
            &jwt(serde_json::json!({"sub": user, "aud": ["corral-gateway"]})),
            &user
        ));
        assert!(claims_fit(
            &jwt(serde_json::json!({"sub": user, "aud": "corral-gateway"})),
            &user
        ));
        for other in [
            jwt(serde_json::json!({"sub": user, "aud": ["https://kubernetes.default.svc"]})),
            jwt(
                serde_json::json!({"sub": harness_user("corral-system", "team-b"), "aud": ["corral-gateway"]}),
            ),
            jwt(serde_json::json!({"aud": ["corral-gateway"]})),
            "x".repeat(16 << 10),
            "a.%%%.c".to_owned(),
        ] {
            assert!(!claims_fit(&other, &user), "{other:.60}");
        }
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
