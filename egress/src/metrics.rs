//! The proxy's metrics.

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    limit: &'static str,
}

/// A limit that cut a client off (the `limit` label of `corral_egress_limited_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The proxy's connection cap (`503`).
    Connections,
    /// A sandbox's connection cap (`429`).
    SandboxConnections,
    /// A source address's connection cap (`429`).
    SourceConnections,
    /// A request head too slow, or a kept-alive connection idle too long (`408`).
    HeaderTimeout,
    /// A tunnel or forwarded exchange without traffic (closed, `504` before a response).
    IdleTimeout,
    /// Resolving or connecting upstream too slow (`504`).
    ConnectTimeout,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::SandboxConnections => "sandbox_connections",
            Self::SourceConnections => "source_connections",
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::ConnectTimeout => "connect_timeout",
        }
    }
}

/// `corral_egress_requests_total{verdict}`, `corral_egress_limited_total{limit}`, `corral_egress_connections`,
/// `corral_egress_certificates_issued_total` and `corral_egress_certificate_cache_entries`.
#[derive(Clone, Default)]
pub struct Metrics {
    requests: Family<VerdictLabel, Counter>,
    limited: Family<LimitLabel, Counter>,
    connections: Gauge,
    certificates_issued: Counter,
    certificate_cache: Gauge,
}

impl Metrics {
    /// Registers the metrics in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "corral_egress_requests",
            "Sandbox egress requests by verdict (allowed, denied)",
            self.requests.clone(),
        );
        registry.register(
            "corral_egress_limited",
            "Client connections or requests cut off by a limit (connections, source_connections, sandbox_connections, \
             header_timeout, idle_timeout, connect_timeout)",
            self.limited.clone(),
        );
        registry.register(
            "corral_egress_connections",
            "Client connections open (tunnels included)",
            self.connections.clone(),
        );
        registry.register(
            "corral_egress_certificates_issued",
            "Interception leaf certificates signed (a cache miss each)",
            self.certificates_issued.clone(),
        );
        registry.register(
            "corral_egress_certificate_cache_entries",
            "Interception leaf certificates in the bounded cache",
            self.certificate_cache.clone(),
        );
    }

    /// Counts an allowed request.
    pub fn allowed(&self) {
        self.requests
            .get_or_create(&VerdictLabel { verdict: "allowed" })
            .inc();
    }

    /// Counts a refused request.
    pub fn denied(&self) {
        self.requests
            .get_or_create(&VerdictLabel { verdict: "denied" })
            .inc();
    }

    /// Counts a client cut off by `limit`.
    pub fn limited(&self, limit: Limit) {
        self.limited
            .get_or_create(&LimitLabel { limit: limit.label() })
            .inc();
    }

    /// How many clients `limit` cut off so far.
    pub fn limited_count(&self, limit: Limit) -> u64 {
        self.limited
            .get_or_create(&LimitLabel { limit: limit.label() })
            .get()
    }

    /// Counts an opened client connection.
    pub fn connection_opened(&self) {
        self.connections.inc();
    }

    /// Counts a closed client connection.
    pub fn connection_closed(&self) {
        self.connections.dec();
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> i64 {
        self.connections.get()
    }

    /// Counts a signed leaf certificate and sets the cache's size.
    pub fn certificate_issued(&self, cached: usize) {
        self.certificates_issued.inc();
        self.certificate_cache
            .set(i64::try_from(cached).unwrap_or(i64::MAX));
    }

    /// Leaf certificates signed so far.
    pub fn certificates_issued(&self) -> u64 {
        self.certificates_issued.get()
    }
}
