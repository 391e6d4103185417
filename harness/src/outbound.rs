//! The harness's own outbound wall. The model endpoints and MCP servers an Agent names are its tenant's choice,
//! while the harness runs beside Corral's own parts (Redis, the API server, the gateway, other tenants' harnesses):
//! an address inside the cluster is refused unless the platform operator opened its host (`egress.internalHosts`,
//! the list the egress proxy honours too). Names are judged on the addresses they resolve to, when the connection
//! is made (a resolver of our own, so a name cannot be re-pointed between check and use); literal addresses before
//! the request; redirects are never followed.
//!
//! `corral-harness serve` installs a closed wall; the local `run` mode (a developer's own models on loopback) keeps
//! the default, which is open.

use std::{
    net::{IpAddr, SocketAddr},
    sync::{Arc, OnceLock},
};

use corral_api::network::{host_matches_any_port, is_internal};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// What the harness may connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundWall {
    /// Everything (local development).
    Open,
    /// Public addresses, plus the internal hosts the platform operator opened (host patterns: `name`, `*.domain`,
    /// an IP, each optionally `:port`, where the port is ignored).
    Closed {
        /// The operator's opened internal hosts.
        opened: Vec<String>,
    },
}

static INSTALLED: OnceLock<Arc<OutboundWall>> = OnceLock::new();

/// Installs the process's wall; the first call wins (it is set once, at startup).
pub fn install(wall: OutboundWall) {
    let _ = INSTALLED.set(Arc::new(wall));
}

/// The process's wall: the installed one, or [`OutboundWall::Open`].
pub fn current() -> Arc<OutboundWall> {
    INSTALLED
        .get()
        .cloned()
        .unwrap_or_else(|| Arc::new(OutboundWall::Open))
}

/// A client builder that connects only where the process's wall allows and follows no redirect.
pub fn client_builder() -> reqwest::ClientBuilder {
    builder_within(current())
}

fn builder_within(wall: Arc<OutboundWall>) -> reqwest::ClientBuilder {
    // Installing fails harmlessly when a provider is already installed process-wide.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .dns_resolver(Arc::new(WallResolver(wall)))
        .redirect(reqwest::redirect::Policy::none())
}

impl OutboundWall {
    /// A closed wall opening `opened` (empty entries are dropped).
    pub fn closed(opened: impl IntoIterator<Item = String>) -> Self {
        Self::Closed {
            opened: opened
                .into_iter()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect(),
        }
    }

    fn opened(&self, host: &str) -> bool {
        match self {
            Self::Open => true,
            Self::Closed { opened } => opened.iter().any(|p| host_matches_any_port(p, host)),
        }
    }

    /// The refusal of `host` resolved to `addresses`, `None` when they may be reached.
    pub fn check_addresses(&self, host: &str, addresses: &[IpAddr]) -> Option<String> {
        let internal = addresses.iter().find(|ip| is_internal(**ip))?;
        if self.opened(host) {
            return None;
        }
        Some(format!(
            "{host} resolves to {internal}, an internal address the harness does not connect to (model endpoints, MCP \
             servers and attached URLs must be public, or opened by the platform operator in egress.internalHosts)"
        ))
    }

    /// The addresses of `host` (at `port`), resolved with the system resolver, when the wall lets them all be
    /// reached: what the harness's HTTP clients connect to, and what other clients (git) are pinned to.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<IpAddr>, Unreachable> {
        let addresses: Vec<IpAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Unreachable::Lookup(format!("resolving {host}: {e}")))?
            .map(|a| a.ip())
            .collect();
        if addresses.is_empty() {
            return Err(Unreachable::Lookup(format!("{host} resolves to no address")));
        }
        match self.check_addresses(host, &addresses) {
            Some(reason) => Err(Unreachable::Closed(reason)),
            None => Ok(addresses),
        }
    }

    /// The refusal of `url` by its host when that host is a literal address (names are judged when they resolve).
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url:?}: {e}"))?;
        let ip = match parsed.host() {
            Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        match self.check_addresses(&ip.to_string(), &[ip]) {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }
}

/// Why a host cannot be reached, as a sentence naming it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreachable {
    /// The name did not resolve (perhaps for now).
    Lookup(String),
    /// It resolves to an address the wall closes.
    Closed(String),
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lookup(why) | Self::Closed(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Unreachable {}

/// Resolves names with the system resolver and refuses those that land on a closed address.
struct WallResolver(Arc<OutboundWall>);

impl Resolve for WallResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let wall = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = wall.resolve(&host, 0).await?;
            Ok(Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0))) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_closed_unless_opened_by_the_operator() {
        let wall = OutboundWall::closed(["10.201.0.1".to_owned(), "*.corp.example".to_owned()]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(
            wall.check_addresses("api.example.com", &[ip("140.82.112.3")])
                .is_none()
        );
        let reason = wall
            .check_addresses("corral-redis.corral-system", &[ip("10.96.0.12")])
            .unwrap();
        assert!(reason.contains("internal address"), "{reason}");
        assert!(wall.check_addresses("10.201.0.1", &[ip("10.201.0.1")]).is_none());
        assert!(
            wall.check_addresses("git.corp.example", &[ip("10.0.0.7")])
                .is_none()
        );
        assert!(
            wall.check_addresses("mixed.example", &[ip("140.82.112.3"), ip("127.0.0.1")])
                .is_some(),
            "one internal address among public ones is enough to refuse"
        );
        assert!(
            OutboundWall::Open
                .check_addresses("localhost", &[ip("127.0.0.1")])
                .is_none()
        );
    }

    #[test]
    fn literal_addresses_in_urls_are_judged_before_the_request() {
        let wall = OutboundWall::closed(Vec::new());
        for url in [
            "http://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:6379",
            "https://[::ffff:10.0.0.1]/v1",
            "http://[fd00::1]:8080",
        ] {
            assert!(wall.check_url(url).is_err(), "{url}");
        }
        assert!(
            wall.check_url("https://api.anthropic.com/v1").is_ok(),
            "names wait for resolution"
        );
        assert!(wall.check_url("https://140.82.112.3/").is_ok());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_when_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = builder_within(Arc::new(OutboundWall::closed(Vec::new())))
            .build()
            .unwrap();
        let err = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .expect_err("localhost is internal");
        let chain = format!("{:?}", err);
        assert!(chain.contains("internal address"), "{chain}");
    }
}
