//! The proxy itself: authenticates each sandbox by its proxy identity, checks the destination against the
//! sandbox's rules, and then either tunnels (`CONNECT`, for HTTPS) or forwards a plain HTTP request with the
//! session's credential placeholders replaced by their values. Refusals are `403` responses whose text says why,
//! so the agent (and the model) can read them.

use std::{net::SocketAddr, sync::Arc};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, combinators::BoxBody};
use hyper::{
    Method, Request, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderMap, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::{
    credentials::{Credential, substitute, substitute_bytes},
    directory::Directory,
    metrics::Metrics,
    policy::{Verdict, check_host, is_internal},
};

/// Where a sandbox daemon asks (with its pod's proxy identity, in origin form) for the variables its shell gets:
/// each credential's `secret_name` with the placeholder value. Values are never part of the answer.
pub const PLACEHOLDERS_PATH: &str = "/.corral/placeholders";

fn placeholders(credentials: &[Credential]) -> Response<Body> {
    let map: std::collections::BTreeMap<&str, &str> = credentials
        .iter()
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

/// The largest request body the proxy rewrites (bodies with placeholders to substitute are read whole).
const MAX_REWRITTEN_BODY: usize = 16 * 1024 * 1024;

type Body = BoxBody<Bytes, hyper::Error>;

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
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
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

impl<D: Directory> Proxy<D> {
    /// Serves proxy clients from `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let proxy = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, std::convert::Infallible>(proxy.handle(req).await) }
                });
                let served = hyper::server::conn::http1::Builder::new()
                    .preserve_header_case(true)
                    .title_case_headers(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "client connection ended with an error");
                }
            });
        }
    }

    fn deny(&self, who: &str, target: &str, reason: &str) -> Response<Body> {
        self.metrics.denied();
        tracing::info!(sandbox = who, target, reason, "egress refused");
        text(StatusCode::FORBIDDEN, reason)
    }

    /// Answers one proxy request.
    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
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
        let named = match check_host(&context.policy, &host, port) {
            Verdict::Deny(reason) => return self.deny(&who, &target, &reason),
            Verdict::Allow { named } => named,
        };
        let addresses: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), port)).await {
            Ok(found) => found.collect(),
            Err(e) => return text(StatusCode::BAD_GATEWAY, &format!("cannot resolve {host}: {e}")),
        };
        if addresses.is_empty() {
            return text(StatusCode::BAD_GATEWAY, &format!("{host} has no address"));
        }
        if !named && addresses.iter().any(|a| is_internal(a.ip())) {
            return self.deny(
                &who,
                &target,
                &format!(
                    "{host} resolves to a cluster-internal or private address, which sandboxes never reach"
                ),
            );
        }
        // Connect to the addresses that were checked, not to a second resolution's.
        let upstream = match TcpStream::connect(&addresses[..]).await {
            Ok(s) => s,
            Err(e) => {
                return text(
                    StatusCode::BAD_GATEWAY,
                    &format!("cannot connect to {target}: {e}"),
                );
            }
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
            let bound: Vec<Credential> = bound.into_iter().cloned().collect();
            return intercept(req, interceptor, host, addresses, bound);
        }
        if req.method() == Method::CONNECT {
            tracing::debug!(sandbox = %who, %target, "tunnel");
            tokio::spawn(async move {
                match hyper::upgrade::on(req).await {
                    Ok(upgraded) => {
                        let mut client = TokioIo::new(upgraded);
                        let mut upstream = upstream;
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "tunnel upgrade failed"),
                }
            });
            return Response::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed(),
            );
        }
        match forward(req, TokioIo::new(upstream), &bound).await {
            Ok(response) => response,
            Err(message) => text(StatusCode::BAD_GATEWAY, &message),
        }
    }
}

/// Answers `CONNECT` with 200 and serves the tunnel as TLS with a leaf certificate for `host`: each request inside
/// goes to the host over a new TLS connection, with the bound credentials substituted.
fn intercept(
    req: Request<Incoming>,
    interceptor: Arc<crate::tls::Interceptor>,
    host: String,
    addresses: Vec<SocketAddr>,
    bound: Vec<Credential>,
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
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => return tracing::debug!(error = %e, "tunnel upgrade failed"),
        };
        let tls = match tokio_rustls::TlsAcceptor::from(server_config)
            .accept(TokioIo::new(upgraded))
            .await
        {
            Ok(t) => t,
            Err(e) => {
                return tracing::info!(%host, error = %e, "the sandbox refused the interception certificate");
            }
        };
        let bound = Arc::new(bound);
        let service = service_fn(move |req: Request<Incoming>| {
            let (interceptor, host, addresses, bound) = (
                interceptor.clone(),
                host.clone(),
                addresses.clone(),
                bound.clone(),
            );
            async move {
                let refs: Vec<&Credential> = bound.iter().collect();
                let response = match connect_tls(&interceptor, &host, &addresses).await {
                    Ok(upstream) => match forward(req, TokioIo::new(upstream), &refs).await {
                        Ok(r) => r,
                        Err(message) => text(StatusCode::BAD_GATEWAY, &message),
                    },
                    Err(message) => text(StatusCode::BAD_GATEWAY, &message),
                };
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        if let Err(e) = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tls), service)
            .await
        {
            tracing::debug!(error = %e, "intercepted connection ended with an error");
        }
    });
    Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    )
}

async fn connect_tls(
    interceptor: &crate::tls::Interceptor,
    host: &str,
    addresses: &[SocketAddr],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let tcp = TcpStream::connect(addresses)
        .await
        .map_err(|e| format!("cannot connect to {host}: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host} is not a TLS server name: {e}"))?;
    interceptor
        .connector()
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {host} failed: {e}"))
}

/// Sends `req` (in origin form, credentials substituted) over `upstream` and returns the response.
async fn forward<T>(
    req: Request<Incoming>,
    upstream: TokioIo<T>,
    bound: &[&Credential],
) -> Result<Response<Body>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
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
    let (mut sender, connection) = hyper::client::conn::http1::handshake(upstream)
        .await
        .map_err(|e| format!("upstream handshake: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "upstream connection ended with an error");
        }
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("upstream request: {e}"))?;
    Ok(response.map(|b| b.boxed()))
}
