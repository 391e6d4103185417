//! Whether a sandbox may reach a host by name (pure): the Environment's networking and the allowed extras. What no
//! host list opens (internal addresses, closed ports) is [`crate::walls`].

use corral_api::environment::{Networking, NetworkingType};

/// What a sandbox may reach, assembled from its Environment (and its session's agent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    /// `limited` networking: only `allowed` hosts.
    pub limited: bool,
    /// Host patterns (`name`, `*.domain`, `ip`, each optionally `:port`) reachable under `limited` networking,
    /// including package registries and MCP servers when the Environment allows them.
    pub allowed: Vec<String>,
}

impl HostPolicy {
    /// The policy of an Environment's networking plus `mcp_hosts` (the agent's MCP servers).
    pub fn new(networking: &Networking, mcp_hosts: &[String]) -> Self {
        let mut allowed = networking.allowed_hosts.clone().unwrap_or_default();
        if networking.allow_package_managers == Some(true) {
            allowed.extend(
                corral_api::egress::PACKAGE_MANAGER_HOSTS
                    .iter()
                    .map(|h| (*h).to_owned()),
            );
        }
        if networking.allow_mcp_servers == Some(true) {
            allowed.extend(mcp_hosts.iter().cloned());
        }
        Self {
            limited: networking.kind == NetworkingType::Limited,
            allowed,
        }
    }
}

/// The verdict on one destination by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead (the addresses it resolves to are judged next, by [`crate::walls::Walls`]).
    Allow,
    /// Refused, with a reason the model can read.
    Deny(String),
}

/// A host pattern split into its name and its port, if it names one: `name`, `name:port`, `*.domain:port`, an IPv4
/// address, an IPv6 address (bare, or in brackets with a port: `[fd00::1]:8080`).
fn split_pattern(pattern: &str) -> (&str, Option<u16>) {
    if let Some(rest) = pattern.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((name, tail)) => (name, tail.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (rest, None),
        };
    }
    if pattern.matches(':').count() > 1 {
        return (pattern, None); // a bare IPv6 address
    }
    match pattern.rsplit_once(':') {
        Some((name, p)) if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()) => (name, p.parse().ok()),
        _ => (pattern, None),
    }
}

/// The port a host pattern names, if any.
pub fn pattern_port(pattern: &str) -> Option<u16> {
    split_pattern(pattern).1
}

/// Whether `pattern` (`host`, `*.domain` or either with `:port`) matches `host:port`.
pub fn host_matches(pattern: &str, host: &str, port: u16) -> bool {
    let (name, wanted_port) = split_pattern(pattern);
    if wanted_port.is_some_and(|p| p != port) {
        return false;
    }
    if let (Ok(wanted), Ok(ip)) = (name.parse::<std::net::IpAddr>(), host.parse::<std::net::IpAddr>()) {
        return wanted == ip; // one address, however it is spelt
    }
    let (name, host) = (name.to_ascii_lowercase(), host.to_ascii_lowercase());
    let host = host.trim_end_matches('.');
    match name.strip_prefix("*.") {
        Some(domain) => host.ends_with(&format!(".{domain}")),
        None => name == host,
    }
}

/// The verdict on `host:port` by the sandbox's host list, before name resolution.
pub fn check_host(policy: &HostPolicy, host: &str, port: u16) -> Verdict {
    if policy.limited && !policy.allowed.iter().any(|p| host_matches(p, host, port)) {
        return Verdict::Deny(format!(
            "{host}:{port} is not in this environment's allowed hosts (limited networking)"
        ));
    }
    Verdict::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    fn networking(json: serde_json::Value) -> Networking {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn patterns_match_names_subdomains_and_ports() {
        assert!(host_matches("api.github.com", "API.github.com", 443));
        assert!(host_matches("*.github.com", "api.github.com", 443));
        assert!(
            !host_matches("*.github.com", "github.com", 443),
            "a wildcard needs a subdomain"
        );
        assert!(!host_matches("*.github.com", "evilgithub.com", 443));
        assert!(host_matches("mirror:8080", "mirror", 8080));
        assert!(!host_matches("mirror:8080", "mirror", 80));
        assert!(host_matches("10.201.0.1", "10.201.0.1", 9999));
    }

    #[test]
    fn limited_networking_allows_only_its_hosts_and_the_allowed_extras() {
        let policy = HostPolicy::new(
            &networking(
                serde_json::json!({"type": "limited", "allowedHosts": ["example.com"],
                                           "allowPackageManagers": true, "allowMcpServers": false}),
            ),
            &["mcp.example.org".into()],
        );
        assert_eq!(check_host(&policy, "example.com", 443), Verdict::Allow);
        assert_eq!(check_host(&policy, "pypi.org", 443), Verdict::Allow);
        let Verdict::Deny(reason) = check_host(&policy, "mcp.example.org", 443) else {
            panic!("MCP servers are not allowed here")
        };
        assert!(
            reason.contains("not in this environment's allowed hosts"),
            "{reason}"
        );
        let open = HostPolicy::new(&networking(serde_json::json!({"type": "unrestricted"})), &[]);
        assert_eq!(check_host(&open, "anything.example", 80), Verdict::Allow);
    }

    #[test]
    fn ipv6_patterns_and_trailing_dots() {
        assert!(host_matches("[fd00::1]:8080", "fd00::1", 8080));
        assert!(!host_matches("[fd00::1]:8080", "fd00::1", 80));
        assert!(host_matches("fd00::1", "fd00::1", 443));
        assert!(
            host_matches("::ffff:127.0.0.1", "::ffff:7f00:1", 443),
            "one address, two spellings"
        );
        assert_eq!(pattern_port("fd00::1"), None);
        assert_eq!(pattern_port("example.com:8443"), Some(8443));
        assert!(
            host_matches("example.com", "example.com.", 443),
            "a fully qualified name is the same host"
        );
    }
}
