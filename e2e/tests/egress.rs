//! The egress proxy on the real cluster: a `limited` sandbox reaches its allowed host only through the proxy, and
//! a vault credential arrives at that host with its real value while the sandbox only ever holds a placeholder.
#![cfg(feature = "e2e")]

use corral_e2e::{
    Cluster, TestNamespace,
    host::recorder,
    sandbox::{bash, client, request_sandbox, wait_ready},
};

/// A `limited` Environment allowing only `host`, a vault with an `environment_variable` credential bound to it
/// (stored as the gateway stores it, docs/trust.md), and a Session using the vault.
fn manifests(host: &str, secret: &str) -> String {
    let environment = format!(r#"{{config: {{networking: {{type: limited, allowedHosts: ["{host}"]}}}}}}"#);
    let vault = format!(
        r#"
---
apiVersion: v1
kind: Secret
metadata:
  name: vlt-e2e
  labels: {{app.kubernetes.io/managed-by: corral, corral.dev/object: vault}}
---
apiVersion: v1
kind: Secret
type: corral.dev/vault-credential
metadata:
  name: vcrd-e2e
  labels:
    app.kubernetes.io/managed-by: corral
    corral.dev/object: vault-credential
    corral.dev/vault: vlt-e2e
    corral.dev/credential-type: environment_variable
stringData:
  auth: '{{"type": "environment_variable", "secret_name": "API_TOKEN", "secret_value": "{secret}",
          "networking": {{"type": "limited", "allowed_hosts": ["{host}"]}}}}'
"#
    );
    corral_e2e::sandbox::manifests(&environment, "vaultRefs: [{name: vlt-e2e}]") + &vault
}

#[tokio::test]
async fn a_credential_reaches_its_host_through_the_proxy_and_never_enters_the_sandbox() -> anyhow::Result<()>
{
    let cluster = Cluster::connect().await?;
    let dir = tempfile::tempdir()?;
    let record = dir.path().join("requests");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let mut server = recorder(port, &record)?;
    let secret = format!("e2e-secret-{}", std::process::id());
    let result = TestNamespace::run(&cluster, "egress", |ns| {
        let (record, secret) = (record.clone(), secret.clone());
        async move {
            let address = ns.cluster().forward_from_host(&format!("{}-rec", ns.name), port)?;
            ns.apply(&manifests(&address, &secret))?;
            request_sandbox(&ns, "s1").await?;
            let ready = wait_ready(&ns, "sandbox Ready").await?;
            let c = client(&ns, &ready, &format!("{}-a", ns.name)).await?;

            assert_eq!(
                bash(&c, "echo $API_TOKEN").await?.trim(),
                "corral-placeholder-vcrd-e2e",
                "the sandbox holds a placeholder"
            );
            // The sandbox trusts the egress CA (for HTTPS the proxy intercepts) on top of the image's own roots.
            let trust = bash(&c, "grep -c 'BEGIN CERTIFICATE' \"$SSL_CERT_FILE\"; openssl x509 -noout -subject -in \"$NODE_EXTRA_CA_CERTS\" 2>/dev/null || head -1 \"$NODE_EXTRA_CA_CERTS\"").await?;
            let roots: usize = trust.lines().next().unwrap_or("0").trim().parse().unwrap_or(0);
            assert!(roots > 1, "the bundle holds the image's roots and the egress CA: {trust}");
            let reply = bash(&c, &format!("curl -sS -H \"Authorization: Bearer $API_TOKEN\" http://{address}/call")).await?;
            assert_eq!(reply.trim(), "ok");
            let seen = std::fs::read_to_string(&record)?;
            assert_eq!(seen.trim(), format!("/call Bearer {secret}"), "the host got the real value");

            // Another host: refused by the proxy with a reason the model can read.
            let refused = bash(&c, "curl -sS http://203.0.113.7/ || true").await?;
            assert!(refused.contains("not in this environment's allowed hosts"), "{refused}");
            // Around the proxy: the NetworkPolicy lets a limited sandbox reach nothing but the proxy.
            let direct = bash(&c, &format!("curl -sS --noproxy '*' --max-time 5 http://{address}/direct && echo REACHED || echo blocked")).await?;
            assert!(direct.trim().ends_with("blocked"), "{direct}");

            // The value is nowhere in the sandbox: environment, processes, files.
            let environment = bash(&c, "env; cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'; ps -eo args 2>/dev/null || true").await?;
            assert!(!environment.contains(&secret), "the secret is in the sandbox's environment or processes");
            let files = bash(
                &c,
                &format!("grep -rIls --exclude-dir=proc --exclude-dir=sys -e '{secret}' / 2>/dev/null | head -5; echo done"),
            )
            .await?;
            assert_eq!(files.trim(), "done", "the secret is in a file of the sandbox: {files}");
            Ok(())
        }
    })
    .await;
    let _ = server.kill();
    result
}
