//! `PUT /v1/files?path=&id=`, `DELETE /v1/files?path=` and `GET /v1/files`: the session's file resources, put in
//! place by the harness (never by the model: these are not tools, and the token is the harness's), and listed back.
//!
//! A file arrives as the request body, streamed to a temporary file next to its destination and renamed over it
//! once whole, so the agent never reads half a file; past [`MAX_RESOURCE_BYTES`] the upload is refused with a 413.
//! The file is left read-only (`0444`), and so are the directories the daemon makes for it under
//! [`LOCKED_ROOT`] (`0555`): the agent's commands get "Permission denied" when they write, delete or rename there.
//! The agent runs as the daemon's own uid (a sandbox has one unprivileged user and no capabilities), so this is a
//! guard against accidents, not a wall: a command that first runs `chmod` can write. The copy in the sandbox is
//! only a copy; the stored file never changes.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use axum::{
    Json,
    body::Body,
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use corral_sandbox_protocol::pod::file_resource_path_ok;
use futures::StreamExt as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use crate::error::ApiError;

/// The largest file resource the daemon takes: 1 GiB (the gateway's own limit is lower by default).
pub const MAX_RESOURCE_BYTES: u64 = 1 << 30;

/// Directories under this one that the daemon makes for file resources are read-only (`0555`).
pub const LOCKED_ROOT: &str = "/mnt/session";

/// The sandbox's workspace, the other volume file resources may go to.
pub const WORKSPACE_ROOT: &str = "/workspace";

/// The query of `PUT` and `DELETE`.
#[derive(Deserialize, Debug)]
pub struct Target {
    /// The absolute path of the file in the sandbox.
    path: String,
    /// What the harness calls the file (its file id), listed back by `GET`.
    #[serde(default)]
    id: Option<String>,
}

/// The file resources this daemon put in place, path → the id the harness gave: what `GET /v1/files` answers, so
/// that any harness replica can tell what the sandbox holds (the daemon lives exactly as long as its sandbox).
static MANIFEST: std::sync::LazyLock<std::sync::Mutex<std::collections::BTreeMap<String, String>>> =
    std::sync::LazyLock::new(Default::default);

fn manifest() -> std::sync::MutexGuard<'static, std::collections::BTreeMap<String, String>> {
    MANIFEST.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The paths of the file resources in place (absolute, as the harness named them).
pub fn resource_paths() -> Vec<String> {
    manifest().keys().cloned().collect()
}

/// `GET /v1/files`: `{"files": {"<path>": "<id>"}}`, the file resources in place.
pub async fn list() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "files": *manifest() }))
}

/// Where the sandbox's writable volumes are: `/mnt/session` and `/workspace` in a sandbox pod (tests put them in
/// temporary directories). A path the harness names is under one of them by the pod contract's rule
/// ([`file_resource_path_ok`]), and lands in the directory standing for it.
#[derive(Debug, Clone)]
pub struct Volumes {
    /// The directory of `/mnt/session/…` paths.
    pub session: PathBuf,
    /// The directory of `/workspace/…` paths.
    pub workspace: PathBuf,
}

impl Volumes {
    /// A sandbox pod's volumes, at their own paths.
    pub fn of_pod() -> Self {
        Self {
            session: PathBuf::from(LOCKED_ROOT),
            workspace: PathBuf::from(WORKSPACE_ROOT),
        }
    }

    /// The file `path` names, or a 400 when it is not a file path under `/mnt/session/` or `/workspace/` by plain
    /// segments (no empty, `.` or `..` one).
    fn resolve(&self, path: &str) -> Result<PathBuf, ApiError> {
        let refused = || {
            ApiError::invalid(format!(
                "path must be a file path under /mnt/session/ or /workspace/ without empty, . or .. segments, got \
                 {path:?}"
            ))
        };
        if !file_resource_path_ok(path) {
            return Err(refused());
        }
        let (dir, rest) = match path.strip_prefix("/mnt/session/") {
            Some(rest) => (&self.session, rest),
            None => (
                &self.workspace,
                path.strip_prefix("/workspace/").ok_or_else(refused)?,
            ),
        };
        Ok(dir.join(rest))
    }
}

/// The directories between [`LOCKED_ROOT`] (excluded) and `file` (excluded), outermost first: the ones kept
/// read-only.
fn locked_dirs(root: &Path, file: &Path) -> Vec<PathBuf> {
    let Ok(rest) = file.parent().unwrap_or(file).strip_prefix(root) else {
        return Vec::new();
    };
    let mut dir = root.to_path_buf();
    rest.components()
        .map(|c| {
            dir.push(c);
            dir.clone()
        })
        .collect()
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        format!("{what} {}: {e}", path.display()),
    )
}

/// Makes the locked directories writable for a change, and read-only again when dropped.
struct Unlocked(Vec<PathBuf>);

impl Unlocked {
    fn open(root: &Path, file: &Path) -> Result<Self, ApiError> {
        let dirs = locked_dirs(root, file);
        for dir in &dirs {
            match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error("cannot create", dir, &e)),
            }
            set_mode(dir, 0o755).map_err(|e| io_error("cannot unlock", dir, &e))?;
        }
        if dirs.is_empty()
            && let Some(parent) = file.parent()
        {
            std::fs::create_dir_all(parent).map_err(|e| io_error("cannot create", parent, &e))?;
        }
        Ok(Self(dirs))
    }
}

impl Drop for Unlocked {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            if let Err(e) = set_mode(dir, 0o555) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not make a resource directory read-only");
            }
        }
    }
}

/// `PUT /v1/files?path=`: writes the body to `path`, read-only.
pub async fn put(Query(target): Query<Target>, body: Body) -> Response {
    put_at(&Volumes::of_pod(), target, body).await
}

/// [`put`] into `volumes`.
async fn put_at(volumes: &Volumes, target: Target, body: Body) -> Response {
    match put_in(volumes, &target.path, body).await {
        Ok(bytes) => {
            manifest().insert(target.path.clone(), target.id.unwrap_or_default());
            Json(serde_json::json!({ "path": target.path, "size_bytes": bytes })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Writes `body` to the file `path` names in `volumes`, read-only; answers its size.
pub async fn put_in(volumes: &Volumes, path: &str, body: Body) -> Result<u64, ApiError> {
    let file = volumes.resolve(path)?;
    let _unlocked = Unlocked::open(&volumes.session, &file)?;
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let partial = Partial(file.with_file_name(format!(".{name}.corral-{}", crate::random_hex(6))));
    let tmp = &partial.0;
    let bytes = write_stream(tmp, body).await?;
    set_mode(tmp, 0o444).map_err(|e| io_error("cannot protect", tmp, &e))?;
    std::fs::rename(tmp, &file).map_err(|e| io_error("cannot move into place", &file, &e))?;
    Ok(bytes)
}

/// A file being written, removed when dropped unless it was moved into place: also when the request is cancelled
/// mid-body (the harness gave up at its deadline), so partial copies never eat the session's disk.
struct Partial(PathBuf);

impl Drop for Partial {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.0) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %self.0.display(), error = %e, "could not remove a partial file resource");
            }
            _ => {}
        }
    }
}

async fn write_stream(tmp: &Path, body: Body) -> Result<u64, ApiError> {
    let mut out = tokio::fs::File::create(tmp)
        .await
        .map_err(|e| io_error("cannot create", tmp, &e))?;
    let mut stream = body.into_data_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::invalid(format!("the body broke off: {e}")))?;
        bytes += chunk.len() as u64;
        if bytes > MAX_RESOURCE_BYTES {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("a file resource may hold at most {MAX_RESOURCE_BYTES} bytes"),
            ));
        }
        out.write_all(&chunk)
            .await
            .map_err(|e| io_error("cannot write", tmp, &e))?;
    }
    out.flush().await.map_err(|e| io_error("cannot write", tmp, &e))?;
    Ok(bytes)
}

/// `DELETE /v1/files?path=`: removes the file (a file already gone is not an error).
pub async fn delete(Query(target): Query<Target>) -> Response {
    delete_at(&Volumes::of_pod(), target)
}

/// [`delete`] in `volumes`.
fn delete_at(volumes: &Volumes, target: Target) -> Response {
    match delete_in(volumes, &target.path) {
        Ok(()) => {
            manifest().remove(&target.path);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Removes the file `path` names in `volumes` (a file already gone is not an error).
pub fn delete_in(volumes: &Volumes, path: &str) -> Result<(), ApiError> {
    let file = volumes.resolve(path)?;
    if std::fs::symlink_metadata(&file).is_err() {
        return Ok(());
    }
    let _unlocked = Unlocked::open(&volumes.session, &file)?;
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("cannot remove", &file, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Volumes in a temporary directory.
    fn volumes(dir: &Path) -> Volumes {
        let v = Volumes {
            session: dir.join("mnt-session"),
            workspace: dir.join("workspace"),
        };
        std::fs::create_dir_all(&v.session).unwrap();
        std::fs::create_dir_all(&v.workspace).unwrap();
        v
    }

    #[test]
    fn only_file_paths_under_the_two_volumes_are_taken() {
        let v = Volumes::of_pod();
        assert_eq!(
            v.resolve("/mnt/session/uploads/file_1").unwrap(),
            PathBuf::from("/mnt/session/uploads/file_1")
        );
        assert_eq!(
            v.resolve("/workspace/in.csv").unwrap(),
            PathBuf::from("/workspace/in.csv")
        );
        for bad in [
            "relative/x",
            "/mnt/../etc/passwd",
            "/mnt/session/..",
            "/workspace/.",
            "/workspace/./x",
            "/workspace//x",
            "/etc/passwd",
            "/tmp/x",
            "/workspace",
            "/",
            "",
        ] {
            let err = v.resolve(bad).unwrap_err();
            assert_eq!(err.into_response().status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn the_directories_under_the_root_are_locked() {
        let dirs = locked_dirs(Path::new("/mnt/session"), Path::new("/mnt/session/uploads/a/f"));
        assert_eq!(
            dirs,
            vec![
                PathBuf::from("/mnt/session/uploads"),
                PathBuf::from("/mnt/session/uploads/a")
            ]
        );
        assert!(locked_dirs(Path::new("/mnt/session"), Path::new("/workspace/f")).is_empty());
    }

    #[tokio::test]
    async fn the_daemon_lists_what_it_put_in_place_until_it_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let v = volumes(dir.path());
        let path = "/workspace/in/data.csv";
        let target = |id: Option<&str>| Target {
            path: path.to_owned(),
            id: id.map(str::to_owned),
        };
        let put = put_at(&v, target(Some("file_1")), Body::from("a,b")).await;
        assert_eq!(put.status(), StatusCode::OK);
        assert_eq!(
            std::fs::read_to_string(v.workspace.join("in/data.csv")).unwrap(),
            "a,b"
        );
        let listed = list().await.0;
        assert_eq!(listed["files"][path], "file_1");
        assert_eq!(delete_at(&v, target(None)).status(), StatusCode::NO_CONTENT);
        assert!(list().await.0["files"].get(path).is_none());
        assert!(!v.workspace.join("in/data.csv").exists());

        // Outside the two volumes: refused, nothing written, nothing listed.
        let outside = Target {
            path: format!("{}/escaped", dir.path().display()),
            id: Some("file_2".into()),
        };
        let refused = put_at(&v, outside, Body::from("x")).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        assert!(!dir.path().join("escaped").exists());
        let dot = Target {
            path: "/workspace/.".into(),
            id: Some("file_3".into()),
        };
        assert_eq!(
            put_at(&v, dot, Body::from("x")).await.status(),
            StatusCode::BAD_REQUEST
        );
        assert!(v.workspace.is_dir(), "the workspace is still a directory");
        let listed = list().await.0;
        assert!(
            listed["files"]
                .as_object()
                .unwrap()
                .values()
                .all(|id| id != "file_2" && id != "file_3"),
            "{listed}"
        );
    }

    #[tokio::test]
    async fn a_put_cancelled_mid_body_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let v = volumes(dir.path());
        // One chunk, then a body that never ends: the request is cancelled while it waits.
        let first = futures::stream::once(async { Ok::<_, std::io::Error>(axum::body::Bytes::from("abc")) });
        let body = Body::from_stream(first.chain(futures::stream::pending()));
        let task = tokio::spawn(async move { put_in(&v, "/workspace/big.bin", body).await });
        let partials = || {
            std::fs::read_dir(dir.path().join("workspace"))
                .unwrap()
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        };
        let mut seen = false;
        for _ in 0..200 {
            if partials().iter().any(|n| n.starts_with(".big.bin.corral-")) {
                seen = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(seen, "the partial file was written: {:?}", partials());
        task.abort();
        let _ = task.await;
        assert_eq!(partials(), Vec::<String>::new(), "nothing is left behind");
    }

    #[tokio::test]
    async fn a_file_lands_read_only_in_a_read_only_directory_and_goes_again() {
        let dir = tempfile::tempdir().unwrap();
        let v = volumes(dir.path());
        let path = v.session.join("uploads/file_1");
        let name = "/mnt/session/uploads/file_1";
        let written = put_in(&v, name, Body::from("hello")).await.unwrap();
        assert_eq!(written, 5);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o444);
        assert_eq!(mode(&v.session.join("uploads")), 0o555);
        // A new version replaces the old one whole.
        put_in(&v, name, Body::from("bye")).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "bye");
        assert_eq!(
            std::fs::read_dir(v.session.join("uploads")).unwrap().count(),
            1,
            "no temporary file left"
        );
        delete_in(&v, name).unwrap();
        assert!(!path.exists());
        assert_eq!(mode(&v.session.join("uploads")), 0o555);
        delete_in(&v, name).unwrap();
    }
}
