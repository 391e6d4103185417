//! Credentials as the proxy uses them (pure): vault credentials of type `environment_variable` (which hosts get the
//! value, and the substitution of placeholders in what the sandbox sends) and repository tokens (an `Authorization`
//! header the proxy adds to requests for one git repository, see `corral_api::repository`).

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
    /// For a repository token: the header the proxy adds itself (no placeholder, nothing substituted).
    pub repository: Option<RepositoryAuth>,
}

/// A repository token as the proxy sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct RepositoryAuth {
    /// The repository's path on its host, without a trailing `/` or `.git`.
    pub path: String,
    /// The `Authorization` header value: HTTP Basic with the user `x-access-token` and the token as the password,
    /// which GitHub, GitLab, Gitea and `git http-backend` behind basic authentication all take.
    pub header: String,
    /// The repository's `host[:port]` as its URL gives it: the `Host` of every request the token goes with, whatever
    /// the sandbox sent (a shared ingress routes by `Host`, and must not route the token to another backend).
    pub authority: String,
}

impl RepositoryAuth {
    /// Whether a request (`method`, the path without the query, and the query) is a git smart-HTTP request for this
    /// repository: `GET <repo>/info/refs?service=git-upload-pack|git-receive-pack` or `POST
    /// <repo>/git-upload-pack|git-receive-pack`. Nothing else gets the token (no `TRACE` to echo it, no other
    /// endpoint of the host), and no path a server might resolve elsewhere: dot segments, encoded separators or dots,
    /// backslashes, `;` parameters.
    pub fn covers(&self, method: &str, path: &str, query: Option<&str>) -> bool {
        let lowered = path.to_ascii_lowercase();
        if path.split('/').any(|s| s == ".." || s == ".")
            || ["%2e", "%2f", "%5c", "\\", ";", "//"]
                .iter()
                .any(|bad| lowered.contains(bad))
        {
            return false;
        }
        let Some(rest) = path.strip_prefix(&self.path) else {
            return false;
        };
        let rest = rest.strip_prefix(".git").unwrap_or(rest);
        let service = || {
            query
                .unwrap_or_default()
                .split('&')
                .any(|p| p == "service=git-upload-pack" || p == "service=git-receive-pack")
        };
        match (method, rest) {
            ("GET", "/info/refs") => service(),
            ("POST", "/git-upload-pack" | "/git-receive-pack") => true,
            _ => false,
        }
    }
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

#[derive(Deserialize)]
struct RepositoryGrant {
    url: String,
    token: String,
}

impl Credential {
    /// The credential stored as `auth` (the API's auth JSON, or a repository token of type `git_repository`) under
    /// `id`; `None` for other credential types or unreadable data.
    pub fn from_auth(id: &str, auth: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(auth).ok()?;
        if value.get("type").and_then(|t| t.as_str()) == Some(corral_api::repository::GRANT_TYPE) {
            return Self::repository(id, serde_json::from_value(value).ok()?);
        }
        let auth: Auth = serde_json::from_value(value).ok()?;
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
            repository: None,
        })
    }

    /// A repository token bound to the host (and port) of `url`, for requests under its path.
    fn repository(id: &str, grant: RepositoryGrant) -> Option<Self> {
        use base64::Engine;
        let url = url::Url::parse(&grant.url).ok()?;
        if !matches!(url.scheme(), "https" | "http") || grant.token.is_empty() {
            return None;
        }
        let host = url.host_str()?.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_or_known_default()?;
        let path = url.path().trim_end_matches('/');
        let path = path.strip_suffix(".git").unwrap_or(path).to_owned();
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", grant.token));
        Some(Self {
            id: id.to_owned(),
            env_name: String::new(),
            placeholder: String::new(),
            value: grant.token,
            hosts: Some(vec![format!("{host}:{port}")]),
            header: false,
            body: false,
            repository: Some(RepositoryAuth {
                path,
                header: format!("Basic {basic}"),
                authority: match url.port() {
                    Some(port) => format!("{}:{port}", url.host_str()?),
                    None => url.host_str()?.to_owned(),
                },
            }),
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
    fn a_repository_token_goes_to_its_repository_on_its_host_only() {
        let c = Credential::from_auth(
            "repo-0",
            br#"{"type": "git_repository", "url": "https://git.example.com/o/r.git", "token": "ghp_s3cret"}"#,
        )
        .unwrap();
        assert!(c.applies_to("git.example.com", 443));
        assert!(!c.applies_to("git.example.com", 80), "another port");
        assert!(!c.applies_to("example.com", 443));
        assert!(!c.header && !c.body, "nothing is substituted");
        assert!(!format!("{c:?}").contains("ghp_s3cret"));
        let auth = c.repository.as_ref().unwrap();
        assert_eq!(auth.header, "Basic eC1hY2Nlc3MtdG9rZW46Z2hwX3MzY3JldA==");
        assert_eq!(auth.authority, "git.example.com");
        let upload = Some("service=git-upload-pack");
        let receive = Some("service=git-receive-pack");
        for (method, path, query) in [
            ("GET", "/o/r.git/info/refs", upload),
            ("GET", "/o/r/info/refs", receive),
            ("POST", "/o/r.git/git-upload-pack", None),
            ("POST", "/o/r/git-receive-pack", None),
        ] {
            assert!(auth.covers(method, path, query), "{method} {path}");
        }
        // Review (MED/HIGH): only git's own endpoints get the token, and no path a server may resolve elsewhere.
        for (method, path, query) in [
            ("GET", "/o/rx/info/refs", upload),
            ("GET", "/o/other.git/info/refs", upload),
            ("GET", "/o/r.git/../../x/info/refs", upload),
            ("GET", "/o/r/%2e%2e/x/info/refs", upload),
            ("GET", "/o/r.git/..%2Fother/info/refs", upload),
            ("GET", "/o/r.git/..;/other/info/refs", upload),
            ("GET", "/o/r.git/..\\other/info/refs", upload),
            ("GET", "/o/r.git/info/refs", None),
            ("GET", "/o/r.git/info/refs", Some("service=other")),
            ("TRACE", "/o/r.git/info/refs", upload),
            ("GET", "/o/r", None),
            ("GET", "/o/r.git/raw/secret", None),
            ("PUT", "/o/r.git/git-receive-pack", None),
        ] {
            assert!(!auth.covers(method, path, query), "{method} {path} {query:?}");
        }
        let plain = Credential::from_auth(
            "repo-1",
            br#"{"type": "git_repository", "url": "http://git.team.svc:8080/repo.git", "token": "t"}"#,
        )
        .unwrap();
        assert!(plain.applies_to("git.team.svc", 8080) && !plain.applies_to("git.team.svc", 80));
        assert_eq!(plain.repository.as_ref().unwrap().authority, "git.team.svc:8080");
        assert!(
            Credential::from_auth(
                "x",
                br#"{"type": "git_repository", "url": "ftp://h/r", "token": "t"}"#
            )
            .is_none()
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
