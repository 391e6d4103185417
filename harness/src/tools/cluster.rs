//! Sandbox pods asked for through the Session's status.
//!
//! The contract with the operator (see the crate README):
//! 1. The harness writes `status.sandbox.requestedAt` (now, RFC 3339) by server-side apply under the field manager
//!    `corral-harness`, on a session's first tool call and whenever its sandbox was lost.
//! 2. The operator creates (or claims) a pod and publishes `status.sandbox.phase: Ready`, `pod` and `endpoint`
//!    (`host:port`). The harness learns of it from its watch of the namespace's Sessions (`super::sessions`): the
//!    waiting call wakes on that status change; the API server is read only while the watch is down. The daemon's token is in Redis under the tenant's prefix, keyed by the pod
//!    (`corral_session::keys::Tenant::sandbox_token`); no Secret of the namespace holds it.
//! 3. The harness calls the daemon at `http://<endpoint>` with that token, on connections whose daemon proved it
//!    is the pod the token belongs to (`corral_sandbox_protocol::verified`: each new connection asks once, so an
//!    address another pod took over never gets the token). A pod that cannot be reached becomes an `is_error` result saying the sandbox was lost and will be
//!    replaced, and the next call asks again.
//! 4. Before a new sandbox runs its first call, the session's repository resources are cloned into it
//!    (`super::repositories`); a clone that fails fails the call with git's message.

use std::sync::Arc;
use std::time::{Duration, Instant};

use corral_api::session::SandboxPhase;
use corral_sandbox_protocol::{ClientError, SandboxClient};
use corral_session::keys::Tenant;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::Mutex;

use super::client_cache::BoundedCache;
use super::repositories;
use super::sandbox_waits::SandboxWaits;
use super::sessions::{self, Sessions};
use super::{PrepareFuture, ToolCall, ToolFuture, ToolOutput, ToolRunner, call_timeout, sandbox_output};
use super::{RecoverFuture, recovered_output};
use crate::status::StatusWriter;

/// How long a call waits for a sandbox pod that no node can take, unless told otherwise.
pub const DEFAULT_UNSCHEDULABLE_TIMEOUT: Duration = Duration::from_secs(120);

/// What looking for a session's sandbox found.
enum Found {
    /// A client of its daemon.
    Client(SandboxClient),
    /// A Ready pod at this endpoint without a token in Redis (made by an earlier version, or being deleted).
    NoToken(String),
}

/// Runs tools in sandbox pods the operator manages.
pub struct ClusterToolRunner {
    /// The Sessions, from the namespace's watch (the API server when it cannot answer).
    sessions: Sessions,
    /// Redis, where the operator keeps each sandbox pod's daemon token.
    tokens: corral_session::Connection,
    status: Arc<StatusWriter>,
    ready_timeout: Duration,
    /// How long a call waits for a sandbox pod that no node can take before it fails (within `ready_timeout`).
    unschedulable_timeout: Duration,
    /// The sessions whose calls wait for a sandbox that cannot be scheduled, and why.
    waits: SandboxWaits,
    /// The daemon client of each session's sandbox, with the endpoint it talks to (bounded, entries expire).
    clients: Mutex<BoundedCache<(String, SandboxClient)>>,
    /// The endpoint of each session's sandbox that was found gone; its stale status is not trusted again.
    lost: Mutex<BoundedCache<String>>,
    /// Copies the sessions' file resources into their sandboxes; `None` leaves them out (tests of other parts).
    files: Option<super::file_resources::FileResources>,
}

impl std::fmt::Debug for ClusterToolRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterToolRunner").finish_non_exhaustive()
    }
}

impl ClusterToolRunner {
    /// A runner that waits up to `ready_timeout` for a sandbox to become ready, reading daemon tokens from `tokens`.
    pub fn new(
        sessions: Sessions,
        tokens: corral_session::Connection,
        status: Arc<StatusWriter>,
        ready_timeout: Duration,
    ) -> Self {
        Self {
            sessions,
            tokens,
            status,
            ready_timeout,
            unschedulable_timeout: DEFAULT_UNSCHEDULABLE_TIMEOUT,
            waits: SandboxWaits::default(),
            clients: Mutex::default(),
            lost: Mutex::default(),
            files: None,
        }
    }

    /// Copies each session's file resources into its sandbox before a tool call runs there.
    #[must_use]
    pub fn with_file_resources(mut self, files: super::file_resources::FileResources) -> Self {
        self.files = Some(files);
        self
    }

    /// The session's sandbox with its file resources in place.
    async fn sandbox_with_files(
        &self,
        namespace: &str,
        session: &str,
        skills: Option<&[Arc<crate::skills::LoadedSkill>]>,
    ) -> Result<SandboxClient, String> {
        let mut retried = false;
        loop {
            let client = self.sandbox(namespace, session).await?;
            let Some(files) = &self.files else {
                return Ok(client);
            };
            match files.sync(namespace, session, skills, &client).await {
                Ok(()) => return Ok(client),
                // A daemon that refuses connections is gone (its pod was lost; the status may not say so yet): a
                // new sandbox is asked for, once, as a call that finds it gone does.
                Err(message)
                    if !retried
                        && matches!(
                            client.health().await,
                            Err(ClientError::Refused { .. } | ClientError::Unreachable { .. })
                        ) =>
                {
                    tracing::info!(%namespace, %session, %message, "the sandbox is gone; asking for a new one");
                    self.forget(namespace, session).await;
                    retried = true;
                }
                Err(message) => return Err(message),
            }
        }
    }

    /// Fails a call whose sandbox pod no node could take for `timeout` (instead of the whole `ready_timeout`).
    #[must_use]
    pub fn with_unschedulable_timeout(mut self, timeout: Duration) -> Self {
        self.unschedulable_timeout = timeout;
        self
    }

    async fn sandbox(&self, namespace: &str, session: &str) -> Result<SandboxClient, String> {
        match self.find(namespace, session).await? {
            Found::Client(client) => Ok(client),
            // A pod without a token cannot be called: it is treated as lost, and a new one is asked for.
            Found::NoToken(endpoint) => {
                let key = (namespace.to_owned(), session.to_owned());
                self.lost.lock().await.insert(key, endpoint);
                match self.find(namespace, session).await? {
                    Found::Client(client) => Ok(client),
                    Found::NoToken(endpoint) => Err(format!(
                        "the sandbox at {endpoint} has no daemon token in Redis; it will be replaced"
                    )),
                }
            }
        }
    }

    async fn find(&self, namespace: &str, session: &str) -> Result<Found, String> {
        let key = (namespace.to_owned(), session.to_owned());
        if let Some((_, client)) = self.clients.lock().await.get(&key) {
            return Ok(Found::Client(client));
        }
        let lost = self.lost.lock().await.get(&key);
        let usable = |endpoint: &Option<String>| endpoint.is_some() && *endpoint != lost;
        // Subscribed before the first read: a change landing between that read and the wait still wakes it.
        let mut changes = self.sessions.changes(namespace, session);
        let current = self.sessions.read(namespace, session, "sandbox").await?;
        let sandbox = current
            .status
            .as_ref()
            .and_then(|s| s.sandbox.clone())
            .unwrap_or_default();
        let ready = sandbox.phase == Some(SandboxPhase::Ready) && usable(&sandbox.endpoint);
        // After asking, only a phase reached since the request counts: the status may still describe the
        // sandbox that was lost.
        let asked_at = (!ready).then(Timestamp::now);
        let fresh = |since: &Option<String>| {
            asked_at.is_none_or(|asked| {
                since
                    .as_deref()
                    .and_then(|s| s.parse::<Timestamp>().ok())
                    .is_some_and(|s| s >= asked)
            })
        };
        if !ready {
            self.status
                .request_sandbox(namespace, session)
                .await
                .map_err(|e| format!("cannot ask for a sandbox: {e}"))?;
        }
        let deadline = Instant::now() + self.ready_timeout;
        let wait = self.waits.waiting(namespace, session);
        let mut unschedulable_since = None;
        // Rechecks in a row that no change woke: past QUIET_RECHECKS, one read skips the watch (it may have stalled).
        let mut quiet = 0;
        let (current, endpoint, pod) = loop {
            let current = if quiet >= sessions::QUIET_RECHECKS {
                quiet = 0;
                let reason = sessions::ReadReason::WatchQuiet;
                self.sessions
                    .read_from_api(namespace, session, "sandbox", reason)
                    .await?
            } else {
                self.sessions.read(namespace, session, "sandbox").await?
            };
            let sandbox = current
                .status
                .as_ref()
                .and_then(|s| s.sandbox.clone())
                .unwrap_or_default();
            // The operator reports a pod that no node can take as provisioning with the scheduler's reason.
            let unschedulable = (sandbox.phase == Some(SandboxPhase::Provisioning))
                .then(|| sandbox.message.clone())
                .flatten();
            wait.set(unschedulable.as_deref());
            match &unschedulable {
                Some(reason) => {
                    let since = *unschedulable_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > self.unschedulable_timeout {
                        return Err(format!(
                            "the sandbox pod could not be scheduled within {:?}: {reason}",
                            self.unschedulable_timeout
                        ));
                    }
                }
                None => unschedulable_since = None,
            }
            match (sandbox.phase, sandbox.endpoint, sandbox.pod) {
                (Some(SandboxPhase::Ready), Some(endpoint), Some(pod))
                    if usable(&Some(endpoint.clone())) || fresh(&sandbox.since) =>
                {
                    break (current, endpoint, pod);
                }
                (Some(SandboxPhase::Failed), _, _) if fresh(&sandbox.since) => {
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
                _ if changes.next().await => quiet = 0,
                _ => quiet += 1,
            }
        };
        let token: Option<String> = redis::cmd("GET")
            .arg(Tenant::new(namespace).sandbox_token(&pod))
            .query_async(&mut self.tokens.clone())
            .await
            .map_err(|e| format!("cannot read the token of sandbox pod {pod}: {e}"))?;
        let Some(token) = token else {
            return Ok(Found::NoToken(endpoint));
        };
        let client = SandboxClient::new(format!("http://{endpoint}"), token).map_err(|e| e.to_string())?;
        // Before any call runs in it, and before it is remembered: a clone that failed is tried again next time.
        repositories::clone_into(&client, &current).await?;
        self.clients
            .lock()
            .await
            .insert(key.clone(), (endpoint, client.clone()));
        self.lost.lock().await.remove(&key);
        Ok(Found::Client(client))
    }

    /// The client of the session's sandbox if one is ready now, without asking for one or waiting.
    async fn existing(&self, namespace: &str, session: &str) -> Option<SandboxClient> {
        let key = (namespace.to_owned(), session.to_owned());
        if let Some((_, client)) = self.clients.lock().await.get(&key) {
            return Some(client);
        }
        let current = self.sessions.read(namespace, session, "recover").await.ok()?;
        let sandbox = current.status.clone()?.sandbox?;
        let (Some(SandboxPhase::Ready), Some(endpoint), Some(pod)) =
            (sandbox.phase, sandbox.endpoint, sandbox.pod)
        else {
            return None;
        };
        let token: Option<String> = redis::cmd("GET")
            .arg(Tenant::new(namespace).sandbox_token(&pod))
            .query_async(&mut self.tokens.clone())
            .await
            .ok()?;
        SandboxClient::new(format!("http://{endpoint}"), token?).ok()
    }

    /// Drops the session's client; its sandbox is gone, so its endpoint is not used again.
    async fn forget(&self, namespace: &str, session: &str) {
        let key = (namespace.to_owned(), session.to_owned());
        if let Some((endpoint, _)) = self.clients.lock().await.remove(&key) {
            self.lost.lock().await.insert(key, endpoint);
        }
    }
}

impl ToolRunner for ClusterToolRunner {
    fn recover<'a>(&'a self, call: ToolCall<'a>) -> RecoverFuture<'a> {
        Box::pin(async move {
            let client = self.existing(call.namespace, call.session).await?;
            recovered_output(
                client
                    .execute_request(&call.recover_request(), call_timeout(&call))
                    .await,
            )
        })
    }

    fn prepare<'a>(&'a self, namespace: &'a str, session: &'a str) -> PrepareFuture<'a> {
        Box::pin(async move { self.sandbox_with_files(namespace, session, None).await.map(drop) })
    }

    fn sandbox_wait(&self, namespace: &str, session: &str) -> Option<String> {
        self.waits.reason(namespace, session)
    }

    fn execute<'a>(&'a self, call: ToolCall<'a>) -> ToolFuture<'a> {
        Box::pin(async move {
            let request = call.sandbox_request();
            // A refused connection means the call never reached a daemon: the sandbox is gone (its status may
            // not say so yet), so the call is retried once on a newly provisioned sandbox. Anything else that
            // breaks mid-call is reported, never retried: the call may have run.
            let mut retried = false;
            let outcome = loop {
                let client = match self
                    .sandbox_with_files(call.namespace, call.session, Some(call.skills))
                    .await
                {
                    Ok(client) => client,
                    Err(message) => {
                        return ToolOutput::error(format!("No sandbox could run this tool call: {message}"));
                    }
                };
                match client.execute_request(&request, call_timeout(&call)).await {
                    Err(ClientError::Refused { .. }) if !retried => {
                        self.forget(call.namespace, call.session).await;
                        retried = true;
                    }
                    other => break (client, other),
                }
            };
            let (client, outcome) = outcome;
            let (mut output, lost) = sandbox_output(outcome);
            if lost {
                self.forget(call.namespace, call.session).await;
            } else if let Some((gateway, http)) = self.files.as_ref().and_then(|f| f.gateway())
                && let Some(note) =
                    super::outputs::save(gateway, http, call.namespace, call.session, &client).await
            {
                output.content.push(corral_api::events::ContentBlock::text(note));
            }
            output
        })
    }
}
