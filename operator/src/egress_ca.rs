//! The installation's egress CA: generated once by the operator into a Secret of its namespace (the egress proxy
//! mounts it to sign interception certificates); sandboxes get only its certificate.

use std::collections::BTreeMap;

use anyhow::Context;
use k8s_openapi::{ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{Api, Client, api::PostParams};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A new CA (ECDSA P-256, valid until 2036): certificate and PKCS#8 key, both PEM.
fn generate() -> anyhow::Result<(String, String)> {
    let key = KeyPair::generate().context("generating the egress CA key")?;
    let mut params = CertificateParams::new(Vec::<String>::new()).context("egress CA parameters")?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "Corral egress CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.self_signed(&key).context("self-signing the egress CA")?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn certificate(secret: &Secret) -> Option<String> {
    let pem = secret.data.as_ref()?.get("tls.crt")?;
    String::from_utf8(pem.0.clone()).ok()
}

/// The CA certificate (PEM) in Secret `namespace/name`, creating the Secret with a new CA when it is missing.
/// Replicas racing to create it all end up with the one that was stored.
pub async fn ensure(client: Client, namespace: &str, name: &str) -> anyhow::Result<String> {
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    if let Some(existing) = secrets.get_opt(name).await? {
        return certificate(&existing).with_context(|| format!("Secret {namespace}/{name} holds no tls.crt"));
    }
    let (cert, key) = generate()?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (corral_api::labels::MANAGED_BY.to_owned(), "corral".to_owned()),
                (
                    corral_api::labels::COMPONENT.to_owned(),
                    "egress-proxy".to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(cert.clone().into_bytes())),
            ("tls.key".to_owned(), ByteString(key.into_bytes())),
        ])),
        ..Secret::default()
    };
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = %format!("{namespace}/{name}"), "created the egress CA");
            Ok(cert)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let stored = secrets.get(name).await?;
            certificate(&stored).with_context(|| format!("Secret {namespace}/{name} holds no tls.crt"))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_generated_ca_is_a_ca_certificate_with_a_pkcs8_key() {
        let (cert, key) = super::generate().unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(
            key.starts_with("-----BEGIN PRIVATE KEY-----"),
            "PKCS#8, which the proxy reads"
        );
        let parsed = rcgen::Issuer::from_ca_cert_pem(&cert, rcgen::KeyPair::from_pem(&key).unwrap());
        assert!(parsed.is_ok(), "the proxy can sign with it");
    }
}
