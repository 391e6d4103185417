//! The MCP credentials of a session: the `static_bearer` and `mcp_oauth` credentials of its vaults (stored as
//! Secrets, see [`corral_api::vault`]), matched to servers by `mcp_server_url`. They are used by the harness only:
//! sent as `Authorization: Bearer` to the server, never logged, never appended to the log, never given to the sandbox.

use std::future::Future;
use std::pin::Pin;

use corral_api::Session;
use corral_api::labels::ARCHIVED_AT;
use corral_api::vault::{
    AUTH_KEY, CredentialAuth, MANAGED_BY, MANAGED_BY_VALUE, OBJECT, OBJECT_CREDENTIAL, OBJECT_VAULT, VAULT,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::agent::manifest::secret_value;

/// One MCP credential of a session.
#[derive(Clone, Debug)]
pub struct McpCredential {
    /// The credential's id (its Secret's name).
    pub id: String,
    /// Its vault's id.
    pub vault: String,
    /// The credential (`static_bearer` or `mcp_oauth`).
    pub auth: CredentialAuth,
}

impl McpCredential {
    /// Whether the credential is for the server at `url` (trailing slashes aside).
    pub fn is_for(&self, url: &str) -> bool {
        self.auth
            .mcp_server_url()
            .is_some_and(|u| u.trim_end_matches('/') == url.trim_end_matches('/'))
    }
}

/// A boxed future of a session's MCP credentials.
pub type CredentialFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<McpCredential>, String>> + Send + 'a>>;

/// Where a session's MCP credentials come from.
pub trait CredentialSource: Send + Sync {
    /// The MCP credentials of `session` in `namespace`.
    fn mcp_credentials<'a>(&'a self, namespace: &'a str, session: &'a str) -> CredentialFuture<'a>;
}

/// No credentials: MCP servers are called without authentication.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCredentials;

impl CredentialSource for NoCredentials {
    fn mcp_credentials<'a>(&'a self, _namespace: &'a str, _session: &'a str) -> CredentialFuture<'a> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// The same credentials for every session (the local runner: the credential Secrets of the agent manifest).
#[derive(Clone, Debug, Default)]
pub struct StaticCredentials {
    credentials: Vec<McpCredential>,
}

impl StaticCredentials {
    /// The MCP credentials among `secrets` (Secrets labelled as vault credentials, with `auth` in `data` or
    /// `stringData`); others are ignored.
    pub fn from_secrets<'a>(secrets: impl IntoIterator<Item = &'a Secret>) -> Self {
        Self {
            credentials: secrets.into_iter().filter_map(credential).collect(),
        }
    }
}

impl CredentialSource for StaticCredentials {
    fn mcp_credentials<'a>(&'a self, _namespace: &'a str, _session: &'a str) -> CredentialFuture<'a> {
        let credentials = self.credentials.clone();
        Box::pin(async move { Ok(credentials) })
    }
}

fn label<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn archived(secret: &Secret) -> bool {
    secret
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(ARCHIVED_AT))
}

/// The MCP credential a Secret holds: a vault credential that is not archived and whose `auth` is an MCP kind.
fn credential(secret: &Secret) -> Option<McpCredential> {
    if label(secret, OBJECT) != Some(OBJECT_CREDENTIAL) || archived(secret) {
        return None;
    }
    let auth: CredentialAuth = serde_json::from_str(&secret_value(secret, AUTH_KEY)?).ok()?;
    auth.mcp_server_url()?;
    Some(McpCredential {
        id: secret.metadata.name.clone().unwrap_or_default(),
        vault: label(secret, VAULT).unwrap_or_default().to_owned(),
        auth,
    })
}

/// Credentials from the Kubernetes API: the Session's `vaultRefs`, each a vault Secret of its namespace, and the
/// credential Secrets labelled with that vault. Archived vaults and credentials are skipped.
#[derive(Clone)]
pub struct KubeCredentials {
    client: Client,
}

impl std::fmt::Debug for KubeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeCredentials").finish_non_exhaustive()
    }
}

impl KubeCredentials {
    /// A source using `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    async fn load(&self, namespace: &str, session: &str) -> Result<Vec<McpCredential>, String> {
        let sessions: Api<Session> = Api::namespaced(self.client.clone(), namespace);
        let Some(session) = sessions.get_opt(session).await.map_err(|e| e.to_string())? else {
            return Ok(Vec::new());
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let mut out = Vec::new();
        for vault in &session.spec.vault_refs {
            let Some(secret) = secrets.get_opt(&vault.name).await.map_err(|e| e.to_string())? else {
                continue;
            };
            if label(&secret, OBJECT) != Some(OBJECT_VAULT) || archived(&secret) {
                continue;
            }
            let selector = format!(
                "{OBJECT}={OBJECT_CREDENTIAL},{VAULT}={},{MANAGED_BY}={MANAGED_BY_VALUE}",
                vault.name
            );
            let list = secrets
                .list(&ListParams::default().labels(&selector))
                .await
                .map_err(|e| e.to_string())?;
            out.extend(list.items.iter().filter_map(credential));
        }
        Ok(out)
    }
}

impl CredentialSource for KubeCredentials {
    fn mcp_credentials<'a>(&'a self, namespace: &'a str, session: &'a str) -> CredentialFuture<'a> {
        Box::pin(self.load(namespace, session))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn secret(name: &str, object: &str, auth: &str, archived: bool) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(BTreeMap::from([
                    (OBJECT.to_owned(), object.to_owned()),
                    (VAULT.to_owned(), "vlt-1".to_owned()),
                ])),
                annotations: archived.then(|| BTreeMap::from([(ARCHIVED_AT.to_owned(), "t".to_owned())])),
                ..ObjectMeta::default()
            },
            string_data: Some(BTreeMap::from([(AUTH_KEY.to_owned(), auth.to_owned())])),
            ..Secret::default()
        }
    }

    #[test]
    fn only_live_mcp_credentials_count_and_match_by_url() {
        let bearer = r#"{"type":"static_bearer","mcp_server_url":"http://127.0.0.1:9/mcp/","token":"t"}"#;
        let env = r#"{"type":"environment_variable","secret_name":"X","secret_value":"v","networking":{"type":"unrestricted"}}"#;
        let secrets = [
            secret("vcrd-1", OBJECT_CREDENTIAL, bearer, false),
            secret("vcrd-2", OBJECT_CREDENTIAL, bearer, true),
            secret("vcrd-3", OBJECT_CREDENTIAL, env, false),
            secret("vcrd-4", OBJECT_CREDENTIAL, "not json", false),
            secret("vlt-1", OBJECT_VAULT, bearer, false),
        ];
        let found = StaticCredentials::from_secrets(&secrets).credentials;
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].id.as_str(), found[0].vault.as_str()),
            ("vcrd-1", "vlt-1")
        );
        assert!(found[0].is_for("http://127.0.0.1:9/mcp"));
        assert!(!found[0].is_for("http://127.0.0.1:9/other"));
    }
}
