//! MCP servers: the harness connects to the remote servers an Agent lists (`mcpServers`, Streamable HTTP, with the
//! `rmcp` client), lists their tools into the model's tool set, and runs the model's calls of them.
//!
//! A session run connects once, before its first model call, with the bearer tokens of the session's vault
//! credentials ([`credentials`]). A server that cannot be reached, or refuses the credentials, is reported as a
//! `session.error` (`mcp_connection_failed_error` / `mcp_authentication_failed_error`, naming the server) and the
//! turn goes on without its tools.

pub mod credentials;
pub mod oauth;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use corral_api::agent::AgentSpec;
use corral_api::events::{ContentBlock, error_types};
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError};
use rmcp::{ServiceExt, service::ClientInitializeError};
use serde_json::Value;

use crate::agent::McpToolInfo;
use crate::tools::{ToolCall, ToolFuture, ToolOutput, ToolRunner};
use credentials::{CredentialSource, McpCredential, NoCredentials};

/// How long connecting to one server (initialize and list tools) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one tool call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Why a server is not available.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// It could not be reached or did not speak MCP.
    Connection,
    /// It refused the credentials (or none were found for it).
    Authentication,
}

impl FailureKind {
    /// The `session.error` type.
    pub fn error_type(self) -> &'static str {
        match self {
            Self::Connection => error_types::MCP_CONNECTION_FAILED,
            Self::Authentication => error_types::MCP_AUTHENTICATION_FAILED,
        }
    }
}

/// A server that is not available for this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpFailure {
    /// The server's name.
    pub server: String,
    /// Why.
    pub kind: FailureKind,
    /// What happened, for people (no secret).
    pub message: String,
}

/// Connects sessions to their agents' MCP servers.
#[derive(Clone)]
pub struct McpHub {
    credentials: Arc<dyn CredentialSource>,
    http: reqwest::Client,
}

impl std::fmt::Debug for McpHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpHub").finish_non_exhaustive()
    }
}

impl Default for McpHub {
    fn default() -> Self {
        Self::new(Arc::new(NoCredentials))
    }
}

impl McpHub {
    /// A hub taking credentials from `credentials`.
    pub fn new(credentials: Arc<dyn CredentialSource>) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = crate::outbound::client_builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { credentials, http }
    }

    /// Connects to every server of `spec` for `session`: the connected servers and their tools, and the failures.
    pub async fn connect(&self, namespace: &str, session: &str, spec: &AgentSpec) -> McpConnections {
        let mut out = McpConnections::default();
        if spec.mcp_servers.is_empty() {
            return out;
        }
        let credentials = match self.credentials.mcp_credentials(namespace, session).await {
            Ok(c) => c,
            Err(err) => {
                tracing::warn!(session, error = %err, "cannot read the session's vaults; MCP servers get no credentials");
                Vec::new()
            }
        };
        for server in &spec.mcp_servers {
            let credential = credentials.iter().find(|c| c.is_for(&server.url));
            match tokio::time::timeout(CONNECT_TIMEOUT, self.connect_one(&server.url, credential)).await {
                Ok(Ok((service, tools))) => {
                    out.tools.push((server.name.clone(), tools));
                    out.servers.insert(server.name.clone(), service);
                }
                Ok(Err((kind, message))) => out.failures.push(McpFailure {
                    server: server.name.clone(),
                    kind,
                    message: format!("MCP server {:?} ({}): {message}", server.name, server.url),
                }),
                Err(_) => out.failures.push(McpFailure {
                    server: server.name.clone(),
                    kind: FailureKind::Connection,
                    message: format!(
                        "MCP server {:?} ({}) did not answer within {}s",
                        server.name,
                        server.url,
                        CONNECT_TIMEOUT.as_secs()
                    ),
                }),
            }
        }
        for failure in &out.failures {
            tracing::warn!(session, server = failure.server, kind = ?failure.kind, "{}", failure.message);
        }
        out
    }

    async fn connect_one(
        &self,
        url: &str,
        credential: Option<&McpCredential>,
    ) -> Result<(Client, Vec<McpToolInfo>), (FailureKind, String)> {
        crate::outbound::current()
            .check_url(url)
            .map_err(|e| (FailureKind::Connection, e))?;
        let mut config = StreamableHttpClientTransportConfig::with_uri(url);
        if let Some(credential) = credential {
            let token = oauth::bearer(&self.http, &credential.auth).await.map_err(|e| {
                (
                    FailureKind::Authentication,
                    format!("credential {} of vault {}: {e}", credential.id, credential.vault),
                )
            })?;
            config = config.auth_header(token);
        }
        let transport = StreamableHttpClientTransport::with_client(self.http.clone(), config);
        let service = ().serve(transport).await.map_err(|e| classify(&e))?;
        let tools = service
            .list_all_tools()
            .await
            .map_err(|e| (FailureKind::Connection, format!("listing tools failed: {e}")))?;
        let tools = tools
            .into_iter()
            .map(|t| McpToolInfo {
                name: t.name.to_string(),
                description: t.description.as_deref().unwrap_or_default().to_owned(),
                input_schema: Value::Object((*t.input_schema).clone()),
            })
            .collect();
        Ok((service, tools))
    }
}

/// A connected MCP client.
type Client = RunningService<RoleClient, ()>;

/// Whether an initialization error is the server refusing the credentials.
fn classify(err: &ClientInitializeError) -> (FailureKind, String) {
    // The transport's error is a field of the initialization error, not its `source`.
    let mut source: Option<&(dyn std::error::Error + 'static)> = match err {
        ClientInitializeError::TransportError { error, .. } => Some(error),
        other => Some(other),
    };
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<StreamableHttpError<reqwest::Error>>()
            && matches!(
                http,
                StreamableHttpError::AuthRequired(_) | StreamableHttpError::InsufficientScope(_)
            )
        {
            return (
                FailureKind::Authentication,
                "the server refused the credentials (HTTP 401/403)".to_owned(),
            );
        }
        source = e.source();
    }
    (FailureKind::Connection, format!("cannot connect: {err}"))
}

/// The MCP servers of one session run.
#[derive(Default)]
pub struct McpConnections {
    servers: BTreeMap<String, Client>,
    /// The tools of each connected server, in the agent's order.
    pub tools: Vec<(String, Vec<McpToolInfo>)>,
    /// The servers that are not available.
    pub failures: Vec<McpFailure>,
}

impl std::fmt::Debug for McpConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpConnections")
            .field("servers", &self.servers.keys().collect::<Vec<_>>())
            .field("failures", &self.failures)
            .finish()
    }
}

impl McpConnections {
    /// Calls `tool` of `server` with `input`. Never fails: a failure is an error result the model reads.
    pub async fn call(&self, server: &str, tool: &str, input: &Value) -> ToolOutput {
        let Some(client) = self.servers.get(server) else {
            return ToolOutput::error(format!(
                "The MCP server {server:?} is not available in this session (it could not be connected); the \
                 call was not run."
            ));
        };
        let mut params = CallToolRequestParams::new(tool.to_owned());
        params.arguments = match input {
            Value::Object(map) => Some(map.clone()),
            _ => None,
        };
        match tokio::time::timeout(CALL_TIMEOUT, client.call_tool(params)).await {
            Ok(Ok(result)) => ToolOutput {
                content: result.content.iter().map(content_block).collect(),
                is_error: result.is_error.unwrap_or(false),
            },
            Ok(Err(err)) => ToolOutput::error(format!("The MCP server {server:?} failed the call: {err}")),
            Err(_) => ToolOutput::error(format!(
                "The MCP server {server:?} did not answer within {}s; the call may or may not have run.",
                CALL_TIMEOUT.as_secs()
            )),
        }
    }

    /// Closes every connection.
    pub async fn close(self) {
        for (_, client) in self.servers {
            let _ = client.cancel().await;
        }
    }
}

/// The run's MCP servers run the calls of their tools (`call.server`).
impl ToolRunner for McpConnections {
    fn execute<'a>(&'a self, call: ToolCall<'a>) -> ToolFuture<'a> {
        let server = call.server.unwrap_or_default();
        Box::pin(self.call(server, call.name, call.input))
    }
}

/// An MCP content block as an API content block: text as text, base64 images as images, anything else as its
/// JSON text.
fn content_block<T: serde::Serialize>(block: &T) -> ContentBlock {
    let value = serde_json::to_value(block).unwrap_or(Value::Null);
    match value.get("type").and_then(Value::as_str) {
        Some("text") => ContentBlock::text(value.get("text").and_then(Value::as_str).unwrap_or_default()),
        Some("image") => {
            let image = serde_json::json!({
                "type": "image",
                "source": {
                    "type": "base64",
                    "media_type": value.get("mimeType").cloned().unwrap_or(Value::Null),
                    "data": value.get("data").cloned().unwrap_or(Value::Null),
                }
            });
            serde_json::from_value(image).unwrap_or_else(|_| ContentBlock::text(value.to_string()))
        }
        _ => ContentBlock::text(value.to_string()),
    }
}
