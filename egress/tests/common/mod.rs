//! What the proxy's loopback tests share: a real upstream that reports what it received, a proxy on a free port
//! with given sandboxes, walls and limits, and clients speaking as a sandbox.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use axum::{Router, http::HeaderMap, routing::any};
use base64::Engine;
use corral_api::environment::Networking;
use corral_egress::{
    directory::{SandboxContext, StaticDirectory},
    limits::Limits,
    metrics::Metrics,
    policy::HostPolicy,
    proxy::Proxy,
    walls::Walls,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// The key of proxy identities in the tests.
pub const KEY: &[u8] = b"a proxy key of the test, 32 bytes";

/// An upstream on 127.0.0.1 that answers with the Authorization header and body it received.
pub async fn upstream() -> SocketAddr {
    let app = Router::new().route(
        "/{*path}",
        any(|headers: HeaderMap, body: String| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            format!("auth={auth} body={body}")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A raw TCP echo server on 127.0.0.1 (a stand-in for a TLS host: a tunnel carries bytes unchanged).
pub async fn echo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// An Environment's networking from its JSON.
pub fn networking(json: serde_json::Value) -> Networking {
    serde_json::from_value(json).unwrap()
}

/// The context of a sandbox with `networking` and no credentials.
pub fn sandbox(json: serde_json::Value) -> SandboxContext {
    SandboxContext {
        policy: HostPolicy::new(&networking(json), &[]),
        credentials: vec![],
    }
}

/// A running proxy and its metrics.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its metrics (shared with it).
    pub metrics: Metrics,
}

/// A proxy on 127.0.0.1 serving sandboxes `team/<pod>`, shaped by `configure`.
pub async fn start(
    sandboxes: Vec<(&str, SandboxContext)>,
    configure: impl FnOnce(&mut Proxy<StaticDirectory>),
) -> Running {
    let map: BTreeMap<(String, String), SandboxContext> = sandboxes
        .into_iter()
        .map(|(pod, c)| (("team".to_owned(), pod.to_owned()), c))
        .collect();
    let metrics = Metrics::default();
    let mut proxy = Proxy::new(StaticDirectory(Arc::new(map)), KEY.to_vec(), metrics.clone());
    configure(&mut proxy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(Arc::new(proxy).serve(listener));
    Running { addr, metrics }
}

/// Walls that open `hosts` (the operator's allow-list).
pub fn opening(hosts: &[&str]) -> Walls {
    Walls {
        internal_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        ..Walls::default()
    }
}

/// Limits changed by `change` from the defaults.
pub fn limits(change: impl FnOnce(&mut Limits)) -> Limits {
    let mut limits = Limits::default();
    change(&mut limits);
    limits
}

/// An HTTP client speaking through the proxy as sandbox `team/<pod>`.
pub fn client(proxy: SocketAddr, pod: &str, password: Option<String>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let password = password.unwrap_or_else(|| corral_api::egress::proxy_password(KEY, "team", pod));
    let proxy = reqwest::Proxy::all(format!("http://{proxy}"))
        .unwrap()
        .basic_auth(&corral_api::egress::proxy_user("team", pod), &password);
    reqwest::Client::builder().proxy(proxy).build().unwrap()
}

/// The `Proxy-Authorization` value of sandbox `team/<pod>`.
pub fn proxy_auth(pod: &str) -> String {
    let password = corral_api::egress::proxy_password(KEY, "team", pod);
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("team.{pod}:{password}"));
    format!("Basic {encoded}")
}

/// Reads a response head (up to the blank line) from `stream`.
pub async fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).await.unwrap() == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads whatever `stream` sends until it closes.
pub async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let _ = stream.read_to_end(&mut all).await;
    String::from_utf8_lossy(&all).into_owned()
}

/// Sends `CONNECT target` as sandbox `team/<pod>` and returns the response head and the stream (the tunnel when
/// the head is `200`).
pub async fn connect(proxy: SocketAddr, pod: &str, target: &str) -> (String, TcpStream) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let auth = proxy_auth(pod);
    let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: {auth}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    (head, s)
}

/// Whether `tunnel` carries `bytes` to an echo server and back.
pub async fn echoes(tunnel: &mut TcpStream, bytes: &[u8]) -> bool {
    if tunnel.write_all(bytes).await.is_err() {
        return false;
    }
    let mut back = vec![0u8; bytes.len()];
    tunnel.read_exact(&mut back).await.is_ok() && back == bytes
}
