//! One local sandbox daemon per session, started on the session's first tool call (local mode and tests).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use corral_sandbox_protocol::{LocalSandbox, LocalSandboxOptions, SandboxClient};
use tokio::sync::Mutex;

use super::{
    RecoverFuture, ToolCall, ToolFuture, ToolOutput, ToolRunner, call_timeout, recovered_output,
    sandbox_output,
};

/// Runs tools in local sandbox daemons (child processes), one per session.
#[derive(Debug)]
pub struct LocalToolRunner {
    options: LocalSandboxOptions,
    workspace_root: Option<PathBuf>,
    sandboxes: Mutex<HashMap<(String, String), Arc<LocalSandbox>>>,
}

impl LocalToolRunner {
    /// A runner starting daemons with `options`. With a `workspace_root`, session `s` of namespace `ns` works in
    /// `<root>/<ns>/<s>` (kept across restarts); otherwise in a temporary directory removed with the daemon.
    pub fn new(options: LocalSandboxOptions, workspace_root: Option<PathBuf>) -> Self {
        Self {
            options,
            workspace_root,
            sandboxes: Mutex::default(),
        }
    }

    async fn client(&self, namespace: &str, session: &str) -> Result<SandboxClient, String> {
        let key = (namespace.to_owned(), session.to_owned());
        let mut sandboxes = self.sandboxes.lock().await;
        if let Some(sandbox) = sandboxes.get(&key) {
            return Ok(sandbox.client().clone());
        }
        let mut options = self.options.clone();
        if let Some(root) = &self.workspace_root {
            options.workspace = Some(root.join(namespace).join(session));
        }
        let sandbox = LocalSandbox::start(options)
            .await
            .map_err(|e| format!("the local sandbox could not start: {e}"))?;
        tracing::info!(namespace, session, workspace = %sandbox.workspace().display(), "started a local sandbox");
        let client = sandbox.client().clone();
        sandboxes.insert(key, Arc::new(sandbox));
        Ok(client)
    }

    /// Stops the sandbox of a session, if it has one.
    pub async fn stop(&self, namespace: &str, session: &str) {
        let removed = self
            .sandboxes
            .lock()
            .await
            .remove(&(namespace.to_owned(), session.to_owned()));
        if let Some(sandbox) = removed.and_then(|s| Arc::try_unwrap(s).ok()) {
            let _ = sandbox.stop(Duration::from_secs(5)).await;
        }
    }

    /// Stops every sandbox.
    pub async fn stop_all(&self) {
        let all: Vec<_> = self.sandboxes.lock().await.drain().collect();
        for (_, sandbox) in all {
            if let Ok(sandbox) = Arc::try_unwrap(sandbox) {
                let _ = sandbox.stop(Duration::from_secs(5)).await;
            }
        }
    }
}

impl ToolRunner for LocalToolRunner {
    fn recover<'a>(&'a self, call: ToolCall<'a>) -> RecoverFuture<'a> {
        Box::pin(async move {
            let key = (call.namespace.to_owned(), call.session.to_owned());
            let client = self.sandboxes.lock().await.get(&key)?.client().clone();
            recovered_output(
                client
                    .execute_request(&call.recover_request(), call_timeout(&call))
                    .await,
            )
        })
    }

    fn execute<'a>(&'a self, call: ToolCall<'a>) -> ToolFuture<'a> {
        Box::pin(async move {
            let client = match self.client(call.namespace, call.session).await {
                Ok(client) => client,
                Err(message) => return ToolOutput::error(message),
            };
            let outcome = client
                .execute_request(&call.sandbox_request(), call_timeout(&call))
                .await;
            let (output, lost) = sandbox_output(outcome);
            if lost {
                self.stop(call.namespace, call.session).await;
            }
            output
        })
    }
}
