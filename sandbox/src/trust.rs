//! Trusting the installation's egress CA inside the sandbox, whatever the image: the daemon writes the CA and a
//! bundle of the image's own roots plus the CA to a scratch directory, and points the usual variables at them
//! (OpenSSL and curl, Python requests and pip, git, Node). Only the CA's certificate is here, never its key.

use std::path::{Path, PathBuf};

/// Where images keep their system roots, most common first.
const SYSTEM_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// Writes `ca_pem` and the combined bundle under `dir`; the variables the shell (or the installer) gets.
pub fn install(ca_pem: &str, dir: &Path) -> std::io::Result<Vec<(String, String)>> {
    std::fs::create_dir_all(dir)?;
    let ca = dir.join("egress-ca.crt");
    std::fs::write(&ca, ca_pem)?;
    let mut bundle_text = SYSTEM_BUNDLES
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default();
    if !bundle_text.is_empty() && !bundle_text.ends_with('\n') {
        bundle_text.push('\n');
    }
    bundle_text.push_str(ca_pem);
    let bundle: PathBuf = dir.join("ca-bundle.crt");
    std::fs::write(&bundle, bundle_text)?;
    let bundle = bundle.display().to_string();
    let mut env: Vec<(String, String)> = [
        "SSL_CERT_FILE",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "GIT_SSL_CAINFO",
        "PIP_CERT",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), bundle.clone()))
    .collect();
    env.push(("NODE_EXTRA_CA_CERTS".to_owned(), ca.display().to_string()));
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundle_holds_the_ca_and_every_tool_is_pointed_at_it() {
        let dir = tempfile::tempdir().unwrap();
        let pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let env = install(pem, dir.path()).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap();
        let bundle = std::fs::read_to_string(get("SSL_CERT_FILE")).unwrap();
        assert!(bundle.ends_with(pem), "the CA is in the bundle");
        assert_eq!(get("REQUESTS_CA_BUNDLE"), get("SSL_CERT_FILE"));
        assert_eq!(std::fs::read_to_string(get("NODE_EXTRA_CA_CERTS")).unwrap(), pem);
    }
}
