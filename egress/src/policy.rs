//! Whether a sandbox may reach a host (pure): the Environment's networking, the allowed extras, and the rule that
//! cluster-internal addresses stay closed unless a host list names them.

use std::net::IpAddr;

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

/// The verdict on one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead. `named` when a host list names the destination, which then may be internal.
    Allow {
        /// Whether the destination is explicitly listed.
        named: bool,
    },
    /// Refused, with a reason the model can read.
    Deny(String),
}

/// Whether `pattern` (`host`, `*.domain` or either with `:port`) matches `host:port`.
pub fn host_matches(pattern: &str, host: &str, port: u16) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let (name, wanted_port) = match pattern.rsplit_once(':') {
        Some((name, p)) if p.chars().all(|c| c.is_ascii_digit()) => (name.to_owned(), p.parse::<u16>().ok()),
        _ => (pattern.clone(), None),
    };
    if wanted_port.is_some_and(|p| p != port) {
        return false;
    }
    match name.strip_prefix("*.") {
        Some(domain) => host.ends_with(&format!(".{domain}")),
        None => name == host,
    }
}

/// The verdict on `host:port` before name resolution.
pub fn check_host(policy: &HostPolicy, host: &str, port: u16) -> Verdict {
    let named = policy.allowed.iter().any(|p| host_matches(p, host, port));
    if policy.limited && !named {
        return Verdict::Deny(format!(
            "{host}:{port} is not in this environment's allowed hosts (limited networking)"
        ));
    }
    Verdict::Allow { named }
}

/// Whether `ip` is an address no sandbox reaches unless a host list names it: private, loopback, link-local
/// (cloud metadata), shared (CGNAT), unspecified, multicast or broadcast.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
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
        assert_eq!(
            check_host(&policy, "example.com", 443),
            Verdict::Allow { named: true }
        );
        assert_eq!(
            check_host(&policy, "pypi.org", 443),
            Verdict::Allow { named: true }
        );
        let Verdict::Deny(reason) = check_host(&policy, "mcp.example.org", 443) else {
            panic!("MCP servers are not allowed here")
        };
        assert!(
            reason.contains("not in this environment's allowed hosts"),
            "{reason}"
        );
        let open = HostPolicy::new(&networking(serde_json::json!({"type": "unrestricted"})), &[]);
        assert_eq!(
            check_host(&open, "anything.example", 80),
            Verdict::Allow { named: false }
        );
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "10.203.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["8.8.8.8", "140.82.112.3", "2606:4700::1111"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }
}
