//! Sandbox pods asked for through the Session's status.
//!
//! The contract with the operator (see the crate README):
//! 1. The harness writes `status.sandbox.requestedAt` (now, RFC 3339) by server-side apply under the field manager
//!    `corral-harness`, on a session's first tool call and whenever its sandbox was lost.
//! 2. The operator creates (or claims) a pod and publishes `status.sandbox.phase: Ready` and `endpoint`
//!    (`host:port`), and the daemon's token in Secret `sandbox-<session>`, key `token`.
//! 3. The harness calls the daemon at `http://<endpoint>` with that token. A pod that cannot be reached becomes an
//!    `is_error` result saying the sandbox was lost and will be replaced, and the next call asks again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_api::Session;
use corral_api::session::SandboxPhase;
use corral_sandbox::{ClientError, ExecuteRequest, SandboxClient};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use tokio::sync::Mutex;

use super::{ToolCall, ToolFuture, ToolOutput, ToolRunner, call_timeout, lost_sandbox};
use crate::agent::manifest::secret_value;
use crate::status::StatusWriter;

/// Key of the daemon's token in the sandbox Secret.
pub const SANDBOX_SECRET_KEY: &str = "token";

/// Name of a session's sandbox Secret.
pub fn sandbox_secret_name(session: &str) -> String {
    format!("sandbox-{session}")
}

/// Runs tools in sandbox pods the operator manages.
pub struct ClusterToolRunner {
    client: Client,
    status: Arc<StatusWriter>,
    ready_timeout: Duration,
    clients: Mutex<HashMap<(String, String), SandboxClient>>,
}

impl std::fmt::Debug for ClusterToolRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterToolRunner").finish_non_exhaustive()
    }
}

impl ClusterToolRunner {
    /// A runner that waits up to `ready_timeout` for a sandbox to become ready.
    pub fn new(client: Client, status: Arc<StatusWriter>, ready_timeout: Duration) -> Self {
        Self {
            client,
            status,
            ready_timeout,
            clients: Mutex::default(),
        }
    }

    async fn sandbox(&self, namespace: &str, session: &str) -> Result<SandboxClient, String> {
        let key = (namespace.to_owned(), session.to_owned());
        if let Some(client) = self.clients.lock().await.get(&key) {
            return Ok(client.clone());
        }
        let sessions: Api<Session> = Api::namespaced(self.client.clone(), namespace);
        let current = sessions
            .get(session)
            .await
            .map_err(|e| format!("cannot read the session: {e}"))?;
        let sandbox = current
            .status
            .as_ref()
            .and_then(|s| s.sandbox.clone())
            .unwrap_or_default();
        let ready = sandbox.phase == Some(SandboxPhase::Ready) && sandbox.endpoint.is_some();
        if !ready {
            self.status
                .request_sandbox(namespace, session)
                .await
                .map_err(|e| format!("cannot ask for a sandbox: {e}"))?;
        }
        let deadline = Instant::now() + self.ready_timeout;
        let endpoint = loop {
            let current = sessions
                .get(session)
                .await
                .map_err(|e| format!("cannot read the session: {e}"))?;
            let sandbox = current.status.and_then(|s| s.sandbox).unwrap_or_default();
            match (sandbox.phase, sandbox.endpoint) {
                (Some(SandboxPhase::Ready), Some(endpoint)) => break endpoint,
                (Some(SandboxPhase::Failed), _) => {
                    return Err(format!(
                        "the sandbox failed to start: {}",
                        sandbox.message.unwrap_or_else(|| "no reason given".into())
                    ));
                }
                _ if Instant::now() > deadline => {
                    return Err(format!(
                        "the sandbox was not ready within {:?}",
                        self.ready_timeout
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let name = sandbox_secret_name(session);
        let secret = secrets
            .get(&name)
            .await
            .map_err(|e| format!("cannot read Secret {name}: {e}"))?;
        let token = secret_value(&secret, SANDBOX_SECRET_KEY)
            .ok_or_else(|| format!("Secret {name} has no key {SANDBOX_SECRET_KEY}"))?;
        let client = SandboxClient::new(format!("http://{endpoint}"), token).map_err(|e| e.to_string())?;
        self.clients.lock().await.insert(key, client.clone());
        Ok(client)
    }

    async fn forget(&self, namespace: &str, session: &str) {
        self.clients
            .lock()
            .await
            .remove(&(namespace.to_owned(), session.to_owned()));
    }
}

impl ToolRunner for ClusterToolRunner {
    fn execute<'a>(&'a self, call: ToolCall<'a>) -> ToolFuture<'a> {
        Box::pin(async move {
            let client = match self.sandbox(call.namespace, call.session).await {
                Ok(client) => client,
                Err(message) => {
                    return ToolOutput::error(format!("No sandbox could run this tool call: {message}"));
                }
            };
            let request = ExecuteRequest {
                tool: call.name.to_owned(),
                input: call.input.clone(),
                tool_use_id: Some(call.tool_use_id.to_owned()),
            };
            match client.execute_request(&request, call_timeout(&call)).await {
                Ok(result) => ToolOutput::from_sandbox(result),
                Err(err @ (ClientError::Unreachable { .. } | ClientError::Timeout(_))) => {
                    self.forget(call.namespace, call.session).await;
                    lost_sandbox(&err)
                }
                Err(err @ ClientError::Rejected { status: 401, .. }) => {
                    // A replaced pod has a new token.
                    self.forget(call.namespace, call.session).await;
                    lost_sandbox(&err)
                }
                Err(err) => ToolOutput::error(format!("The sandbox refused the call: {err}")),
            }
        })
    }
}
