//! The proxy itself: authenticates each sandbox by its proxy identity, counts its connections against the limits,
//! checks the destination against the sandbox's rules and the operator's walls (by name, by port, and then on the
//! resolved addresses, which are the ones it connects to), and then tunnels (`CONNECT`), intercepts (HTTPS to a
//! host a credential is bound to) or forwards a plain HTTP request. Refusals are responses whose text says why, so
//! the agent (and the model) can read them: `403` for policy, `429`/`503` for connection caps, `408` for a slow
//! request head, `504` for timeouts upstream.

use std::{io::Write, net::SocketAddr, os::fd::AsFd, sync::Arc};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderMap, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::{
    io::AsyncWriteExt,
    net::{TcpListener, TcpStream},
};

use crate::{
    credentials::Credential,
    directory::Directory,
    limits::{AtCap, Connection, Connections, Limits},
    metrics::{Limit, Metrics},
    policy::{Verdict, check_host},
    upstream::{Body, Upstream, server, text},
    walls::Walls,
};

/// Where a sandbox daemon asks (with its pod's proxy identity, in origin form) for the variables its shell gets:
/// each credential's `secret_name` with the placeholder value. Values are never part of the answer.
pub const PLACEHOLDERS_PATH: &str = "/.corral/placeholders";

fn placeholders(credentials: &[Credential]) -> Response<Body> {
    let map: std::collections::BTreeMap<&str, &str> = credentials
        .iter()
        .filter(|c| c.repository.is_none())
        .map(|c| (c.env_name.as_str(), c.placeholder.as_str()))
        .collect();
    let mut response = Response::new(
        Full::new(Bytes::from(serde_json::to_vec(&map).unwrap_or_default()))
            .map_err(|never| match never {})
            .boxed(),
    );
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The proxy's shared state.
pub struct Proxy<D> {
    /// Sandbox lookup.
    pub directory: D,
    /// The key proxy identities are checked with.
    pub key: Vec<u8>,
    /// Counters.
    pub metrics: Metrics,
    /// TLS interception for hosts a credential is bound to; `None` tunnels every `CONNECT`.
    pub interceptor: Option<Arc<crate::tls::Interceptor>>,
    /// What no tenant opens: internal addresses, closed ports; and the operator's named internal hosts.
    pub walls: Walls,
    /// Connection caps and timeouts.
    pub limits: Limits,
}

impl<D> Proxy<D> {
    /// A proxy with the default walls and limits and no TLS interception.
    pub fn new(directory: D, key: Vec<u8>, metrics: Metrics) -> Self {
        Self {
            directory,
            key,
            metrics,
            interceptor: None,
            walls: Walls::default(),
            limits: Limits::default(),
        }
    }
}

fn identity(headers: &HeaderMap, key: &[u8]) -> Option<(String, String)> {
    let value = headers.get(header::PROXY_AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    corral_api::egress::verify_proxy_identity(key, user, password)
}

/// The destination of a proxy request: the `CONNECT` authority, or the absolute URI's host and port.
fn destination(req: &Request<Incoming>) -> Option<(String, u16)> {
    let uri = req.uri();
    let host = uri
        .host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let default_port = if req.method() == Method::CONNECT || uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    Some((host, uri.port_u16().unwrap_or(default_port)))
}

/// A whole HTTP/1.1 response written straight to a socket (for clients hyper does not serve).
fn raw_response(status: StatusCode, message: &str) -> Vec<u8> {
    let body = format!("corral egress proxy: {message}\n");
    format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes()
}

/// Answers a client over a connection cap with `response` and closes.
async fn refuse_connection(mut stream: TcpStream, response: Vec<u8>) {
    let write = async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), write).await;
}

impl<D: Directory> Proxy<D> {
    /// Serves proxy clients from `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        let connections = Connections::new(&self.limits, self.metrics.clone());
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let connection = match connections.accept(peer.ip()) {
                Ok(connection) => connection,
                Err(full) => {
                    tokio::spawn(refuse_connection(stream, self.refusal(full, peer)));
                    continue;
                }
            };
            tokio::spawn(self.clone().serve_connection(stream, peer, connection));
        }
    }

    async fn serve_connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        connection: Arc<Connection>,
    ) {
        // A second handle on the socket, to answer 408 once hyper gives up on a slow request head.
        let spare = stream
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(std::net::TcpStream::from);
        let (proxy, counted) = (self.clone(), connection.clone());
        let service = service_fn(move |req| {
            let (proxy, connection) = (proxy.clone(), counted.clone());
            async move { Ok::<_, std::convert::Infallible>(proxy.handle(req, connection).await) }
        });
        let served = server(&self.limits)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades()
            .await;
        drop(connection);
        match served {
            Err(e) if e.is_timeout() => {
                self.metrics.limited(Limit::HeaderTimeout);
                tracing::debug!(%peer, "no request head within the header-read timeout; closed");
                if let Some(mut spare) = spare {
                    let message = format!(
                        "no complete request within {}s; connection closed",
                        self.limits.header_read_timeout.as_secs_f64()
                    );
                    // The socket is non-blocking and idle: a short write goes out at once or not at all.
                    let _ = spare.write_all(&raw_response(StatusCode::REQUEST_TIMEOUT, &message));
                    let _ = spare.shutdown(std::net::Shutdown::Write);
                }
            }
            Err(e) => tracing::debug!(%peer, error = %e, "client connection ended with an error"),
            Ok(()) => {}
        }
    }

    /// The answer to a connection refused because the proxy (`503`) or its source address (`429`) is full.
    fn refusal(&self, full: AtCap, peer: SocketAddr) -> Vec<u8> {
        let (limit, status, message) = match full {
            AtCap::Proxy => (
                Limit::Connections,
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the proxy has {} connections open, its limit; retry shortly",
                    self.limits.max_connections
                ),
            ),
            AtCap::Source => (
                Limit::SourceConnections,
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{} has {} connections open through the proxy, its limit; close some and retry",
                    peer.ip(),
                    self.limits.max_connections_per_source
                ),
            ),
        };
        self.metrics.limited(limit);
        tracing::warn!(%peer, ?full, "connection cap reached; refused");
        raw_response(status, &message)
    }

    fn deny(&self, who: &str, target: &str, reason: &str) -> Response<Body> {
        self.metrics.denied();
        tracing::info!(sandbox = who, target, reason, "egress refused");
        text(StatusCode::FORBIDDEN, reason)
    }

    fn upstream(&self) -> Upstream {
        Upstream {
            limits: self.limits.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Answers one proxy request arriving on `connection`.
    pub async fn handle(&self, req: Request<Incoming>, connection: Arc<Connection>) -> Response<Body> {
        let Some((namespace, pod)) = identity(req.headers(), &self.key) else {
            let mut response = text(
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "this proxy serves Corral sandboxes only (no valid sandbox identity)",
            );
            response.headers_mut().insert(
                header::PROXY_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"corral-egress\""),
            );
            return response;
        };
        let who = format!("{namespace}/{pod}");
        if !connection.bind(&who) {
            self.metrics.limited(Limit::SandboxConnections);
            tracing::info!(sandbox = %who, "sandbox connection cap reached; refused");
            return text(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "this sandbox has {} connections open through the proxy, its limit; close some and retry",
                    self.limits.max_connections_per_sandbox
                ),
            );
        }
        let Some(context) = self.directory.sandbox(&namespace, &pod) else {
            return self.deny(
                &who,
                "-",
                "this sandbox is not known (yet); try again in a moment",
            );
        };
        if req.uri().host().is_none() && req.uri().path() == PLACEHOLDERS_PATH {
            return placeholders(&context.credentials);
        }
        let Some((host, port)) = destination(&req) else {
            return text(StatusCode::BAD_REQUEST, "the request names no destination host");
        };
        let target = format!("{host}:{port}");
        if let Verdict::Deny(reason) = check_host(&context.policy, &host, port) {
            return self.deny(&who, &target, &reason);
        }
        if let Some(reason) = self.walls.check_port(&context.policy, &host, port) {
            return self.deny(&who, &target, &reason);
        }
        let upstream = self.upstream();
        let resolved = tokio::time::timeout(
            self.limits.connect_timeout,
            tokio::net::lookup_host((host.clone(), port)),
        )
        .await;
        let addresses: Vec<SocketAddr> = match resolved {
            Ok(Ok(found)) => found.collect(),
            Ok(Err(e)) => return text(StatusCode::BAD_GATEWAY, &format!("cannot resolve {host}: {e}")),
            Err(_) => return upstream.connect_timed_out(&target),
        };
        if addresses.is_empty() {
            return text(StatusCode::BAD_GATEWAY, &format!("{host} has no address"));
        }
        // Every address is checked, and only checked addresses are connected to: a second resolution (DNS
        // rebinding) never decides where the connection goes.
        if let Some(reason) = self.walls.check_addresses(&host, port, &addresses) {
            return self.deny(&who, &target, &reason);
        }
        let stream = match upstream.connect(&target, &addresses).await {
            Ok(s) => s,
            Err(response) => return response,
        };
        self.metrics.allowed();
        let bound: Vec<&Credential> = context
            .credentials
            .iter()
            .filter(|c| c.applies_to(&host, port))
            .collect();
        if req.method() == Method::CONNECT
            && !bound.is_empty()
            && let Some(interceptor) = self.interceptor.clone()
        {
            tracing::debug!(sandbox = %who, %target, "intercepted tunnel (a credential is bound to the host)");
            // Intercepted requests open their own TLS connections to the checked addresses.
            drop(stream);
            let bound: Vec<Credential> = bound.into_iter().cloned().collect();
            return upstream.intercept(req, interceptor, host, addresses, bound, connection);
        }
        if req.method() == Method::CONNECT {
            tracing::debug!(sandbox = %who, %target, "tunnel");
            return upstream.tunnel(req, stream, connection);
        }
        upstream.forward(req, stream, &bound, &host).await
    }
}
