//! The session's `file` resources, copied into its sandbox before a tool call runs there.
//!
//! Before each call in a session's sandbox the harness reads the Session's `spec.resources` (the API's
//! `/v1/sessions/{id}/resources` and a GitOps user write the same list) from its watch-fed cache
//! (`super::sessions`) and brings the sandbox in line with it. The cache may lag the API server by a few
//! milliseconds; a change the gateway already answered for is never missed: the gateway records the spec's new
//! generation in Redis before answering, and a cached spec older than that is read from the API server instead. A
//! GitOps change has no such answer to order against, and is seen as soon as the watch delivers it. Then: a
//! file not yet there is fetched from the gateway (`GET /internal/v1/namespaces/{ns}/files/{id}/content`,
//! authenticated with this harness's own ServiceAccount token, which the gateway accepts for this harness's tenant
//! only) and streamed to the daemon (`PUT /v1/files`), never held whole in memory; a file no longer listed is
//! removed. What the sandbox holds is asked of its daemon (`GET /v1/files`), never remembered here: any harness
//! replica may run a session's next call, and a new sandbox (lazy provisioning, a lost pod, an idle one reaped)
//! holds nothing, so it receives every file at its first call. The sandbox never holds object-store credentials or
//! a token for the gateway. See docs/files.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use corral_api::{
    Session,
    session::{SessionResourceType, default_file_mount_path},
};
use corral_sandbox_protocol::{ClientError, SandboxClient};
use futures::TryStreamExt as _;

use super::sessions::Sessions;

/// Where the operator mounts the harness's ServiceAccount token for the gateway (audience `corral-gateway`).
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/corral/gateway/token";

/// How long one file may take to reach the sandbox.
const PUT_TIMEOUT: Duration = Duration::from_secs(600);

/// How to reach the gateway for file resources.
#[derive(Debug, Clone)]
pub struct GatewayFiles {
    /// The gateway's base URL inside the cluster (`http://corral-gateway.corral-system:8080`).
    pub url: String,
    /// The file holding this harness's ServiceAccount token for the gateway (read at every use: the kubelet
    /// rotates it).
    pub token_file: PathBuf,
}

/// Keeps each session's sandbox in line with its `file` resources.
pub struct FileResources {
    sessions: Sessions,
    /// The session logs' Redis, where the gateway records the newest spec generation it answered for.
    log: corral_session::Store,
    gateway: Option<GatewayFiles>,
    http: reqwest::Client,
}

impl std::fmt::Debug for FileResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileResources")
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

/// The file resources of a spec: mount path → file id.
pub fn wanted(session: &Session) -> BTreeMap<String, String> {
    session
        .spec
        .resources
        .iter()
        .filter(|r| r.kind == SessionResourceType::File)
        .filter_map(|r| {
            let id = r.file_id.clone()?;
            let path = r
                .mount_path
                .clone()
                .unwrap_or_else(|| default_file_mount_path(&id));
            Some((path, id))
        })
        .collect()
}

/// What to change: the files to put (path, id) and the paths to remove.
fn plan(
    have: &BTreeMap<String, String>,
    want: &BTreeMap<String, String>,
) -> (Vec<(String, String)>, Vec<String>) {
    let put = want
        .iter()
        .filter(|(path, id)| have.get(*path) != Some(id))
        .map(|(p, i)| (p.clone(), i.clone()))
        .collect();
    let remove = have.keys().filter(|p| !want.contains_key(*p)).cloned().collect();
    (put, remove)
}

impl FileResources {
    /// Copies file resources through `gateway`, reading each session's resources through `sessions` no older than
    /// the spec generation the gateway recorded in `log`; without a gateway, a session with file resources gets an error on its
    /// tool calls saying so.
    pub fn new(sessions: Sessions, log: corral_session::Store, gateway: Option<GatewayFiles>) -> Self {
        Self {
            sessions,
            log,
            gateway,
            http: reqwest::Client::builder()
                .no_proxy()
                .connect_timeout(Duration::from_secs(5))
                .build()
                .unwrap_or_default(),
        }
    }

    /// Brings the sandbox `sandbox` of the session in line with its file resources. An error names the file that
    /// could not be delivered; what was delivered stays in place, and the rest is tried again at the next call.
    pub async fn sync(&self, namespace: &str, session: &str, sandbox: &SandboxClient) -> Result<(), String> {
        let answered = self
            .log
            .session(namespace, session)
            .spec_generation()
            .await
            .map_err(|e| format!("cannot read the session's resources: {e}"))?;
        let current = self
            .sessions
            .read_at_least(namespace, session, answered, "files")
            .await
            .map_err(|e| format!("cannot read the session's resources: {e}"))?;
        let want = wanted(&current);
        // What the sandbox holds comes from its daemon, not from this replica's memory: another harness replica may
        // have run the session's last call.
        let have = match sandbox.files().await {
            Ok(files) => files,
            // A daemon older than file resources holds none (and cannot take any: a put then says so).
            Err(ClientError::Rejected { status: 404, .. }) => BTreeMap::new(),
            Err(e) => return Err(format!("cannot list the sandbox's file resources: {e}")),
        };
        let (put, remove) = plan(&have, &want);
        for path in remove {
            sandbox
                .delete_file(&path)
                .await
                .map_err(|e| format!("cannot remove the file resource at {path}: {e}"))?;
            tracing::info!(%namespace, %session, %path, "removed a file resource from the sandbox");
        }
        for (path, id) in put {
            match self.put(namespace, &id, &path, sandbox).await {
                Ok(()) => {
                    tracing::info!(%namespace, %session, file = %id, %path, "copied a file resource into the sandbox")
                }
                // A file deleted or expired since it was given can never be delivered: the session's calls go on
                // without it (its path stays empty) instead of failing one after another.
                Err(Put::Gone(why)) => {
                    tracing::warn!(%namespace, %session, file = %id, %path, %why, "a file resource is gone; skipped")
                }
                Err(Put::Failed(why)) => return Err(why),
            }
        }
        Ok(())
    }

    async fn put(&self, namespace: &str, id: &str, path: &str, sandbox: &SandboxClient) -> Result<(), Put> {
        let fail = |why: String| {
            Put::Failed(format!(
                "the file resource {id} could not be copied to {path}: {why}"
            ))
        };
        let Some(gateway) = &self.gateway else {
            return Err(fail(
                "this harness has no gateway to fetch files from (--gateway-url)".into(),
            ));
        };
        let token = tokio::fs::read_to_string(&gateway.token_file)
            .await
            .map_err(|e| fail(format!("cannot read {}: {e}", gateway.token_file.display())))?;
        let url = format!(
            "{}/internal/v1/namespaces/{namespace}/files/{id}/content",
            gateway.url.trim_end_matches('/')
        );
        let response = self
            .http
            .get(url)
            .bearer_auth(token.trim())
            .send()
            .await
            .map_err(|e| fail(format!("the gateway is unreachable: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or(body);
            if status == reqwest::StatusCode::NOT_FOUND {
                return Err(Put::Gone(message));
            }
            return Err(fail(format!("the gateway answered {status}: {message}")));
        }
        let stream = response.bytes_stream().map_err(std::io::Error::other);
        sandbox
            .put_file(path, id, reqwest::Body::wrap_stream(stream), PUT_TIMEOUT)
            .await
            .map_err(|e| fail(e.to_string()))
    }
}

/// Why a file resource was not put in place.
enum Put {
    /// The file is no more (deleted, expired): it never will be.
    Gone(String),
    /// Anything else: tried again at the next call.
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn only_what_changed_is_put_or_removed() {
        let have = map(&[("/mnt/session/uploads/f1", "f1"), ("/workspace/x", "f2")]);
        let want = map(&[
            ("/mnt/session/uploads/f1", "f1"),
            ("/workspace/x", "f3"),
            ("/workspace/y", "f4"),
        ]);
        let (put, remove) = plan(&have, &want);
        assert_eq!(
            put,
            vec![
                ("/workspace/x".to_owned(), "f3".to_owned()),
                ("/workspace/y".to_owned(), "f4".to_owned())
            ]
        );
        assert!(remove.is_empty());
        let (put, remove) = plan(&want, &map(&[]));
        assert!(put.is_empty());
        assert_eq!(remove.len(), 3);
    }

    #[test]
    fn a_file_without_a_mount_path_goes_to_the_uploads_directory() {
        let session: Session = serde_json::from_value(serde_json::json!({
            "apiVersion": "corral.dev/v1alpha1", "kind": "Session", "metadata": { "name": "s" },
            "spec": { "agent": { "name": "a" }, "environmentRef": { "name": "e" }, "resources": [
                { "type": "file", "fileId": "file_1" },
                { "type": "file", "fileId": "file_2", "mountPath": "/workspace/in.csv" },
                { "type": "github_repository", "url": "https://example.com/r.git" },
            ] }
        }))
        .unwrap();
        assert_eq!(
            wanted(&session),
            map(&[
                ("/mnt/session/uploads/file_1", "file_1"),
                ("/workspace/in.csv", "file_2")
            ])
        );
    }
}
