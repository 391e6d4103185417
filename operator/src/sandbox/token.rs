//! The daemon's per-sandbox token: generated at random and kept in Redis under the tenant's prefix
//! ([`corral_session::keys::Tenant::sandbox_token`], one key per pod), where only the operator and the tenant's own
//! harness read it. The pod gets only the token's SHA-256, so no Secret, pod spec or environment of the tenant's
//! namespace holds it. The key is written before the pod is created and deleted with the pod.

use corral_api::labels;
use corral_sandbox_protocol::pod::LEGACY_TOKEN_SECRET_COMPONENT;
use corral_session::keys::Tenant;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams},
};
use redis::aio::ConnectionManager;

use super::reconcile::ignore_not_found;
use crate::{
    context::Context,
    error::{Error, Result},
};

/// A fresh random token for a sandbox daemon (256 bits, hex).
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Randomness(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The connection to the token store, or why sandboxes cannot be given tokens.
fn store(ctx: &Context) -> Result<ConnectionManager> {
    ctx.session_log.clone().ok_or_else(|| {
        Error::SandboxTokens(
            "no --redis-url: sandbox daemon tokens are kept in Redis, so no sandbox can be created".into(),
        )
    })
}

/// The token of pod `pod` in namespace `ns`: the one already stored (a session's pod made again after it was
/// lost keeps its token), else a new one, stored first. Call it before the pod is created.
pub async fn ensure_token(ctx: &Context, ns: &str, pod: &str) -> Result<String> {
    let mut conn = store(ctx)?;
    let key = Tenant::new(ns).sandbox_token(pod);
    let fresh = new_token()?;
    // `SET NX` then `GET`: two operators racing store one token, and both build the pod with its digest.
    let _: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(&fresh)
        .arg("NX")
        .query_async(&mut conn)
        .await
        .map_err(|e| Error::SandboxTokens(format!("storing the token of {ns}/{pod}: {e}")))?;
    let stored: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .map_err(|e| Error::SandboxTokens(format!("reading the token of {ns}/{pod}: {e}")))?;
    stored.ok_or_else(|| Error::SandboxTokens(format!("the token of {ns}/{pod} vanished as it was stored")))
}

/// Forgets the token of pod `pod` (the pod is deleted or gone).
pub async fn delete_token(ctx: &Context, ns: &str, pod: &str) -> Result<()> {
    let Some(mut conn) = ctx.session_log.clone() else {
        return Ok(());
    };
    let _: i64 = redis::cmd("DEL")
        .arg(Tenant::new(ns).sandbox_token(pod))
        .query_async(&mut conn)
        .await
        .map_err(|e| Error::SandboxTokens(format!("deleting the token of {ns}/{pod}: {e}")))?;
    Ok(())
}

/// Deletes the token Secrets that earlier versions kept in tenant namespaces (the running pods of that time read
/// their token from a mounted Secret and are replaced once lost; a pod without its Secret does not start). Run
/// once at start, in `namespace` or in every namespace.
pub async fn delete_legacy_token_secrets(client: Client, namespace: Option<&str>) -> Result<usize> {
    let api: Api<Secret> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let selector = format!(
        "{}={LEGACY_TOKEN_SECRET_COMPONENT},{}={}",
        labels::COMPONENT,
        labels::MANAGED_BY,
        labels::OPERATOR_FIELD_MANAGER
    );
    let found = api.list(&ListParams::default().labels(&selector)).await?.items;
    for secret in &found {
        let ns = secret.namespace().unwrap_or_default();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        ignore_not_found(secrets.delete(&secret.name_any(), &DeleteParams::default()).await)?;
        tracing::info!(namespace = %ns, secret = %secret.name_any(), "deleted a sandbox token Secret of an earlier version");
    }
    Ok(found.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fresh_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
