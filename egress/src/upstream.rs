//! The upstream half of the proxy: connecting to the checked addresses within the connect timeout, tunnelling
//! `CONNECT`, intercepting TLS for hosts a credential is bound to, and forwarding plain HTTP requests with the bound
//! credentials substituted. Tunnels and exchanges close when no byte moves for the idle timeout.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{
    credentials::{Credential, substitute, substitute_bytes},
    idle::Activity,
    limits::{Connection, Limits},
    metrics::{Limit, Metrics},
    tls::Interceptor,
};

/// The body of the proxy's responses.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// The largest request body the proxy rewrites (bodies with placeholders to substitute are read whole).
const MAX_REWRITTEN_BODY: usize = 16 * 1024 * 1024;

/// Headers that concern one connection, never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
];

/// A text response of the proxy: `corral egress proxy: <message>`.
pub fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("corral egress proxy: {message}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// An empty `200`, the answer to a `CONNECT` that became a tunnel.
fn tunnel_open() -> Response<Body> {
    Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    )
}

/// What the upstream side needs from the proxy.
#[derive(Clone)]
pub struct Upstream {
    /// Timeouts.
    pub limits: Limits,
    /// Counters.
    pub metrics: Metrics,
}

impl Upstream {
    /// The refusal of a destination that took longer than the connect timeout.
    pub fn connect_timed_out(&self, target: &str) -> Response<Body> {
        self.metrics.limited(Limit::ConnectTimeout);
        text(
            StatusCode::GATEWAY_TIMEOUT,
            &format!(
                "connecting to {target} timed out after {}s",
                self.limits.connect_timeout.as_secs_f64()
            ),
        )
    }

    /// A TCP connection to one of `addresses` (already checked), within the connect timeout.
    pub async fn connect(&self, target: &str, addresses: &[SocketAddr]) -> Result<TcpStream, Response<Body>> {
        match tokio::time::timeout(self.limits.connect_timeout, TcpStream::connect(addresses)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(text(
                StatusCode::BAD_GATEWAY,
                &format!("cannot connect to {target}: {e}"),
            )),
            Err(_) => Err(self.connect_timed_out(target)),
        }
    }

    /// Answers `CONNECT` with 200 and copies bytes both ways until either side closes or the tunnel goes idle.
    /// `connection` counts against the limits until the tunnel ends.
    pub fn tunnel(
        &self,
        req: Request<Incoming>,
        upstream: TcpStream,
        connection: Arc<Connection>,
    ) -> Response<Body> {
        let (idle, metrics) = (self.limits.idle_timeout, self.metrics.clone());
        tokio::spawn(async move {
            let _counted = connection;
            let upgraded = match hyper::upgrade::on(req).await {
                Ok(upgraded) => upgraded,
                Err(e) => return tracing::debug!(error = %e, "tunnel upgrade failed"),
            };
            let activity = Activity::default();
            let mut client = TokioIo::new(upgraded);
            let mut upstream = activity.track(upstream);
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                () = activity.idle(idle) => {
                    metrics.limited(Limit::IdleTimeout);
                    tracing::debug!("tunnel closed after {idle:?} without traffic");
                }
            }
        });
        tunnel_open()
    }

    /// Answers `CONNECT` with 200 and serves the tunnel as TLS with a leaf certificate for `host`: each request
    /// inside goes to the host over a new TLS connection, with the bound credentials substituted.
    pub fn intercept(
        &self,
        req: Request<Incoming>,
        interceptor: Arc<Interceptor>,
        host: String,
        addresses: Vec<SocketAddr>,
        bound: Vec<Credential>,
        connection: Arc<Connection>,
    ) -> Response<Body> {
        let server_config = match interceptor.server_config(&host) {
            Ok(c) => c,
            Err(e) => {
                return text(
                    StatusCode::BAD_GATEWAY,
                    &format!("cannot intercept {host}: {e:#}"),
                );
            }
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _counted = connection;
            let upgraded = match hyper::upgrade::on(req).await {
                Ok(u) => u,
                Err(e) => return tracing::debug!(error = %e, "tunnel upgrade failed"),
            };
            let handshake = tokio_rustls::TlsAcceptor::from(server_config).accept(TokioIo::new(upgraded));
            let tls = match tokio::time::timeout(this.limits.header_read_timeout, handshake).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    return tracing::info!(%host, error = %e, "the sandbox refused the interception certificate");
                }
                Err(_) => {
                    this.metrics.limited(Limit::HeaderTimeout);
                    return tracing::debug!(%host, "the sandbox did not finish the TLS handshake in time");
                }
            };
            let (bound, inner) = (Arc::new(bound), this.clone());
            let service = service_fn(move |req: Request<Incoming>| {
                let (this, interceptor, host, addresses, bound) = (
                    inner.clone(),
                    interceptor.clone(),
                    host.clone(),
                    addresses.clone(),
                    bound.clone(),
                );
                async move {
                    let refs: Vec<&Credential> = bound.iter().collect();
                    let response = match this.connect_tls(&interceptor, &host, &addresses).await {
                        Ok(upstream) => this.forward(req, upstream, &refs, &host).await,
                        Err(response) => response,
                    };
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let served = server(&this.limits)
                .serve_connection(TokioIo::new(tls), service)
                .await;
            if let Err(e) = served {
                if e.is_timeout() {
                    this.metrics.limited(Limit::HeaderTimeout);
                }
                tracing::debug!(error = %e, "intercepted connection ended with an error");
            }
        });
        tunnel_open()
    }

    async fn connect_tls(
        &self,
        interceptor: &Interceptor,
        host: &str,
        addresses: &[SocketAddr],
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, Response<Body>> {
        let tcp = self.connect(host, addresses).await?;
        let name = rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
            text(
                StatusCode::BAD_GATEWAY,
                &format!("{host} is not a TLS server name: {e}"),
            )
        })?;
        match tokio::time::timeout(
            self.limits.connect_timeout,
            interceptor.connector().connect(name, tcp),
        )
        .await
        {
            Ok(Ok(tls)) => Ok(tls),
            Ok(Err(e)) => Err(text(
                StatusCode::BAD_GATEWAY,
                &format!("TLS with {host} failed: {e}"),
            )),
            Err(_) => Err(self.connect_timed_out(host)),
        }
    }

    /// Sends `req` (in origin form, credentials substituted) over `upstream` and returns the response, or the
    /// proxy's error response.
    pub async fn forward<T>(
        &self,
        req: Request<Incoming>,
        upstream: T,
        bound: &[&Credential],
        host: &str,
    ) -> Response<Body>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let request = match rewrite(req, bound).await {
            Ok(r) => r,
            Err(message) => return text(StatusCode::BAD_GATEWAY, &message),
        };
        let activity = Activity::default();
        let (mut sender, connection) =
            match hyper::client::conn::http1::handshake(TokioIo::new(activity.track(upstream))).await {
                Ok(pair) => pair,
                Err(e) => return text(StatusCode::BAD_GATEWAY, &format!("upstream handshake: {e}")),
            };
        let idled = Arc::new(AtomicBool::new(false));
        let (idle, flag, metrics) = (self.limits.idle_timeout, idled.clone(), self.metrics.clone());
        tokio::spawn(async move {
            tokio::select! {
                done = connection => if let Err(e) = done {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                },
                () = activity.idle(idle) => {
                    flag.store(true, Ordering::Relaxed);
                    metrics.limited(Limit::IdleTimeout);
                }
            }
        });
        match sender.send_request(request).await {
            Ok(response) => response.map(|b| b.boxed()),
            Err(_) if idled.load(Ordering::Relaxed) => text(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "{host} sent nothing for {}s; the exchange was closed",
                    idle.as_secs_f64()
                ),
            ),
            Err(e) => text(StatusCode::BAD_GATEWAY, &format!("upstream request: {e}")),
        }
    }
}

/// The HTTP/1 server settings of client connections (and of intercepted ones): the header-read timeout, which also
/// closes kept-alive connections that stay idle that long.
pub fn server(limits: &Limits) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .preserve_header_case(true)
        .title_case_headers(true);
    builder
}

/// `req` in origin form without hop-by-hop headers, the bound credentials substituted.
async fn rewrite(req: Request<Incoming>, bound: &[&Credential]) -> Result<Request<Body>, String> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut builder = Request::builder()
        .method(parts.method.clone())
        .uri(path)
        .version(hyper::Version::HTTP_11);
    let in_headers: Vec<&Credential> = bound.iter().copied().filter(|c| c.header).collect();
    for (name, value) in &parts.headers {
        if HOP_BY_HOP.contains(&name.as_str()) {
            continue;
        }
        let value = match value.to_str() {
            Ok(v) if !in_headers.is_empty() => HeaderValue::from_str(&substitute(v, &in_headers))
                .map_err(|e| format!("bad header value: {e}"))?,
            _ => value.clone(),
        };
        builder = builder.header(name, value);
    }
    // A repository token is added by the proxy itself, replacing whatever the sandbox sent.
    let repository = bound
        .iter()
        .filter_map(|c| c.repository.as_ref())
        .find(|r| r.covers(parts.method.as_str(), parts.uri.path(), parts.uri.query()));
    if let Some(auth) = repository {
        let value = HeaderValue::from_str(&auth.header).map_err(|e| format!("bad token: {e}"))?;
        let host = HeaderValue::from_str(&auth.authority).map_err(|e| format!("bad host: {e}"))?;
        match builder.headers_mut() {
            Some(headers) => {
                headers.insert(header::AUTHORIZATION, value);
                headers.insert(header::HOST, host);
            }
            None => return Err("building the request".to_owned()),
        }
    }
    let in_body: Vec<&Credential> = bound.iter().copied().filter(|c| c.body).collect();
    let body: Body = if in_body.is_empty() {
        body.boxed()
    } else {
        let whole = Limited::new(body, MAX_REWRITTEN_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the request body: {e}"))?
            .to_bytes();
        Full::new(Bytes::from(substitute_bytes(&whole, &in_body)))
            .map_err(|never| match never {})
            .boxed()
    };
    let mut request = builder
        .body(body)
        .map_err(|e| format!("building the request: {e}"))?;
    if !in_body.is_empty() {
        // The body may have changed length.
        request.headers_mut().remove(header::CONTENT_LENGTH);
    }
    Ok(request)
}
