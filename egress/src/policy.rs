//! Whether a sandbox may reach a host by name (pure): the Environment's networking and the allowed extras. What no
//! host list opens (internal addresses, closed ports) is [`crate::walls`].

use corral_api::{
    environment::{Networking, NetworkingType},
    network::host_matches,
};

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
}
