//! A stand-in for a model provider that a test serves on this host: OpenAI-compatible `POST /chat/completions`
//! streaming planned replies, recording every request, so a test sees exactly what the harness sent the model
//! (its tools, and the tool results it was told). An Agent uses it with
//! `provider: {type: openai, baseUrl: http://10.201.0.1:<port>}` once [`crate::Cluster::forward_from_host`] makes
//! the port reachable from pods.
//!
//! Like the scripted provider, reply `n` answers a request holding `n` assistant messages, so a call retried after
//! a crash gets the same reply.

use std::sync::{Arc, Mutex, PoisonError};

use axum::{
    Json, Router,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// One planned answer of the model.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Text, ending the turn.
    Text(String),
    /// A call of tool `name` with `arguments` (an object).
    ToolCall {
        /// The tool's name.
        name: String,
        /// Its input.
        arguments: Value,
    },
}

/// The model server, stopped when dropped.
pub struct ModelServer {
    /// The loopback port it listens on.
    pub port: u16,
    requests: Arc<Mutex<Vec<Value>>>,
    authorizations: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl ModelServer {
    /// Serves `replies` on a free loopback port.
    pub async fn start(replies: Vec<Reply>) -> anyhow::Result<Self> {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let authorizations = Arc::new(Mutex::new(Vec::new()));
        let (recorded, keys) = (requests.clone(), authorizations.clone());
        let replies = Arc::new(replies);
        let app = Router::new().route(
            "/chat/completions",
            post(move |headers: HeaderMap, Json(body): Json<Value>| {
                let (recorded, keys, replies) = (recorded.clone(), keys.clone(), replies.clone());
                async move {
                    let turn = assistant_messages(&body);
                    let key = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
                    keys.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(key.unwrap_or_default().to_owned());
                    recorded.lock().unwrap_or_else(PoisonError::into_inner).push(body);
                    answer(turn, replies.get(turn))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            port,
            requests,
            authorizations,
            task,
        })
    }

    /// The `Authorization` header of each request so far, in order (empty when there was none).
    pub fn authorizations(&self) -> Vec<String> {
        self.authorizations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The request bodies received so far, in order.
    pub fn requests(&self) -> Vec<Value> {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn assistant_messages(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "assistant").count())
}

/// The streamed answer for reply `turn`, or an error the harness reports when the plan has no such reply.
fn answer(turn: usize, reply: Option<&Reply>) -> Response {
    let Some(reply) = reply else {
        let error = json!({"error": {"type": "invalid_request_error",
                                     "message": format!("the test's model has no reply {turn}")}});
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    };
    let (delta, finish) = match reply {
        Reply::Text(text) => (json!({"role": "assistant", "content": text}), "stop"),
        Reply::ToolCall { name, arguments } => (
            json!({"role": "assistant", "content": null, "tool_calls": [{
                "index": 0, "id": format!("call_{turn}"), "type": "function",
                "function": {"name": name, "arguments": arguments.to_string()}}]}),
            "tool_calls",
        ),
    };
    let chunk = |choices: Value, usage: Value| {
        json!({"id": format!("chatcmpl-e2e-{turn}"), "object": "chat.completion.chunk", "model": "e2e",
               "choices": choices, "usage": usage})
    };
    let chunks = [
        chunk(
            json!([{"index": 0, "delta": delta, "finish_reason": null}]),
            Value::Null,
        ),
        chunk(
            json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
            Value::Null,
        ),
        chunk(
            json!([]),
            json!({"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}),
        ),
    ];
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response()
}

/// The `tool` messages of a recorded request: `(tool_call_id, content)`.
pub fn tool_messages(request: &Value) -> Vec<(String, String)> {
    request["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter(|m| m["role"] == "tool")
                .map(|m| {
                    (
                        m["tool_call_id"].as_str().unwrap_or_default().to_owned(),
                        m["content"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The names of the tools offered in a recorded request.
pub fn tool_names(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
