//! Authentication: an API key (`Authorization: Bearer` or `x-api-key`) is valid when a Secret labelled
//! `corral.dev/api-key=true` holds its SHA-256; the Secret's namespace is the key's tenant. The Secrets are watched
//! (a reflector), so new and revoked keys take effect without a restart.

use std::future::Future;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, reflector, watcher},
};
use subtle::ConstantTimeEq;

use crate::{
    error::ApiError,
    keys::{API_KEY_LABEL, hash_key, secret_hash},
    state::AppState,
};

/// Who is calling: the tenant namespace and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The namespace every object of this request lives in.
    pub namespace: String,
    /// The name of the Secret holding the key's hash (for logs).
    pub key_name: String,
    /// The key's hash (the rate limiter's key).
    pub key_hash: String,
    /// The key's stable id ([`crate::keys::key_id`]): who made a change, in memory versions.
    pub key_id: String,
}

/// The watched set of API key Secrets.
#[derive(Clone)]
pub struct KeyIndex {
    store: reflector::Store<Secret>,
}

impl KeyIndex {
    /// Starts watching key Secrets in every namespace. Returns the index and the future that keeps it current
    /// (spawn it; it retries with backoff on errors and never ends).
    pub fn watch(client: Client) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let api: Api<Secret> = Api::all(client);
        let (reader, writer) = reflector::store();
        let config = watcher::Config::default().labels(&format!("{API_KEY_LABEL}=true"));
        let stream = reflector(writer, watcher(api, config))
            .default_backoff()
            .applied_objects();
        let run = async move {
            stream
                .for_each(|event| async move {
                    if let Err(err) = event {
                        tracing::warn!(error = %err, "watching API key Secrets");
                    }
                })
                .await;
        };
        (Self { store: reader }, run)
    }

    /// Waits until the first full list of Secrets arrived.
    pub async fn ready(&self) -> bool {
        self.store.wait_until_ready().await.is_ok()
    }

    /// The tenant of `key`, if a key Secret holds its hash.
    pub fn lookup(&self, key: &str) -> Option<Tenant> {
        let hash = hash_key(key);
        self.store
            .state()
            .iter()
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .find(|s| secret_hash(s).is_some_and(|h| bool::from(h.as_bytes().ct_eq(hash.as_bytes()))))
            .and_then(|s| {
                Some(Tenant {
                    namespace: s.namespace()?,
                    key_name: s.name_any(),
                    key_hash: hash.clone(),
                    key_id: crate::keys::key_id(&hash),
                })
            })
    }
}

/// The key a request presents: `Authorization: Bearer <key>` or `x-api-key: <key>`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|k| !k.is_empty());
    bearer.or_else(|| {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty())
    })
}

/// Middleware: authenticates the key, applies its rate limit and puts the [`Tenant`] into the request.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(key) = presented_key(request.headers()) else {
        return ApiError::unauthenticated(
            "missing API key: send it as `Authorization: Bearer <key>` or `x-api-key: <key>`",
        )
        .into_response();
    };
    let Some(tenant) = state.keys.lookup(key) else {
        return ApiError::unauthenticated("invalid API key").into_response();
    };
    if let Err(retry_after) = state.limiter.check(&tenant.key_hash) {
        state.metrics.rate_limited.inc();
        crate::ratelimit::slow_down().await;
        return ApiError::rate_limited(retry_after).into_response();
    }
    request.extensions_mut().insert(tenant);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn keys_come_from_bearer_or_x_api_key() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert("x-api-key", HeaderValue::from_static("k1"));
        assert_eq!(presented_key(&h), Some("k1"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k2"));
        assert_eq!(presented_key(&h), Some("k2"), "Bearer wins");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&h), Some("k1"));
        h.remove("x-api-key");
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer   "));
        assert_eq!(presented_key(&h), None);
    }
}
