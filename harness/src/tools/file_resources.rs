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

use std::collections::{BTreeMap, HashMap};
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

/// How long one tool call's file resources may take to reach the sandbox, all files together (a session's files
/// fit in its sandbox's disk, 4 GiB by default: about 7 MB/s at worst). Past it the call fails saying so instead of
/// waiting on; what arrived stays, and the rest is tried again at the next call.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(600);

/// How to reach the gateway for file resources.
#[derive(Debug, Clone)]
pub struct GatewayFiles {
    /// The gateway's base URL inside the cluster (`http://corral-gateway.corral-system:8080`).
    pub url: String,
    /// The file holding this harness's ServiceAccount token for the gateway (read at every use: the kubelet
    /// rotates it).
    pub token_file: PathBuf,
}

impl GatewayFiles {
    /// An HTTP client for the gateway: no proxy, 5 s to connect, at most `timeout` per request when given.
    pub fn client(timeout: Option<Duration>) -> reqwest::Client {
        let builder = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5));
        match timeout {
            Some(t) => builder.timeout(t),
            None => builder,
        }
        .build()
        .unwrap_or_default()
    }

    /// `GET /internal/v1/namespaces/{namespace}/{segments...}` (each segment percent-encoded) with this harness's
    /// token, read afresh (the kubelet rotates it). An error says why no answer came.
    pub async fn get(
        &self,
        http: &reqwest::Client,
        namespace: &str,
        segments: &[&str],
    ) -> Result<reqwest::Response, String> {
        self.send(http.get(internal_url(&self.url, namespace, segments)?))
            .await
    }

    /// `PUT /internal/v1/namespaces/{namespace}/{segments...}?{query}` with `body` (of `length` bytes, when known)
    /// and this harness's token.
    pub async fn put(
        &self,
        http: &reqwest::Client,
        namespace: &str,
        segments: &[&str],
        query: &[(&str, &str)],
        body: reqwest::Body,
        length: Option<u64>,
    ) -> Result<reqwest::Response, String> {
        let mut url = internal_url(&self.url, namespace, segments)?;
        url.query_pairs_mut().extend_pairs(query);
        let mut request = http.put(url).body(body);
        if let Some(length) = length {
            request = request.header(reqwest::header::CONTENT_LENGTH, length);
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
        let token = tokio::fs::read_to_string(&self.token_file)
            .await
            .map_err(|e| format!("cannot read {}: {e}", self.token_file.display()))?;
        request
            .bearer_auth(token.trim())
            .send()
            .await
            .map_err(|e| format!("the gateway is unreachable: {e}"))
    }
}

/// `base` + `/internal/v1/namespaces/{namespace}/` + `segments`, each percent-encoded.
fn internal_url(base: &str, namespace: &str, segments: &[&str]) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base).map_err(|e| format!("the gateway URL {base:?}: {e}"))?;
    url.path_segments_mut()
        .map_err(|()| format!("the gateway URL {base:?} cannot take a path"))?
        .pop_if_empty()
        .extend(["internal", "v1", "namespaces", namespace])
        .extend(segments);
    Ok(url)
}

/// Keeps each session's sandbox in line with its `file` resources.
pub struct FileResources {
    sessions: Sessions,
    /// The session logs' Redis, where the gateway records the newest spec generation it answered for.
    log: corral_session::Store,
    gateway: Option<GatewayFiles>,
    http: reqwest::Client,
    deadline: Duration,
}

impl std::fmt::Debug for FileResources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileResources")
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

/// The file resources of a spec: mount path → file id. A path the sandbox would refuse (a Session written before the
/// rule tightened, e.g. with `//` or `/./`) is left out with a warning: retrying it would fail every tool call.
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
            if !corral_sandbox_protocol::pod::file_resource_path_ok(&path) {
                tracing::warn!(
                    session = session.metadata.name.as_deref().unwrap_or_default(),
                    file = id,
                    path,
                    "a file resource's mount path is not one the sandbox takes; it is not delivered"
                );
                return None;
            }
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
            http: GatewayFiles::client(None),
            deadline: SYNC_DEADLINE,
        }
    }

    /// The gateway and the client to reach it, when there is one.
    pub fn gateway(&self) -> Option<(&GatewayFiles, &reqwest::Client)> {
        self.gateway.as_ref().map(|g| (g, &self.http))
    }

    /// The same with another deadline for one call's files than [`SYNC_DEADLINE`].
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Brings the sandbox `sandbox` of the session in line with its file resources and, when `skills` is given,
    /// its agent's skills (`None` leaves the skill files the sandbox holds as they are). An error names the file
    /// that could not be delivered (or the deadline); what was delivered stays in place, and the rest is tried
    /// again at the next call.
    pub async fn sync(
        &self,
        namespace: &str,
        session: &str,
        skills: Option<&[std::sync::Arc<crate::skills::LoadedSkill>]>,
        sandbox: &SandboxClient,
    ) -> Result<(), String> {
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
        let mut want = wanted(&current);
        let mut inline = HashMap::new();
        let skills = match skills {
            Some(skills) => {
                for skill in skills {
                    want.extend(skill.placements());
                    inline.extend(skill.inline_files());
                }
                Skills::Given
            }
            None => Skills::AsTheyAre,
        };
        let want = Wanted { paths: want, inline };
        self.deliver(namespace, session, &want, skills, sandbox).await
    }

    /// Brings the sandbox in line with `want` (mount path → file id), all of it within the deadline.
    async fn deliver(
        &self,
        namespace: &str,
        session: &str,
        want: &Wanted,
        skills: Skills,
        sandbox: &SandboxClient,
    ) -> Result<(), String> {
        let work = self.bring_in_line(namespace, session, want, skills, sandbox);
        tokio::time::timeout(self.deadline, work).await.unwrap_or_else(|_| {
            Err(format!(
                "the session's file resources did not all reach the sandbox within {}s; those that did stay, the \
                 rest are tried again at the next tool call",
                self.deadline.as_secs_f32()
            ))
        })
    }

    async fn bring_in_line(
        &self,
        namespace: &str,
        session: &str,
        wanted: &Wanted,
        skills: Skills,
        sandbox: &SandboxClient,
    ) -> Result<(), String> {
        // What the sandbox holds comes from its daemon, not from this replica's memory: another harness replica may
        // have run the session's last call.
        let have = match sandbox.files().await {
            Ok(files) => files,
            // A daemon older than file resources holds none (and cannot take any: a put then says so).
            Err(ClientError::Rejected { status: 404, .. }) => BTreeMap::new(),
            Err(e) => return Err(format!("cannot list the sandbox's file resources: {e}")),
        };
        let mut want = wanted.paths.clone();
        if skills == Skills::AsTheyAre {
            want.extend(
                have.iter()
                    .filter(|(_, id)| id.starts_with(crate::skills::SKILL_ID_PREFIX))
                    .map(|(p, i)| (p.clone(), i.clone())),
            );
        }
        let (put, remove) = plan(&have, &want);
        for path in remove {
            sandbox
                .delete_file(&path)
                .await
                .map_err(|e| format!("cannot remove the file resource at {path}: {e}"))?;
            tracing::info!(%namespace, %session, %path, "removed a file resource from the sandbox");
        }
        for (path, id) in put {
            let done = match wanted.inline.get(&id) {
                Some(bytes) => sandbox
                    .put_file(&path, &id, reqwest::Body::from(bytes.clone()), self.deadline)
                    .await
                    .map_err(|e| {
                        Put::Failed(format!("the skill file {id} could not be copied to {path}: {e}"))
                    }),
                None => self.put(namespace, &id, &path, sandbox).await,
            };
            match done {
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
        // A skill's file is read from the skill's version (its id is that path); any other id is a file's.
        let segments: Vec<&str> = if id.starts_with(crate::skills::SKILL_ID_PREFIX) {
            id.split('/').collect()
        } else {
            vec!["files", id, "content"]
        };
        let response = gateway
            .get(&self.http, namespace, &segments)
            .await
            .map_err(fail)?;
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
            .put_file(path, id, reqwest::Body::wrap_stream(stream), self.deadline)
            .await
            .map_err(|e| fail(e.to_string()))
    }
}

/// What a sandbox should hold: mount path → id, and the bytes of the files carried here rather than fetched from
/// the gateway (skills read from ConfigMaps), by id.
struct Wanted {
    paths: BTreeMap<String, String>,
    inline: HashMap<String, bytes::Bytes>,
}

/// What a sync does with the skill files the sandbox holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skills {
    /// The skills are given: the sandbox is brought in line with them too.
    Given,
    /// Not known here (getting a sandbox ready before a turn's first call): they stay as they are.
    AsTheyAre,
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
    use std::sync::{Arc, Mutex};

    use axum::{Json, Router, body::Bytes, extract::Query, routing::get};
    use corral_sandbox_protocol::{
        pod::token_sha256,
        wire::{DaemonIdentity, FILES_PATH, IDENTITY_PATH},
    };
    use futures::StreamExt as _;

    use super::*;

    /// Serves `router` on a free local port; answers its base URL.
    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{addr}")
    }

    /// What the fake daemon was given: (path, bytes), in order.
    type Kept = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

    /// A daemon's file API that keeps what it is given.
    async fn daemon(token: &str, kept: Kept) -> SandboxClient {
        let identity = DaemonIdentity {
            token_sha256: token_sha256(token),
        };
        let router = Router::new()
            .route(IDENTITY_PATH, get(move || async move { Json(identity) }))
            .route(
                FILES_PATH,
                get(|| async { Json(serde_json::json!({ "files": {} })) }).put(
                    move |Query(q): Query<BTreeMap<String, String>>, body: Bytes| async move {
                        kept.lock().unwrap().push((q["path"].clone(), body.to_vec()));
                        Json(serde_json::json!({}))
                    },
                ),
            );
        SandboxClient::new(serve(router).await, token).unwrap()
    }

    /// A gateway whose file `quick` is `abc` and whose other files take 3 s each (three chunks, 1 s apart).
    async fn gateway() -> GatewayFiles {
        let router = Router::new().route(
            "/internal/v1/namespaces/{ns}/files/{id}/content",
            get(
                |axum::extract::Path((_, id)): axum::extract::Path<(String, String)>| async move {
                    let slow = futures::stream::iter(0..3).then(|_| async {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        Ok::<_, std::io::Error>(Bytes::from("ab"))
                    });
                    match id.as_str() {
                        "quick" => axum::body::Body::from("abc"),
                        _ => axum::body::Body::from_stream(slow),
                    }
                },
            ),
        );
        let token = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(token.path(), "harness-token").unwrap();
        GatewayFiles {
            url: serve(router).await,
            token_file: token.into_temp_path().keep().unwrap(),
        }
    }

    /// Delivery through `gateway()`; the API server is unreachable and Redis is real (delivery reads neither).
    async fn files(deadline: Duration) -> (FileResources, corral_session::testing::RedisServer) {
        let kube = kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap())).unwrap();
        let redis = tokio::task::spawn_blocking(corral_session::testing::RedisServer::start)
            .await
            .unwrap()
            .expect("redis-server");
        let log = corral_session::Store::connect(&redis.url(), corral_session::Config::default())
            .await
            .unwrap();
        let sessions = Sessions::new(kube, None, &crate::metrics::Metrics::default());
        let files = FileResources::new(sessions, log, Some(gateway().await)).with_deadline(deadline);
        (files, redis)
    }

    /// Files all fetched from the gateway.
    fn fetched(paths: BTreeMap<String, String>) -> Wanted {
        Wanted {
            paths,
            inline: HashMap::new(),
        }
    }

    #[tokio::test]
    async fn a_skill_files_carried_bytes_are_put_without_asking_the_gateway() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sandbox = daemon("t", kept.clone()).await;
        let (files, _redis) = files(Duration::from_secs(4)).await;
        let id = "skills/configmap/cm/versions/7/files/SKILL.md";
        let want = Wanted {
            paths: map(&[("/mnt/session/skills/cm/SKILL.md", id)]),
            inline: HashMap::from([(id.to_owned(), Bytes::from_static(b"---\ndescription: d\n---\n"))]),
        };
        files
            .deliver("ns", "s", &want, Skills::Given, &sandbox)
            .await
            .unwrap();
        assert_eq!(
            *kept.lock().unwrap(),
            vec![(
                "/mnt/session/skills/cm/SKILL.md".to_owned(),
                b"---\ndescription: d\n---\n".to_vec()
            )]
        );
    }

    #[tokio::test]
    async fn files_slower_together_than_the_deadline_fail_the_call_at_the_deadline() {
        let kept = Arc::new(Mutex::new(Vec::new()));
        let sandbox = daemon("t", kept.clone()).await;
        let (files, _redis) = files(Duration::from_secs(4)).await;
        let quick = map(&[("/mnt/session/uploads/quick", "quick")]);
        files
            .deliver("ns", "s", &fetched(quick), Skills::Given, &sandbox)
            .await
            .unwrap();
        assert_eq!(
            *kept.lock().unwrap(),
            vec![("/mnt/session/uploads/quick".to_owned(), b"abc".to_vec())]
        );

        let started = tokio::time::Instant::now();
        // Each takes 3 s, within the deadline alone; together 6 s, past it: the call ends at 4 s (the bound leaves a busy
        // machine 1.8 s of slack and still fails if the files had a deadline each).
        let slow = map(&[("/workspace/slow-1", "slow-1"), ("/workspace/slow-2", "slow-2")]);
        let err = files
            .deliver("ns", "s", &fetched(slow), Skills::Given, &sandbox)
            .await
            .unwrap_err();
        let took = started.elapsed();
        assert!(err.contains("within 4s"), "{err}");
        assert!(
            took >= Duration::from_secs(4) && took < Duration::from_millis(5800),
            "the call was held {took:?}"
        );
        let kept = kept.lock().unwrap();
        assert_eq!(
            kept.last().unwrap(),
            &("/workspace/slow-1".to_owned(), b"ababab".to_vec())
        );
        assert!(
            kept.iter().all(|(path, _)| path != "/workspace/slow-2"),
            "the second file, cut at the deadline, never arrived whole"
        );
    }

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
    fn a_file_without_a_mount_path_goes_to_the_uploads_directory_and_a_refused_path_is_left_out() {
        let session: Session = serde_json::from_value(serde_json::json!({
            "apiVersion": "corral.dev/v1alpha1", "kind": "Session", "metadata": { "name": "s" },
            "spec": { "agent": { "name": "a" }, "environmentRef": { "name": "e" }, "resources": [
                { "type": "file", "fileId": "file_1" },
                { "type": "file", "fileId": "file_2", "mountPath": "/workspace/in.csv" },
                { "type": "github_repository", "url": "https://example.com/r.git" },
                // Accepted by an older CRD rule, refused by the sandbox now: left out, not retried at every call.
                { "type": "file", "fileId": "file_3", "mountPath": "/workspace//old.csv" },
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

    #[test]
    fn internal_paths_are_percent_encoded_segment_by_segment() {
        let url = internal_url("http://gw:8080/", "team-a", &["skills", "a b", "x/y"]).unwrap();
        assert_eq!(
            url.as_str(),
            "http://gw:8080/internal/v1/namespaces/team-a/skills/a%20b/x%2Fy"
        );
    }
}
