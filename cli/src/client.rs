//! The HTTP client of the gateway's API: authenticated JSON requests, the API's error envelope turned into
//! [`ApiError`], and list pages followed.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use crate::{
    config::Resolved,
    error::{ApiError, CliError, Result},
};

/// A client for one gateway and key.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

/// What a list returned: the objects, and the token of the next page when there is one.
#[derive(Debug, Default)]
pub struct Page {
    /// The objects.
    pub data: Vec<Value>,
    /// `next_page`, when more follow.
    pub next: Option<String>,
}

impl Client {
    /// A client for `resolved`.
    pub fn new(resolved: &Resolved) -> Result<Self> {
        // reqwest's rustls backend is built without a crypto provider (feature unification across the
        // workspace); install ring's once, before any client exists.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("corral-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CliError::Other(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: resolved.url.clone(),
            key: resolved.api_key.clone(),
        })
    }

    /// The gateway's base URL (no trailing slash).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (which starts with `/v1/`) with the key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// Sends a request and returns the JSON body of a success, or the API's error.
    pub async fn send(&self, req: RequestBuilder) -> Result<Value> {
        let res = self.execute(req).await?;
        let bytes = res.bytes().await.map_err(network)?;
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| CliError::Other(format!("the gateway answered something that is not JSON: {e}")))
    }

    /// Sends a request and returns the response of a success (for streams), or the API's error.
    /// A 429 (the request was not processed) is retried twice after its `retry-after` (at most 10 s).
    pub async fn execute(&self, req: RequestBuilder) -> Result<Response> {
        // A streaming body (an upload) cannot be copied for a retry: it is sent once.
        let Some(mut this) = req.try_clone() else {
            let res = req.send().await.map_err(|e| self.unreachable(&e))?;
            return if res.status().is_success() {
                Ok(res)
            } else {
                Err(CliError::Api(read_error(res).await))
            };
        };
        let mut attempt = 0;
        loop {
            let res = this.send().await.map_err(|e| self.unreachable(&e))?;
            if res.status().is_success() {
                return Ok(res);
            }
            if res.status() == StatusCode::TOO_MANY_REQUESTS
                && attempt < 2
                && let Some(wait) = retry_after(&res)
            {
                attempt += 1;
                tokio::time::sleep(wait).await;
                this = req
                    .try_clone()
                    .ok_or_else(|| CliError::Other("the request cannot be sent again".into()))?;
                continue;
            }
            return Err(CliError::Api(read_error(res).await));
        }
    }

    /// `GET path?query`.
    pub async fn get(&self, path: &str, query: &[(String, String)]) -> Result<Value> {
        self.send(self.request(Method::GET, path).query(query)).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    /// `POST path` without a body (archive).
    pub async fn post_empty(&self, path: &str) -> Result<Value> {
        self.send(self.request(Method::POST, path)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// Lists `path`, following `next_page` until `limit` objects (all when `None`) or the last page.
    pub async fn list(&self, path: &str, query: &[(String, String)], limit: Option<usize>) -> Result<Page> {
        let mut out = Page::default();
        let mut page: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            if let Some(p) = &page {
                q.push(("page".into(), p.clone()));
            }
            let body = self.get(path, &q).await?;
            let data = body
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| CliError::Other(format!("the gateway's list of {path} has no data array")))?;
            out.data.extend(data.iter().cloned());
            page = body
                .get("next_page")
                .and_then(Value::as_str)
                .filter(|p| !p.is_empty())
                .map(str::to_owned);
            if let Some(limit) = limit
                && out.data.len() >= limit
            {
                out.data.truncate(limit);
                out.next = page;
                return Ok(out);
            }
            if page.is_none() || data.is_empty() {
                return Ok(out);
            }
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> CliError {
        let mut msg = format!("cannot reach the gateway at {}: {e}", self.base);
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        CliError::Network(msg)
    }
}

/// How long a 429 asks to wait (`retry-after` in seconds; 1 s when absent), if at most 10 s.
fn retry_after(res: &Response) -> Option<Duration> {
    let secs = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    (secs <= 10).then(|| Duration::from_secs(secs))
}

fn network(e: reqwest::Error) -> CliError {
    CliError::Network(format!("reading the gateway's answer: {e}"))
}

/// Reads the error envelope of a failed response; an answer that is not the envelope (a proxy's HTML page)
/// still gives its status and first line.
pub async fn read_error(res: Response) -> ApiError {
    let status = res.status();
    let header_id = res
        .headers()
        .get("request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = res.bytes().await.unwrap_or_default();
    parse_error(status, header_id, &body)
}

/// The [`ApiError`] of a status, `request-id` header and body.
pub fn parse_error(status: StatusCode, header_id: Option<String>, body: &[u8]) -> ApiError {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let envelope = json.as_ref().and_then(|v| v.get("error"));
    let kind = envelope
        .and_then(|e| e.get("type"))
        .and_then(Value::as_str)
        .map_or_else(|| default_kind(status).to_owned(), str::to_owned);
    let message = envelope
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let first = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
            let reason = status.canonical_reason().unwrap_or("error");
            if first.is_empty() {
                reason.to_owned()
            } else {
                format!("{reason}: {}", first.chars().take(200).collect::<String>())
            }
        });
    let request_id = json
        .as_ref()
        .and_then(|v| v.get("request_id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(header_id);
    let code = envelope
        .and_then(|e| e.pointer("/details/error_code"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    ApiError {
        status: status.as_u16(),
        kind,
        message,
        code,
        request_id,
    }
}

fn default_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 405 | 413 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_envelope() {
        let body = br#"{"type":"error","error":{"type":"not_found_error","message":"session sesn-x not found"},"request_id":"req_9"}"#;
        let e = parse_error(StatusCode::NOT_FOUND, Some("req_header".into()), body);
        assert_eq!(e.kind, "not_found_error");
        assert_eq!(e.message, "session sesn-x not found");
        assert_eq!(e.request_id.as_deref(), Some("req_9"));
        assert_eq!(e.code, None);
        let body = br#"{"type":"error","error":{"type":"invalid_request_error","message":"file: over the limit","details":{"error_code":"file_too_large"}}}"#;
        let e = parse_error(StatusCode::PAYLOAD_TOO_LARGE, None, body);
        assert_eq!(
            e.to_string(),
            "file: over the limit (HTTP 413 invalid_request_error file_too_large)"
        );
    }

    #[test]
    fn something_else_still_gives_a_line() {
        let e = parse_error(
            StatusCode::BAD_GATEWAY,
            Some("req_h".into()),
            b"\n<html>upstream down</html>\nmore",
        );
        assert_eq!(e.kind, "api_error");
        assert_eq!(e.message, "Bad Gateway: <html>upstream down</html>");
        assert_eq!(e.request_id.as_deref(), Some("req_h"));
        let e = parse_error(StatusCode::UNAUTHORIZED, None, b"");
        assert_eq!(
            (e.kind.as_str(), e.message.as_str()),
            ("authentication_error", "Unauthorized")
        );
    }
}
