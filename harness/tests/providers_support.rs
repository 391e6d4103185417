//! A loopback HTTP server that answers model requests with recorded responses, for the provider tests.
//!
//! Included by the provider test files with `#[path]`; compiled alone it holds no tests.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use corral_harness::providers::{EventStream, HttpSettings, ProviderError, ProviderEvent, RetryPolicy};
use futures::StreamExt;

/// One recorded response: status, headers, and the body as the chunks it is written in.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub chunks: Vec<Vec<u8>>,
    /// Keep the connection open, sending nothing more, after the chunks.
    pub hang: bool,
}

impl Recorded {
    /// A 200 `text/event-stream` whose body is `body` cut into pieces of `piece` bytes (splitting lines, JSON and
    /// multi-byte characters anywhere, as a network may).
    pub fn sse(body: &str, piece: usize) -> Self {
        Self {
            status: 200,
            headers: vec![
                ("content-type", "text/event-stream".into()),
                ("request-id", "req_test".into()),
            ],
            chunks: body.as_bytes().chunks(piece.max(1)).map(<[u8]>::to_vec).collect(),
            hang: false,
        }
    }

    /// An error status with a body.
    pub fn error(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![
                ("content-type", "application/json".into()),
                ("request-id", "req_err".into()),
            ],
            chunks: vec![body.as_bytes().to_vec()],
            hang: false,
        }
    }

    /// Keeps the connection open after the body, as a stalled server does.
    pub fn hanging(mut self) -> Self {
        self.hang = true;
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A request the server received.
#[derive(Clone, Debug)]
pub struct Captured {
    pub path: String,
    pub headers: HeaderMap,
    pub body: serde_json::Value,
}

impl Captured {
    /// A header's value, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// The running server.
pub struct Server {
    pub url: String,
    requests: Arc<Mutex<Vec<Captured>>>,
}

impl Server {
    /// Starts a server on 127.0.0.1 with an OS-chosen port that answers each request with the next recording
    /// (a 500 saying so when they run out).
    pub async fn start(recordings: Vec<Recorded>) -> Self {
        let queue = Arc::new(Mutex::new(VecDeque::from(recordings)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let queue = queue.clone();
            let seen = seen.clone();
            async move {
                let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                seen.lock().unwrap().push(Captured {
                    path: uri.path().to_owned(),
                    headers,
                    body,
                });
                let Some(recorded) = queue.lock().unwrap().pop_front() else {
                    return Response::builder()
                        .status(StatusCode::INTERNAL_SERVER_ERROR)
                        .header("x-should-retry", "false")
                        .body(Body::from("no more recorded responses"))
                        .unwrap();
                };
                let mut response = Response::builder().status(recorded.status);
                for (name, value) in &recorded.headers {
                    response = response.header(*name, value);
                }
                let chunks = futures::stream::iter(recorded.chunks.into_iter().map(Ok::<_, std::io::Error>));
                let body = if recorded.hang {
                    Body::from_stream(chunks.chain(futures::stream::pending()))
                } else {
                    Body::from_stream(chunks)
                };
                response.body(body).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, requests }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }
}

/// Fast retries so tests do not wait: two retries, millisecond backoff.
pub fn fast_http() -> HttpSettings {
    HttpSettings {
        retry: RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        ..HttpSettings::default()
    }
}

/// Every item of a stream, in order.
pub async fn drain(mut stream: EventStream) -> Vec<Result<ProviderEvent, ProviderError>> {
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    items
}

/// The events before the first error, and that error.
pub async fn events_then_error(stream: EventStream) -> (Vec<ProviderEvent>, Option<ProviderError>) {
    let mut events = Vec::new();
    for item in drain(stream).await {
        match item {
            Ok(event) => events.push(event),
            Err(err) => return (events, Some(err)),
        }
    }
    (events, None)
}

/// A base URL on 127.0.0.1 where nothing listens.
pub async fn closed_port_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}
