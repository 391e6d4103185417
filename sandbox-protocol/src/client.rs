//! The client the harness uses to run tools in a sandbox.

use std::time::{Duration, SystemTime};

use reqwest::StatusCode;

use crate::pod::token_sha256;
use crate::verified::VerifyLayer;
use crate::wire::{
    DaemonIdentity, DaemonInfo, EXECUTE_PATH, ErrorEnvelope, ExecuteRequest, FILES_PATH, HEALTH_PATH,
    IDENTITY_PATH, INFO_PATH, ToolResult,
};

/// Why a call did not produce a tool result. The harness turns these into `is_error` tool results for the model
/// (a sandbox that cannot be reached is a tool error, never a lost session).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made: the request never reached the daemon (the pod is gone or not there yet), so
    /// nothing ran and the call may be retried elsewhere.
    #[error("the sandbox at {url} refused the connection: {message}")]
    Refused {
        /// The daemon's base URL.
        url: String,
        /// What the transport said.
        message: String,
    },
    /// The connection broke after the request may have been sent (the pod went away mid-call).
    #[error("the sandbox at {url} is unreachable: {message}")]
    Unreachable {
        /// The daemon's base URL.
        url: String,
        /// What the transport said.
        message: String,
    },
    /// No answer in time.
    #[error("the sandbox did not answer within {0:?}")]
    Timeout(Duration),
    /// The daemon answered with an HTTP error (bad token, malformed request, ...).
    #[error("the sandbox refused the request ({status} {kind}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The `error.type`.
        kind: String,
        /// The `error.message`.
        message: String,
    },
    /// The answer was not what the protocol promises.
    #[error("the sandbox sent an unreadable answer: {0}")]
    Decode(String),
}

/// Calls one sandbox daemon. Cheap to clone (connections are pooled and shared). Each new connection asks the daemon
/// which token it accepts (by digest, [`IDENTITY_PATH`]) before it carries anything ([`crate::verified`]), so the
/// check costs one round trip per connection, not per call; a connection to an address that another pod took over
/// fails as [`ClientError::Refused`] and never receives the token.
#[derive(Clone)]
pub struct SandboxClient {
    base_url: String,
    token: String,
    token_sha256: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for SandboxClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl SandboxClient {
    /// A client for the daemon at `base_url` (for example `http://10.0.0.7:7070`) with its bearer `token`.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Result<Self, ClientError> {
        let base_url = base_url.into().trim_end_matches('/').to_owned();
        // The daemon speaks plain HTTP, but when another crate of the same binary turns on reqwest's rustls
        // (feature unification), building a client needs a process-wide crypto provider: install ring's, once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let token = token.into();
        let digest = token_sha256(&token);
        let unusable = |message: String| ClientError::Unreachable {
            url: base_url.clone(),
            message,
        };
        let url = reqwest::Url::parse(&base_url).map_err(|e| unusable(format!("not a URL: {e}")))?;
        let authority = match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => return Err(unusable("the URL names no host".into())),
        };
        // The connect timeout covers the identity check of a new connection too.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .connector_layer(VerifyLayer::new(authority, digest.clone()))
            .build()
            .map_err(|e| unusable(e.to_string()))?;
        Ok(Self {
            base_url,
            token_sha256: digest,
            token,
            http,
        })
    }

    /// The daemon's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Runs `tool` with `input`, waiting at most `timeout` for the answer. For `bash`, make `timeout` longer than
    /// the command's `timeout_ms` so the daemon can report the timeout itself.
    pub async fn execute(
        &self,
        tool: &str,
        input: serde_json::Value,
        timeout: Duration,
    ) -> Result<ToolResult, ClientError> {
        let request = ExecuteRequest {
            tool: tool.to_owned(),
            input,
            tool_use_id: None,
            fencing_token: None,
            recover: false,
        };
        self.execute_request(&request, timeout).await
    }

    /// Sends a whole [`ExecuteRequest`] (with its `tool_use_id`).
    pub async fn execute_request(
        &self,
        request: &ExecuteRequest,
        timeout: Duration,
    ) -> Result<ToolResult, ClientError> {
        let mut post = self
            .http
            .post(format!("{}{EXECUTE_PATH}", self.base_url))
            .bearer_auth(&self.token);
        // The trace of the turn continues in the daemon's log lines.
        if let Some(traceparent) = corral_runtime::telemetry::current_traceparent() {
            post = post.header("traceparent", traceparent);
        }
        let sent = SystemTime::now();
        let response = post
            .json(request)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        let result: ToolResult = self.decode(response, timeout).await?;
        relay_daemon_span(&request.tool, &result, sent, SystemTime::now());
        Ok(result)
    }

    /// `GET /v1/files`: the file resources in place, path → the id given when each was put.
    pub async fn files(&self) -> Result<std::collections::BTreeMap<String, String>, ClientError> {
        #[derive(serde::Deserialize)]
        struct Files {
            files: std::collections::BTreeMap<String, String>,
        }
        let timeout = Duration::from_secs(10);
        let response = self
            .http
            .get(format!("{}{FILES_PATH}", self.base_url))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        let files: Files = self.decode(response, timeout).await?;
        Ok(files.files)
    }

    /// `PUT /v1/files?path=&id=`: puts file resource `id` at `path` (read-only), its bytes streamed from `body`.
    pub async fn put_file(
        &self,
        path: &str,
        id: &str,
        body: reqwest::Body,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let mut url = self.files_url(path)?;
        url.query_pairs_mut().append_pair("id", id);
        let response = self
            .http
            .put(url)
            .bearer_auth(&self.token)
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        let _: serde_json::Value = self.decode(response, timeout).await?;
        Ok(())
    }

    /// `DELETE /v1/files?path=`: removes a file resource (one already gone is no error).
    pub async fn delete_file(&self, path: &str) -> Result<(), ClientError> {
        let timeout = Duration::from_secs(30);
        let response = self
            .http
            .delete(self.files_url(path)?)
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        if response.status().is_success() {
            return Ok(());
        }
        self.decode::<serde_json::Value>(response, timeout)
            .await
            .map(drop)
    }

    /// `GET /v1/outputs`: the files under the outputs directory.
    pub async fn outputs(&self) -> Result<crate::wire::OutputsListing, ClientError> {
        let timeout = Duration::from_secs(30);
        let response = self
            .http
            .get(format!("{}{}", self.base_url, crate::wire::OUTPUTS_PATH))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        self.decode(response, timeout).await
    }

    /// `GET /v1/outputs/content?path=`: one output's bytes, as a response to stream (its status checked).
    pub async fn output_content(
        &self,
        path: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, ClientError> {
        let mut url = reqwest::Url::parse(&format!("{}{}", self.base_url, crate::wire::OUTPUT_CONTENT_PATH))
            .map_err(|e| ClientError::Decode(format!("not a URL: {e}")))?;
        url.query_pairs_mut().append_pair("path", path);
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(self
            .decode::<serde_json::Value>(response, timeout)
            .await
            .err()
            .unwrap_or_else(|| ClientError::Decode("an error status with a JSON body".into())))
    }

    fn files_url(&self, path: &str) -> Result<reqwest::Url, ClientError> {
        let mut url = reqwest::Url::parse(&format!("{}{FILES_PATH}", self.base_url))
            .map_err(|e| ClientError::Decode(format!("not a URL: {e}")))?;
        url.query_pairs_mut().append_pair("path", path);
        Ok(url)
    }

    /// `GET /v1/info`.
    pub async fn info(&self) -> Result<DaemonInfo, ClientError> {
        let timeout = Duration::from_secs(10);
        let response = self
            .http
            .get(format!("{}{INFO_PATH}", self.base_url))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        self.decode(response, timeout).await
    }

    /// `GET /v1/identity` (no token): succeeds only when the daemon at the address accepts this client's token. A
    /// daemon that accepts another token, or does not say, is treated as a refused connection: the call never
    /// reached the intended sandbox, nothing ran, and the token was not sent. Calls need not ask first: every
    /// connection they use was checked the same way when it was made.
    pub async fn check_identity(&self) -> Result<(), ClientError> {
        let timeout = Duration::from_secs(5);
        let response = self
            .http
            .get(format!("{}{IDENTITY_PATH}", self.base_url))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        let identity: Result<DaemonIdentity, _> = self.decode(response, timeout).await;
        match identity {
            Ok(identity) if identity.token_sha256 == self.token_sha256 => Ok(()),
            Ok(_) => Err(self.impostor("it accepts another token")),
            Err(ClientError::Rejected { status, .. }) => {
                Err(self.impostor(&format!("it answered {status} to the identity check")))
            }
            Err(ClientError::Decode(message)) => Err(self.impostor(&message)),
            Err(other) => Err(other),
        }
    }

    fn impostor(&self, why: &str) -> ClientError {
        ClientError::Refused {
            url: self.base_url.clone(),
            message: format!(
                "the daemon answering there is not this sandbox's ({why}); the token was not sent"
            ),
        }
    }

    /// `GET /healthz`: whether the daemon serves.
    pub async fn health(&self) -> Result<(), ClientError> {
        let timeout = Duration::from_secs(5);
        let response = self
            .http
            .get(format!("{}{HEALTH_PATH}", self.base_url))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        if response.status() == StatusCode::OK {
            Ok(())
        } else {
            Err(ClientError::Rejected {
                status: response.status().as_u16(),
                kind: "health".to_owned(),
                message: "the daemon is not healthy".to_owned(),
            })
        }
    }

    async fn decode<T: serde::de::DeserializeOwned>(
        &self,
        response: reqwest::Response,
        timeout: Duration,
    ) -> Result<T, ClientError> {
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e, timeout))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()));
        }
        let (kind, message) = match serde_json::from_slice::<ErrorEnvelope>(&body) {
            Ok(envelope) => (envelope.error.kind, envelope.error.message),
            Err(_) => ("unknown".to_owned(), String::from_utf8_lossy(&body).into_owned()),
        };
        Err(ClientError::Rejected {
            status: status.as_u16(),
            kind,
            message,
        })
    }

    fn transport_error(&self, error: reqwest::Error, timeout: Duration) -> ClientError {
        if error.is_timeout() {
            ClientError::Timeout(timeout)
        } else if error.is_connect() {
            ClientError::Refused {
                url: self.base_url.clone(),
                message: corral_runtime::error_chain(&error),
            }
        } else {
            ClientError::Unreachable {
                url: self.base_url.clone(),
                message: corral_runtime::error_chain(&error),
            }
        }
    }
}

/// Exports the daemon's own time for the call as a span of service `corral-sandbox` under the caller's current span
/// (the `tool_call`). The daemon is not trusted: its figure is clamped into the call as the caller saw it, and the
/// span ends when the answer arrived, so only the caller's clock is used.
fn relay_daemon_span(tool: &str, result: &ToolResult, sent: SystemTime, received: SystemTime) {
    let Some(elapsed_us) = result.elapsed_us else {
        return;
    };
    let round_trip = received.duration_since(sent).unwrap_or_default();
    let elapsed = Duration::from_micros(elapsed_us).min(round_trip);
    corral_runtime::telemetry::relay(corral_runtime::telemetry::RelayedSpan {
        service: "corral-sandbox",
        name: "sandbox_execute",
        start: received - elapsed,
        end: received,
        attributes: vec![
            ("tool", tool.chars().take(64).collect()),
            ("is_error", result.is_error.to_string()),
        ],
    });
}
