//! Addresses and host names as Corral's outbound walls judge them (pure): the address ranges no tenant reaches
//! whatever it names (internal, loopback, link-local, private, shared, multicast, reserved), and the host patterns
//! (`name`, `*.domain`, an IP, each optionally `:port`) that tenants and the platform operator write. The egress
//! proxy judges sandbox traffic with them, the harness its own (model endpoints, MCP servers).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

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
pub fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
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

/// Whether `pattern` matches `host` on the port the pattern names, or on any port when it names none.
pub fn host_matches_any_port(pattern: &str, host: &str) -> bool {
    host_matches(pattern, host, pattern_port(pattern).unwrap_or(0))
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

    #[test]
    fn a_pattern_without_a_port_matches_any_port() {
        assert!(host_matches_any_port("10.201.0.1", "10.201.0.1"));
        assert!(host_matches_any_port("mirror:8080", "mirror"));
        assert!(host_matches_any_port("*.corp.example", "git.corp.example"));
        assert!(!host_matches_any_port("*.corp.example", "corp.example"));
    }
}
