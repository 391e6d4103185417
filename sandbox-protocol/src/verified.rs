//! A connector layer for the daemon's HTTP client: every new TCP connection asks the daemon at its far end which
//! token it accepts (`GET /v1/identity`, by digest) before the connection joins the client's pool. A token-carrying
//! request is only ever written to such a connection, so the identity costs one round trip per connection, not per
//! call, and an address another pod took over is checked again: the old pod's connections die with it, and a new
//! connection is checked before it carries anything.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, StatusCode, header};

use crate::wire::{DaemonIdentity, IDENTITY_PATH};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The largest identity answer read (a digest in a small JSON object).
const MAX_IDENTITY_BYTES: usize = 4096;

/// Why a new connection was not let into the pool.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The daemon there accepts another token, or did not say which.
    #[error("the daemon answering there is not this sandbox's ({0}); the token was not sent")]
    Impostor(String),
    /// The connection broke while asking.
    #[error("asking the daemon for its identity: {0}")]
    Transport(#[from] hyper::Error),
}

/// Wraps a connector so that each connection it makes is checked against `token_sha256` first.
#[derive(Clone, Debug)]
pub struct VerifyLayer {
    expected: Arc<Expected>,
}

#[derive(Debug)]
struct Expected {
    /// The `Host` of the identity request (the daemon's `host:port`).
    authority: String,
    token_sha256: String,
}

impl VerifyLayer {
    /// A layer for connections to `authority` (`host:port`) whose daemon must accept the token with this digest.
    pub fn new(authority: impl Into<String>, token_sha256: impl Into<String>) -> Self {
        Self {
            expected: Arc::new(Expected {
                authority: authority.into(),
                token_sha256: token_sha256.into(),
            }),
        }
    }
}

impl<S> tower_layer::Layer<S> for VerifyLayer {
    type Service = Verify<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Verify {
            inner,
            expected: self.expected.clone(),
        }
    }
}

/// The connector service of [`VerifyLayer`].
#[derive(Clone, Debug)]
pub struct Verify<S> {
    inner: S,
    expected: Arc<Expected>,
}

impl<S, R> tower_service::Service<R> for Verify<S>
where
    S: tower_service::Service<R> + Clone + Send + 'static,
    S::Response: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // The service that was polled ready makes this call; a clone stays for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let connecting = inner.call(request);
        let expected = self.expected.clone();
        Box::pin(async move {
            let conn = connecting.await.map_err(Into::into)?;
            Ok(verify(conn, &expected).await?)
        })
    }
}

/// Asks the daemon on `io` for its identity and hands `io` back, ready for the pool, when it is the expected one.
async fn verify<T>(io: T, expected: &Expected) -> Result<T, IdentityError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<T, Empty<Bytes>>(io).await?;
    let mut connection = std::pin::pin!(connection.without_shutdown());
    let request = Request::get(IDENTITY_PATH)
        .header(header::HOST, &expected.authority)
        .body(Empty::new())
        .map_err(|e| IdentityError::Impostor(format!("cannot build the identity request: {e}")))?;
    let asked = async {
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_IDENTITY_BYTES)
            .collect()
            .await
            .map_err(|e| IdentityError::Impostor(format!("unreadable identity answer: {e}")))?
            .to_bytes();
        Ok::<_, IdentityError>((status, body))
    };
    // The connection is driven while the request is answered; it ends (handing the IO back) once the sender is gone.
    let (status, body) = tokio::select! {
        answer = asked => answer?,
        ended = &mut connection => {
            return Err(match ended {
                Ok(_) => IdentityError::Impostor("the connection closed before the identity answer".into()),
                Err(e) => e.into(),
            });
        }
    };
    drop(sender);
    let parts = connection.await?;
    check(status, &body, &expected.token_sha256)?;
    if !parts.read_buf.is_empty() {
        return Err(IdentityError::Impostor(
            "it sent more than the identity answer".into(),
        ));
    }
    Ok(parts.io)
}

/// Whether an identity answer names the expected digest.
fn check(status: StatusCode, body: &[u8], token_sha256: &str) -> Result<(), IdentityError> {
    if status != StatusCode::OK {
        return Err(IdentityError::Impostor(format!(
            "it answered {} to the identity check",
            status.as_u16()
        )));
    }
    let identity: DaemonIdentity = serde_json::from_slice(body)
        .map_err(|e| IdentityError::Impostor(format!("unreadable identity answer: {e}")))?;
    if identity.token_sha256 == token_sha256 {
        Ok(())
    } else {
        Err(IdentityError::Impostor("it accepts another token".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_expected_digest_passes() {
        let ok = br#"{"token_sha256":"abc"}"#;
        assert!(check(StatusCode::OK, ok, "abc").is_ok());
        for (status, body) in [
            (StatusCode::OK, &br#"{"token_sha256":"abd"}"#[..]),
            (StatusCode::NOT_FOUND, &ok[..]),
            (StatusCode::OK, b"not json"),
            (StatusCode::OK, b"{}"),
        ] {
            let err = check(status, body, "abc").unwrap_err();
            assert!(err.to_string().contains("not this sandbox's"), "{err}");
        }
    }
}
