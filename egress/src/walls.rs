//! What no tenant can open (pure): the address ranges a sandbox never reaches whatever its host list says (internal,
//! loopback, link-local, private, shared, multicast, reserved, and the cluster's own Service and Pod ranges), the
//! ports a destination may have, and the operator's allow-list of named internal hosts that lifts the first rule.
//! Addresses are judged after name resolution, on the very addresses the proxy then connects to.

use std::net::{IpAddr, SocketAddr};

pub use corral_api::network::is_internal;
use corral_api::network::{embedded_v4, host_matches, pattern_port};
use ipnet::IpNet;

use crate::policy::HostPolicy;

/// The operator's rules, which no Environment or agent changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walls {
    /// Further closed ranges: the cluster's Service and Pod CIDRs (which may be public addresses in some clusters).
    pub cluster_ranges: Vec<IpNet>,
    /// Host patterns (`name`, `*.domain`, an IP, each optionally `:port`) the operator opens although they resolve to
    /// internal addresses: in-cluster git servers, mirrors, test stand-ins. A pattern with a port also opens that
    /// port.
    pub internal_hosts: Vec<String>,
    /// The ports a destination may have unless a host list entry names its port explicitly.
    pub ports: Vec<u16>,
}

/// The ports open by default: HTTPS and HTTP.
pub const DEFAULT_PORTS: [u16; 2] = [443, 80];

impl Default for Walls {
    fn default() -> Self {
        Self {
            cluster_ranges: vec![],
            internal_hosts: vec![],
            ports: DEFAULT_PORTS.to_vec(),
        }
    }
}

impl Walls {
    /// Whether the operator opened `host:port` to internal addresses.
    pub fn opened(&self, host: &str, port: u16) -> bool {
        self.internal_hosts.iter().any(|p| host_matches(p, host, port))
    }

    /// Whether `ip` is closed: internal, or in one of the cluster's ranges.
    pub fn is_closed(&self, ip: IpAddr) -> bool {
        let v4 = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        is_internal(ip)
            || self
                .cluster_ranges
                .iter()
                .any(|net| net.contains(&ip) || v4.is_some_and(|v4| net.contains(&v4)))
    }

    /// The refusal of `host:port` by port, `None` when the port is open: one of the operator's ports, or named
    /// explicitly by an entry of the sandbox's host list or of the operator's internal hosts that matches the host.
    pub fn check_port(&self, policy: &HostPolicy, host: &str, port: u16) -> Option<String> {
        let named = |p: &String| pattern_port(p).is_some() && host_matches(p, host, port);
        if self.ports.contains(&port)
            || policy.allowed.iter().any(named)
            || self.internal_hosts.iter().any(named)
        {
            return None;
        }
        let open: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        Some(format!(
            "port {port} of {host} is closed: the egress proxy opens ports {} (an allowed host entry `{host}:{port}` \
             opens another)",
            open.join(", ")
        ))
    }

    /// The refusal of `host:port` resolved to `addresses`, `None` when they may be reached: every address is outside
    /// the closed ranges, or the operator opened the host.
    pub fn check_addresses(&self, host: &str, port: u16, addresses: &[SocketAddr]) -> Option<String> {
        let closed = addresses.iter().find(|a| self.is_closed(a.ip()))?;
        if self.opened(host, port) {
            return None;
        }
        Some(format!(
            "{host} resolves to {}, an internal or private address, which sandboxes never reach (only the platform \
             operator can open a named internal host)",
            closed.ip()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ranges_close_public_looking_addresses_too() {
        let walls = Walls {
            cluster_ranges: vec!["34.118.224.0/20".parse().unwrap()],
            ..Walls::default()
        };
        assert!(walls.is_closed("34.118.230.1".parse().unwrap()));
        assert!(walls.is_closed("::ffff:34.118.230.1".parse().unwrap()));
        assert!(!walls.is_closed("34.118.0.1".parse().unwrap()));
    }

    #[test]
    fn a_named_internal_host_is_refused_unless_the_operator_opens_it() {
        let at = |ip: &str| vec![SocketAddr::new(ip.parse().unwrap(), 80)];
        let closed = Walls::default();
        let reason = closed
            .check_addresses("metadata.google.internal", 80, &at("169.254.169.254"))
            .unwrap();
        assert!(
            reason.contains("169.254.169.254, an internal or private address"),
            "{reason}"
        );
        assert_eq!(
            closed.check_addresses("example.com", 80, &at("93.184.215.14")),
            None
        );
        let open = Walls {
            internal_hosts: vec![
                "git.corral-test.svc.cluster.local".into(),
                "127.0.0.1:8080".into(),
            ],
            ..Walls::default()
        };
        assert_eq!(
            open.check_addresses("git.corral-test.svc.cluster.local", 80, &at("10.96.0.12")),
            None
        );
        assert_eq!(open.check_addresses("127.0.0.1", 8080, &at("127.0.0.1")), None);
        assert!(
            open.check_addresses("127.0.0.1", 8081, &at("127.0.0.1"))
                .is_some(),
            "another port"
        );
        assert!(open.check_addresses("other.svc", 80, &at("10.96.0.12")).is_some());
    }

    #[test]
    fn only_the_open_ports_and_explicitly_named_ones_are_reachable() {
        let walls = Walls {
            internal_hosts: vec!["git.internal:3000".into()],
            ..Walls::default()
        };
        let policy = HostPolicy {
            limited: true,
            allowed: vec!["example.com".into(), "ssh.example.com:22".into()],
        };
        assert_eq!(walls.check_port(&policy, "example.com", 443), None);
        assert_eq!(walls.check_port(&policy, "ssh.example.com", 22), None);
        assert_eq!(walls.check_port(&policy, "git.internal", 3000), None);
        let reason = walls.check_port(&policy, "example.com", 22).unwrap();
        assert!(reason.contains("port 22 of example.com is closed"), "{reason}");
        assert!(reason.contains("ports 443, 80"), "{reason}");
        let unrestricted = HostPolicy::default();
        assert!(
            walls
                .check_port(&unrestricted, "anything.example", 6379)
                .is_some()
        );
    }
}
