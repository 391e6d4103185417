//! A real MCP server (Streamable HTTP, built with `rmcp`, the crate the harness's client uses) that a test serves on
//! this host behind a bearer token. Its tools: `forecast {city}` answers `Sunny in <city>`; `launch` exists for an
//! agent to disable. Pods reach it at `http://10.201.0.1:<port>/mcp` once [`crate::Cluster::forward_from_host`]
//! made the port reachable.

use std::sync::{Arc, Mutex, PoisonError};

use axum::{
    extract::Request,
    http::{StatusCode, header},
    middleware::{self, Next},
    response::IntoResponse,
};
use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ListToolsResult,
        PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    },
    service::RequestContext,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde_json::json;
use tokio::task::JoinHandle;

use crate::cluster::HOST_IP;

/// The calls a server received, as `tool:city`.
type Calls = Arc<Mutex<Vec<String>>>;

#[derive(Clone)]
struct Weather {
    calls: Calls,
}

impl ServerHandler for Weather {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let schema =
            json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]});
        let schema = schema.as_object().cloned().unwrap_or_default();
        Ok(ListToolsResult::with_all_items(vec![
            Tool::new("forecast", "The weather forecast of a city.", schema.clone()),
            Tool::new("launch", "Launches something irreversible.", schema),
        ]))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let city = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("city"))
            .and_then(|c| c.as_str())
            .unwrap_or("nowhere")
            .to_owned();
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("{}:{city}", request.name));
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("Sunny in {city}"))]).into())
    }
}

/// The weather server, stopped when dropped.
pub struct WeatherServer {
    /// The loopback port it listens on (the MCP endpoint is `/mcp`).
    pub port: u16,
    calls: Calls,
    task: JoinHandle<()>,
}

impl WeatherServer {
    /// Serves on a free loopback port; every request must carry `Authorization: Bearer <token>`, else it gets
    /// `401` with `WWW-Authenticate`.
    pub async fn start(token: &str) -> anyhow::Result<Self> {
        let calls = Calls::default();
        let handler = Weather { calls: calls.clone() };
        // rmcp accepts only loopback Host headers by default; pods address this host as HOST_IP.
        let config =
            StreamableHttpServerConfig::default().with_allowed_hosts(["127.0.0.1", "localhost", HOST_IP]);
        let service = StreamableHttpService::new(
            move || Ok(handler.clone()),
            Arc::new(LocalSessionManager::default()),
            config,
        );
        let expected = format!("Bearer {token}");
        let router = axum::Router::new()
            .nest_service("/mcp", service)
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                let authorized = request
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    == Some(expected.as_str());
                async move {
                    if !authorized {
                        return (
                            StatusCode::UNAUTHORIZED,
                            [(header::WWW_AUTHENTICATE, "Bearer realm=\"weather\"")],
                        )
                            .into_response();
                    }
                    next.run(request).await
                }
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { port, calls, task })
    }

    /// The tool calls received so far, as `tool:city`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl Drop for WeatherServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
