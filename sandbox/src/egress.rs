//! The daemon's side of the egress proxy: asking it, with the pod's proxy identity, which variables the session's
//! vault credentials put in the shell. The answer holds placeholders only; the proxy swaps them for the values on
//! the way out, so the values never enter the sandbox.

use std::{collections::BTreeMap, time::Duration};

use base64::Engine;

/// Where the proxy is and who this pod is to it.
#[derive(Debug, Clone)]
pub struct EgressIdentity {
    /// The proxy's base URL, for example `http://10.96.0.20:3128`.
    pub url: String,
    /// The pod's proxy user.
    pub user: String,
    /// The pod's proxy password.
    pub password: String,
}

/// The path the proxy answers placeholder questions on.
const PLACEHOLDERS_PATH: &str = "/.corral/placeholders";

impl EgressIdentity {
    /// The session's placeholder variables: name → placeholder value.
    pub async fn placeholders(&self) -> Result<Vec<(String, String)>, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("building the egress client: {e}"))?;
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.user, self.password));
        let response = client
            .get(format!("{}{PLACEHOLDERS_PATH}", self.url.trim_end_matches('/')))
            .header("Proxy-Authorization", format!("Basic {auth}"))
            .send()
            .await
            .map_err(|e| format!("asking the egress proxy for the session's variables: {e}"))?;
        if !response.status().is_success() {
            return Err(format!("the egress proxy answered {}", response.status()));
        }
        let map: BTreeMap<String, String> = response
            .json()
            .await
            .map_err(|e| format!("the egress proxy's answer is not a map: {e}"))?;
        Ok(map.into_iter().collect())
    }
}
