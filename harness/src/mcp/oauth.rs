//! The bearer token of a credential: a static token as is; an OAuth access token, refreshed at the token endpoint
//! (the `refresh_token` grant, RFC 6749 §6) when it has expired or expires within a minute.

use corral_api::vault::{CredentialAuth, McpOauth, OauthRefresh, TokenEndpointAuth};
use serde::Deserialize;

/// Refresh this long before the access token expires.
const EARLY: jiff::SignedDuration = jiff::SignedDuration::from_secs(60);

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

/// Whether an `mcp_oauth` credential needs a new access token at `now`.
pub fn expired(auth: &McpOauth, now: jiff::Timestamp) -> bool {
    auth.expires_at
        .as_deref()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .is_some_and(|at| at.as_duration().saturating_sub(EARLY) <= now.as_duration())
}

/// The token to send as `Authorization: Bearer`. Errors say why in words that hold no secret.
pub async fn bearer(http: &reqwest::Client, auth: &CredentialAuth) -> Result<String, String> {
    match auth {
        CredentialAuth::StaticBearer(b) => Ok(b.token.expose().to_owned()),
        CredentialAuth::McpOauth(o) => match &o.refresh {
            Some(refresh) if expired(o, jiff::Timestamp::now()) => refreshed(http, refresh).await,
            _ => Ok(o.access_token.expose().to_owned()),
        },
        CredentialAuth::EnvironmentVariable(_) => Err("not an MCP credential".to_owned()),
    }
}

/// A new access token from the token endpoint.
async fn refreshed(http: &reqwest::Client, refresh: &OauthRefresh) -> Result<String, String> {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.refresh_token.expose()),
    ];
    if let Some(scope) = &refresh.scope {
        pairs.push(("scope", scope));
    }
    if let Some(resource) = &refresh.resource {
        pairs.push(("resource", resource));
    }
    crate::outbound::current().check_url(&refresh.token_endpoint)?;
    let mut request = http.post(&refresh.token_endpoint);
    match &refresh.token_endpoint_auth {
        TokenEndpointAuth::ClientSecretBasic { client_secret } => {
            request = request.basic_auth(&refresh.client_id, Some(client_secret.expose()));
        }
        TokenEndpointAuth::ClientSecretPost { client_secret } => {
            pairs.push(("client_id", &refresh.client_id));
            pairs.push(("client_secret", client_secret.expose()));
        }
        TokenEndpointAuth::None {} => pairs.push(("client_id", &refresh.client_id)),
    }
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    let response = request
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(reqwest::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| format!("the token endpoint could not be reached: {}", e.without_url()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("the token endpoint refused the refresh (HTTP {status})"));
    }
    let token: TokenResponse = response
        .json()
        .await
        .map_err(|_| "the token endpoint's answer holds no access_token".to_owned())?;
    Ok(token.access_token)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_token_counts_as_expired_a_minute_early() {
        let auth = |expires: Option<&str>| -> McpOauth {
            serde_json::from_value(
                json!({"mcp_server_url": "https://m", "access_token": "a", "expires_at": expires}),
            )
            .unwrap()
        };
        let now: jiff::Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        assert!(!expired(&auth(None), now));
        assert!(!expired(&auth(Some("2026-01-01T12:05:00Z")), now));
        assert!(expired(&auth(Some("2026-01-01T12:00:30Z")), now));
        assert!(expired(&auth(Some("2026-01-01T11:00:00Z")), now));
        assert!(!expired(&auth(Some("garbage")), now));
    }
}
