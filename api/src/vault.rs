//! Vaults and their credentials: how they are stored (the contract between the gateway, which writes them, and the
//! harness and egress proxy, which read them), and the credential `auth` objects of the API.
//!
//! - A vault is a Secret in the tenant's namespace named after the vault's API id (`vlt-…`), labelled
//!   [`MANAGED_BY`]`=`[`MANAGED_BY_VALUE`] and [`OBJECT`]`=`[`OBJECT_VAULT`]; its display name, metadata and archive
//!   time are annotations ([`DISPLAY_NAME`], [`METADATA`], [`crate::labels::ARCHIVED_AT`]); it holds no data.
//! - A credential is a Secret of type [`CREDENTIAL_SECRET_TYPE`] in the same namespace named after its id
//!   (`vcrd-…`), labelled [`OBJECT`]`=`[`OBJECT_CREDENTIAL`], [`VAULT`]`=<vault name>` and
//!   [`CREDENTIAL_TYPE`]`=<auth.type>`, owned by its vault's Secret (deleting the vault deletes it). Its data key
//!   [`AUTH_KEY`] holds the JSON of the whole [`CredentialAuth`], secrets included.
//! - A Session names its vaults in `spec.vaultRefs` (the API's `vault_ids`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Label naming the managing application (the standard `app.kubernetes.io/managed-by`).
pub const MANAGED_BY: &str = crate::labels::MANAGED_BY;
/// Its value on vault and credential Secrets.
pub const MANAGED_BY_VALUE: &str = "corral";
/// Label telling what a Corral-managed Secret is.
pub const OBJECT: &str = "corral.dev/object";
/// [`OBJECT`] of a vault.
pub const OBJECT_VAULT: &str = "vault";
/// [`OBJECT`] of a credential.
pub const OBJECT_CREDENTIAL: &str = "vault-credential";
/// Label of a credential naming its vault.
pub const VAULT: &str = "corral.dev/vault";
/// Label of a credential holding its `auth.type`.
pub const CREDENTIAL_TYPE: &str = "corral.dev/credential-type";
/// The Secret `type` of credentials.
pub const CREDENTIAL_SECRET_TYPE: &str = "corral.dev/vault-credential";
/// The data key of a credential Secret holding the JSON of its [`CredentialAuth`].
pub const AUTH_KEY: &str = "auth";
/// Annotation holding a vault's or credential's `display_name`.
pub const DISPLAY_NAME: &str = "corral.dev/display-name";
/// Annotation holding a vault's or credential's `metadata` as a JSON object.
pub const METADATA: &str = "corral.dev/metadata";

/// A secret string: serialised as is (it is stored), never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(String);

impl SecretValue {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A credential's `auth`, discriminated by `type`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialAuth {
    /// An OAuth access token for an MCP server, with an optional refresh grant.
    McpOauth(McpOauth),
    /// A static bearer token for an MCP server.
    StaticBearer(StaticBearer),
    /// A secret for outbound calls from the sandbox, injected by the egress proxy.
    EnvironmentVariable(EnvironmentVariable),
}

impl CredentialAuth {
    /// The `type` value.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::McpOauth(_) => "mcp_oauth",
            Self::StaticBearer(_) => "static_bearer",
            Self::EnvironmentVariable(_) => "environment_variable",
        }
    }

    /// The MCP server the credential is for (`mcp_oauth` and `static_bearer`).
    pub fn mcp_server_url(&self) -> Option<&str> {
        match self {
            Self::McpOauth(a) => Some(&a.mcp_server_url),
            Self::StaticBearer(a) => Some(&a.mcp_server_url),
            Self::EnvironmentVariable(_) => None,
        }
    }
}

/// `auth` of type `mcp_oauth`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpOauth {
    /// The MCP server's URL.
    pub mcp_server_url: String,
    /// The access token.
    pub access_token: SecretValue,
    /// When the access token expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// How to get a new access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<OauthRefresh>,
}

/// The refresh grant of an `mcp_oauth` credential.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OauthRefresh {
    /// The OAuth client id.
    pub client_id: String,
    /// The refresh token.
    pub refresh_token: SecretValue,
    /// The token endpoint's URL.
    pub token_endpoint: String,
    /// How the client authenticates to the token endpoint.
    pub token_endpoint_auth: TokenEndpointAuth,
    /// Scope to ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Resource indicator (RFC 8707) to ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Client authentication at the token endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TokenEndpointAuth {
    /// A public client.
    None {},
    /// HTTP Basic with the client id and secret.
    ClientSecretBasic {
        /// The client secret.
        client_secret: SecretValue,
    },
    /// The client id and secret in the form body.
    ClientSecretPost {
        /// The client secret.
        client_secret: SecretValue,
    },
}

/// `auth` of type `static_bearer`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticBearer {
    /// The MCP server's URL.
    pub mcp_server_url: String,
    /// The bearer token.
    pub token: SecretValue,
}

/// `auth` of type `environment_variable`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentVariable {
    /// The name the sandbox sees (it gets a placeholder; the proxy substitutes the value).
    pub secret_name: String,
    /// The secret.
    pub secret_value: SecretValue,
    /// Which hosts the secret may be sent to.
    pub networking: CredentialNetworking,
    /// Where the proxy may substitute it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::json_object::object_or_null"
    )]
    pub injection_location: Option<InjectionLocation>,
}

/// The hosts an `environment_variable` secret may be sent to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialNetworking {
    /// Any host. A struct variant so that its `deny_unknown_fields` holds: `{"type": "unrestricted", "allowed_hosts":
    /// [...]}` is refused, not read as unrestricted.
    Unrestricted {},
    /// Only these hosts (host names, IPv4 addresses or `*.domain`; at most 16).
    Limited {
        /// The hosts.
        allowed_hosts: Vec<String>,
    },
}

/// Where the proxy substitutes an `environment_variable` secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectionLocation {
    /// In request headers (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// In request bodies (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<bool>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn auth_round_trips_and_debug_hides_secrets() {
        let raw = json!({
            "type": "mcp_oauth", "mcp_server_url": "https://mcp.example.com/mcp", "access_token": "at-secret",
            "expires_at": "2026-01-01T00:00:00Z",
            "refresh": {"client_id": "c", "refresh_token": "rt-secret", "token_endpoint": "https://auth/token",
                        "token_endpoint_auth": {"type": "client_secret_basic", "client_secret": "cs-secret"}}
        });
        let auth: CredentialAuth = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(auth.type_name(), "mcp_oauth");
        assert_eq!(auth.mcp_server_url(), Some("https://mcp.example.com/mcp"));
        assert_eq!(serde_json::to_value(&auth).unwrap(), raw);
        let debug = format!("{auth:?}");
        for secret in ["at-secret", "rt-secret", "cs-secret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        let env: CredentialAuth = serde_json::from_value(json!({
            "type": "environment_variable", "secret_name": "GH_TOKEN", "secret_value": "v",
            "networking": {"type": "limited", "allowed_hosts": ["api.github.com"]}
        }))
        .unwrap();
        assert_eq!(env.mcp_server_url(), None);
        assert!(
            serde_json::from_value::<CredentialAuth>(json!({"type": "static_bearer", "mcp_server_url": "u"}))
                .is_err()
        );
    }
}
