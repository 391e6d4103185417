//! What no tenant can open (pure): the address ranges a sandbox never reaches whatever its host list says (internal,
//! loopback, link-local, private, shared, multicast, reserved, and the cluster's own Service and Pod ranges), the
//! ports a destination may have, and the operator's allow-list of named internal hosts that lifts the first rule.
//! Addresses are judged after name resolution, on the very addresses the proxy then connects to.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::policy::{HostPolicy, host_matches, pattern_port};

/// IPv4 ranges closed to every sandbox.
const CLOSED_V4: [Ipv4Net; 11] = [
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8), // "this network", unspecified
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8), // RFC 1918
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10), // shared address space (CGNAT)
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8), // loopback
    Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16), // link-local: cloud metadata
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12), // RFC 1918
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24), // IETF protocol assignments
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16), // RFC 1918
    Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15), // benchmarking
    Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4), // multicast
    Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4), // reserved and broadcast
];

/// IPv6 ranges closed to every sandbox (ranges embedding an IPv4 address are judged by that address).
const CLOSED_V6: [Ipv6Net; 8] = [
    Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 128),
    Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128),
    Ipv6Net::new_assert(Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64
    Ipv6Net::new_assert(Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),     // discard
    Ipv6Net::new_assert(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),     // unique local (ULA)
    Ipv6Net::new_assert(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),    // link-local
    Ipv6Net::new_assert(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),    // site-local
    Ipv6Net::new_assert(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),     // multicast
];

/// The IPv4 address an IPv6 address carries (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`), which is where a packet to it may end up.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let from = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(from(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(from(hi, lo)),
        [0x2002, hi, lo, ..] => Some(from(hi, lo)),
        _ => None,
    }
}

/// Whether `ip` is internal: in a range no sandbox reaches unless the operator opens a host by name.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => CLOSED_V4.iter().any(|net| net.contains(&v4)),
        IpAddr::V6(v6) => {
            CLOSED_V6.iter().any(|net| net.contains(&v6))
                || embedded_v4(v6).is_some_and(|v4| is_internal(v4.into()))
        }
    }
}

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
    fn internal_addresses_are_recognised_in_every_spelling() {
        for internal in [
            "10.203.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in [
            "8.8.8.8",
            "140.82.112.3",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

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
