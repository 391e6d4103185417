//! TLS interception for hosts a credential is bound to: the proxy answers the sandbox's `CONNECT` with a leaf
//! certificate for the host, signed by the installation's egress CA (which sandboxes trust), reads the requests,
//! replaces credential placeholders, and sends them on over a new TLS connection verified against the public roots.
//! Hosts without a bound credential are tunnelled untouched.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use rcgen::{CertificateParams, DnType, Issuer, KeyPair};
use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, pem::PemObject},
};

/// Signs leaf certificates and connects upstream.
pub struct Interceptor {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    leaves: Mutex<HashMap<String, Arc<ServerConfig>>>,
    upstream: Arc<ClientConfig>,
}

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
            leaves: Mutex::new(HashMap::new()),
            upstream: Arc::new(upstream),
        })
    }

    /// The server side of an intercepted connection to `host`: a leaf certificate for it (cached).
    pub fn server_config(&self, host: &str) -> anyhow::Result<Arc<ServerConfig>> {
        if let Some(config) = self.leaves.lock().ok().and_then(|l| l.get(host).cloned()) {
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
            leaves.insert(host.to_owned(), config.clone());
        }
        Ok(config)
    }

    /// The client side towards the real host.
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.upstream.clone())
    }
}
