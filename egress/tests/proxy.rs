//! The proxy on loopback between a real HTTP client (reqwest, configured with the sandbox's proxy identity) and a
//! real upstream server that reports what it received. The upstreams live on 127.0.0.1, an internal address, so
//! each proxy here opens it the way a platform operator opens an in-cluster server (`egress.internalHosts`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::{net::SocketAddr, sync::Arc};

use common::{client, connect, echo, echoes, networking, opening, start, upstream};
use corral_egress::{credentials::Credential, directory::SandboxContext, policy::HostPolicy};

fn credential(hosts: &[&str], body: bool) -> Credential {
    let auth = serde_json::json!({
        "type": "environment_variable", "secret_name": "API_TOKEN", "secret_value": "s3cret-value",
        "networking": {"type": "limited", "allowed_hosts": hosts},
        "injection_location": {"header": true, "body": body},
    });
    Credential::from_auth("vcrd-1", &serde_json::to_vec(&auth).unwrap()).unwrap()
}

/// What the daemon of sandbox `team/sbx` is told when it asks the proxy for its placeholders.
async fn placeholders_of_sbx(proxy: SocketAddr) -> String {
    let auth = {
        use base64::Engine;
        let password = corral_api::egress::proxy_password(common::KEY, "team", "sbx");
        base64::engine::general_purpose::STANDARD.encode(format!("team.sbx:{password}"))
    };
    reqwest::Client::new()
        .get(format!("http://{proxy}/.corral/placeholders"))
        .header("Proxy-Authorization", format!("Basic {auth}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_allowed_host_gets_the_real_credential_and_other_hosts_get_the_placeholder_or_a_refusal() {
    let up = upstream().await;
    let allowed = format!("127.0.0.1:{}", up.port());
    let context = SandboxContext {
        policy: HostPolicy::new(
            &networking(
                serde_json::json!({"type": "limited", "allowedHosts": [allowed, format!("localhost:{}", up.port())]}),
            ),
            &[],
        ),
        credentials: vec![credential(&["127.0.0.1"], true)],
    };
    let proxy = start(vec![("sbx", context)], |p| {
        p.walls = opening(&["127.0.0.1", "localhost"])
    })
    .await
    .addr;
    let c = client(proxy, "sbx", None);
    let placeholder = corral_api::egress::placeholder("vcrd-1");

    let reply = c
        .post(format!("http://127.0.0.1:{}/api", up.port()))
        .header("Authorization", format!("Bearer {placeholder}"))
        .body(format!("token={placeholder}"))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    assert_eq!(
        reply.text().await.unwrap(),
        "auth=Bearer s3cret-value body=token=s3cret-value"
    );

    // localhost is allowed too, but the credential is bound to 127.0.0.1 only: the placeholder goes as is.
    let reply = c
        .get(format!("http://localhost:{}/api", up.port()))
        .header("Authorization", format!("Bearer {placeholder}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply.text().await.unwrap(),
        format!("auth=Bearer {placeholder} body=")
    );

    // The daemon's question: which variables hold which placeholders (never the values).
    assert_eq!(
        placeholders_of_sbx(proxy).await,
        format!("{{\"API_TOKEN\":\"{placeholder}\"}}")
    );

    let refused = c.get("http://example.invalid/").send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let reason = refused.text().await.unwrap();
    assert!(
        reason.contains("example.invalid:80 is not in this environment's allowed hosts"),
        "{reason}"
    );
}

#[tokio::test]
async fn unrestricted_sandboxes_never_reach_internal_addresses_and_strangers_are_refused() {
    let up = upstream().await;
    let context = SandboxContext {
        policy: HostPolicy::new(&networking(serde_json::json!({"type": "unrestricted"})), &[]),
        credentials: vec![],
    };
    // The port is open, and the operator opened nothing: the address alone refuses it.
    let port = up.port();
    let proxy = start(vec![("open", context)], |p| p.walls.ports.push(port))
        .await
        .addr;
    let refused = client(proxy, "open", None)
        .get(format!("http://127.0.0.1:{}/", up.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("127.0.0.1, an internal or private address, which sandboxes never reach")
    );

    let stranger = client(proxy, "open", Some("0".repeat(64)))
        .get("http://example.invalid/")
        .send()
        .await
        .unwrap();
    assert_eq!(stranger.status(), 407, "a wrong proxy password is no identity");
    let unknown = client(proxy, "gone", None)
        .get("http://example.invalid/")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 403, "a pod the directory does not know");
}

#[tokio::test]
async fn connect_tunnels_to_allowed_hosts_only() {
    let echo_addr = echo().await;
    let context = SandboxContext {
        policy: HostPolicy::new(
            &networking(
                serde_json::json!({"type": "limited", "allowedHosts": [format!("127.0.0.1:{}", echo_addr.port())]}),
            ),
            &[],
        ),
        credentials: vec![],
    };
    let proxy = start(vec![("sbx", context)], |p| p.walls = opening(&["127.0.0.1"]))
        .await
        .addr;
    let (status, mut tunnel) = connect(proxy, "sbx", &echo_addr.to_string()).await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(echoes(&mut tunnel, b"hello").await);

    let (status, _) = connect(proxy, "sbx", "127.0.0.1:1").await;
    assert!(
        status.starts_with("HTTP/1.1 403"),
        "a port the host list does not name: {status}"
    );
}

/// An HTTPS server for `localhost` with a self-signed certificate (returned as PEM), answering with the
/// Authorization header it received.
async fn https_upstream() -> (SocketAddr, String) {
    use hyper::{Response, body::Incoming, service::service_fn};
    use hyper_util::rt::TokioIo;
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_pem = certified.cert.pem();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![certified.cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
            )
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(|req: hyper::Request<Incoming>| async move {
                    let auth = req
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_owned();
                    Ok::<_, std::convert::Infallible>(Response::new(http_body_util::Full::new(
                        bytes::Bytes::from(format!("tls auth={auth}")),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, cert_pem)
}

#[tokio::test]
async fn https_to_a_credentials_host_is_intercepted_and_gets_the_real_value() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (up, upstream_cert) = https_upstream().await;
    // The installation's egress CA (the operator makes one the same way).
    let ca_key_pair = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let (ca_cert, ca_key) = (
        ca_params.self_signed(&ca_key_pair).unwrap().pem(),
        ca_key_pair.serialize_pem(),
    );
    let interceptor =
        corral_egress::tls::Interceptor::new(&ca_cert, &ca_key, Some(upstream_cert.as_bytes())).unwrap();
    let context = SandboxContext {
        policy: HostPolicy::new(
            &networking(
                serde_json::json!({"type": "limited", "allowedHosts": [format!("localhost:{}", up.port())]}),
            ),
            &[],
        ),
        credentials: vec![credential(&["localhost"], false)],
    };
    let proxy_addr = start(vec![("sbx", context)], |p| {
        p.walls = opening(&["localhost"]);
        p.interceptor = Some(Arc::new(interceptor));
    })
    .await
    .addr;

    // The sandbox trusts the egress CA (and only it, here): the leaf the proxy presents must chain to it.
    let password = corral_api::egress::proxy_password(common::KEY, "team", "sbx");
    let client = reqwest::Client::builder()
        .proxy(
            reqwest::Proxy::all(format!("http://{proxy_addr}"))
                .unwrap()
                .basic_auth("team.sbx", &password),
        )
        .tls_certs_only([reqwest::Certificate::from_pem(ca_cert.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let placeholder = corral_api::egress::placeholder("vcrd-1");
    let reply = client
        .get(format!("https://localhost:{}/secure", up.port()))
        .header("Authorization", format!("Bearer {placeholder}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(reply, "tls auth=Bearer s3cret-value");
}

#[tokio::test]
async fn a_repository_token_is_added_for_its_repository_only() {
    let up = upstream().await;
    let allowed = format!("127.0.0.1:{}", up.port());
    let grant = serde_json::json!({
        "type": "git_repository", "url": format!("http://{allowed}/o/r.git"), "token": "ghp_s3cret",
    });
    let context = SandboxContext {
        policy: HostPolicy::new(
            &networking(serde_json::json!({"type": "limited", "allowedHosts": [allowed]})),
            &[],
        ),
        credentials: vec![Credential::from_auth("repo-0", &serde_json::to_vec(&grant).unwrap()).unwrap()],
    };
    let proxy = start(vec![("sbx", context)], |p| p.walls = opening(&["127.0.0.1"]))
        .await
        .addr;
    let c = client(proxy, "sbx", None);
    let expected = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode("x-access-token:ghp_s3cret")
    };

    let clone = c
        .get(format!(
            "http://{allowed}/o/r.git/info/refs?service=git-upload-pack"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        clone.text().await.unwrap(),
        format!("auth=Basic {expected} body=")
    );
    // The sandbox cannot swap in a token of its own for the repository's.
    let push = c
        .post(format!("http://{allowed}/o/r.git/git-receive-pack"))
        .header("Authorization", "Basic bWluZTptaW5l")
        .body("pack")
        .send()
        .await
        .unwrap();
    assert_eq!(
        push.text().await.unwrap(),
        format!("auth=Basic {expected} body=pack")
    );
    // Another repository of the same host gets nothing, and neither does a path that climbs out.
    for path in ["/o/other.git/info/refs", "/o/r.git/%2e%2e%2fother/info/refs"] {
        let other = c.get(format!("http://{allowed}{path}")).send().await.unwrap();
        assert_eq!(other.text().await.unwrap(), "auth=- body=", "{path}");
    }
    // Only git's own requests get it: not a TRACE that would echo it, nor another endpoint of the repository.
    let trace = c
        .request(
            reqwest::Method::TRACE,
            format!("http://{allowed}/o/r.git/info/refs?service=git-upload-pack"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(trace.text().await.unwrap(), "auth=- body=");
    let raw = c
        .get(format!("http://{allowed}/o/r.git/raw/main/README"))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.text().await.unwrap(), "auth=- body=");
    // The daemon is told of no placeholder for it.
    assert_eq!(placeholders_of_sbx(proxy).await, "{}");
}
