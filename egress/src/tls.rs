//! TLS interception for hosts a credential is bound to: the proxy answers the sandbox's `CONNECT` with a leaf
//! certificate for the host, signed by the installation's egress CA (which sandboxes trust), reads the requests,
//! replaces credential placeholders, and sends them on over a new TLS connection verified against the public roots.
//! Hosts without a bound credential are tunnelled untouched.

use std::{
    num::NonZeroUsize,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use lru::LruCache;
use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject},
};

/// Signs leaf certificates and connects upstream.
pub struct Interceptor {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    leaves: Mutex<LruCache<String, Arc<ServerConfig>>>,
    upstream: Arc<ClientConfig>,
    metrics: crate::metrics::Metrics,
}

/// How many leaf certificates are kept by default (the least recently used one goes first).
pub const DEFAULT_CERTIFICATE_CACHE: NonZeroUsize = match NonZeroUsize::new(1024) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Interceptor {
    /// An interceptor signing with the CA in `ca_cert_pem` / `ca_key_pem` (PKCS#8), trusting the public web roots
    /// upstream plus the certificates in `extra_roots_pem` (a private CA, or a test server's).
    pub fn new(ca_cert_pem: &str, ca_key_pem: &str, extra_roots_pem: Option<&[u8]>) -> anyhow::Result<Self> {
        let key = KeyPair::from_pem(ca_key_pem).context("parsing the egress CA key")?;
        let issuer =
            Issuer::from_ca_cert_pem(ca_cert_pem, key).context("parsing the egress CA certificate")?;
        let ca_der = CertificateDer::from_pem_slice(ca_cert_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("reading the egress CA certificate: {e}"))?;
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_roots_pem {
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| anyhow::anyhow!("reading the extra upstream roots: {e}"))?;
                roots.add(cert).context("adding an extra upstream root")?;
            }
        }
        let mut upstream = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        upstream.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            issuer,
            ca_der,
            leaves: Mutex::new(LruCache::new(DEFAULT_CERTIFICATE_CACHE)),
            upstream: Arc::new(upstream),
            metrics: crate::metrics::Metrics::default(),
        })
    }

    /// The same interceptor keeping at most `capacity` leaf certificates, counting them in `metrics`.
    pub fn with_cache(mut self, capacity: NonZeroUsize, metrics: crate::metrics::Metrics) -> Self {
        self.leaves = Mutex::new(LruCache::new(capacity));
        self.metrics = metrics;
        self
    }

    /// The server side of an intercepted connection to `host`: a leaf certificate for it (cached).
    pub fn server_config(&self, host: &str) -> anyhow::Result<Arc<ServerConfig>> {
        if let Some(config) = self.leaves.lock().ok().and_then(|mut l| l.get(host).cloned()) {
            return Ok(config);
        }
        let key = KeyPair::generate().context("generating a leaf key")?;
        let mut params =
            CertificateParams::new(vec![host.to_owned()]).context("leaf certificate parameters")?;
        params.distinguished_name.push(DnType::CommonName, host);
        let leaf = params
            .signed_by(&key, &self.issuer)
            .context("signing a leaf certificate")?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), self.ca_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .context("building the leaf TLS config")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        if let Ok(mut leaves) = self.leaves.lock() {
            leaves.put(host.to_owned(), config.clone());
            self.metrics.certificate_issued(leaves.len());
        }
        Ok(config)
    }

    /// The client side towards the real host.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.upstream.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca() -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[test]
    fn the_certificate_cache_keeps_only_the_most_recently_used_hosts() {
        let (cert, key) = ca();
        let metrics = crate::metrics::Metrics::default();
        let interceptor = Interceptor::new(&cert, &key, None)
            .unwrap()
            .with_cache(NonZeroUsize::new(2).unwrap(), metrics.clone());
        for host in ["a.example", "b.example", "a.example", "c.example"] {
            interceptor.server_config(host).unwrap();
        }
        assert_eq!(metrics.certificates_issued(), 3, "a.example came from the cache");
        interceptor.server_config("a.example").unwrap();
        assert_eq!(
            metrics.certificates_issued(),
            3,
            "a.example was used recently: b.example went"
        );
        interceptor.server_config("b.example").unwrap();
        assert_eq!(
            metrics.certificates_issued(),
            4,
            "b.example was evicted and is signed again"
        );
        assert_eq!(
            interceptor.leaves.lock().unwrap().len(),
            2,
            "never more than the capacity"
        );
    }
}
