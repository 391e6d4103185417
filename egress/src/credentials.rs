//! Vault credentials of type `environment_variable` as the proxy uses them (pure): which hosts get the value, and
//! the substitution of placeholders in what the sandbox sends.

use serde::Deserialize;

use corral_api::network::host_matches;

/// A credential the proxy injects.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The credential's id (its Secret's name).
    pub id: String,
    /// The variable the sandbox holds the placeholder in (the credential's `secret_name`).
    pub env_name: String,
    /// What the sandbox holds instead of the value.
    pub placeholder: String,
    /// The secret value.
    pub value: String,
    /// Hosts the value may go to; `None` for any host the sandbox may reach.
    pub hosts: Option<Vec<String>>,
    /// Substitute in request headers.
    pub header: bool,
    /// Substitute in request bodies.
    pub body: bool,
}

impl std::fmt::Debug for Credential {
    // The value never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Auth {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    secret_name: Option<String>,
    #[serde(default)]
    secret_value: Option<String>,
    #[serde(default)]
    networking: Option<Networking>,
    #[serde(default)]
    injection_location: Option<InjectionLocation>,
}

#[derive(Deserialize)]
struct Networking {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    allowed_hosts: Vec<String>,
}

#[derive(Deserialize)]
struct InjectionLocation {
    header: Option<bool>,
    body: Option<bool>,
}

impl Credential {
    /// The credential stored as `auth` (the API's auth JSON) in Secret `id`; `None` for other credential types or
    /// unreadable data.
    pub fn from_auth(id: &str, auth: &[u8]) -> Option<Self> {
        let auth: Auth = serde_json::from_slice(auth).ok()?;
        if auth.kind != "environment_variable" {
            return None;
        }
        let hosts = match auth.networking {
            Some(n) if n.kind == "limited" => Some(n.allowed_hosts),
            _ => None,
        };
        let location = auth.injection_location;
        Some(Self {
            id: id.to_owned(),
            env_name: auth.secret_name?,
            placeholder: corral_api::egress::placeholder(id),
            value: auth.secret_value?,
            hosts,
            header: location.as_ref().and_then(|l| l.header).unwrap_or(true),
            body: location.as_ref().and_then(|l| l.body).unwrap_or(false),
        })
    }

    /// Whether the value may go to `host:port`.
    pub fn applies_to(&self, host: &str, port: u16) -> bool {
        self.hosts
            .as_ref()
            .is_none_or(|hosts| hosts.iter().any(|p| host_matches(p, host, port)))
    }
}

/// `text` with each credential's placeholder replaced by its value.
pub fn substitute(text: &str, credentials: &[&Credential]) -> String {
    credentials
        .iter()
        .fold(text.to_owned(), |acc, c| acc.replace(&c.placeholder, &c.value))
}

/// `bytes` with each credential's placeholder replaced by its value.
pub fn substitute_bytes(bytes: &[u8], credentials: &[&Credential]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for c in credentials {
        let (from, to) = (c.placeholder.as_bytes(), c.value.as_bytes());
        let mut result = Vec::with_capacity(out.len());
        let mut i = 0;
        while i < out.len() {
            if out[i..].starts_with(from) {
                result.extend_from_slice(to);
                i += from.len();
            } else {
                result.push(out[i]);
                i += 1;
            }
        }
        out = result;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(auth: serde_json::Value) -> Option<Credential> {
        Credential::from_auth("vcrd-abc", &serde_json::to_vec(&auth).unwrap())
    }

    #[test]
    fn an_environment_variable_credential_is_bound_to_its_hosts() {
        let c = credential(serde_json::json!({
            "type": "environment_variable", "secret_name": "API_TOKEN", "secret_value": "s3cret",
            "networking": {"type": "limited", "allowed_hosts": ["api.example.com", "*.example.org"]}
        }))
        .unwrap();
        assert_eq!(c.placeholder, "corral-placeholder-vcrd-abc");
        assert!(c.applies_to("api.example.com", 443));
        assert!(c.applies_to("x.example.org", 80));
        assert!(!c.applies_to("evil.com", 443));
        assert!(c.header && !c.body, "headers only unless the body is asked for");
        assert!(!format!("{c:?}").contains("s3cret"), "never in a log line");
        assert_eq!(
            substitute("Bearer corral-placeholder-vcrd-abc", &[&c]),
            "Bearer s3cret"
        );
        assert_eq!(
            substitute_bytes(b"{\"t\":\"corral-placeholder-vcrd-abc\"}", &[&c]),
            b"{\"t\":\"s3cret\"}"
        );
    }

    #[test]
    fn other_credential_types_and_unreadable_data_are_not_injected() {
        assert!(
            credential(
                serde_json::json!({"type": "static_bearer", "mcp_server_url": "https://m", "token": "t"})
            )
            .is_none()
        );
        assert!(Credential::from_auth("x", b"not json").is_none());
        let open = credential(serde_json::json!({
            "type": "environment_variable", "secret_name": "T", "secret_value": "v",
            "networking": {"type": "unrestricted"}, "injection_location": {"header": true, "body": true}
        }))
        .unwrap();
        assert!(open.applies_to("anywhere.example", 443) && open.body);
    }
}
