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
    path::{Component, Path, PathBuf},
};

use axum::{
    Json,
    body::Body,
    extract::Query,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use futures::StreamExt as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use crate::error::ApiError;

/// The largest file resource the daemon takes: 1 GiB (the gateway's own limit is lower by default).
pub const MAX_RESOURCE_BYTES: u64 = 1 << 30;

/// Directories under this one that the daemon makes for file resources are read-only (`0555`).
pub const LOCKED_ROOT: &str = "/mnt/session";

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

/// `GET /v1/files`: `{"files": {"<path>": "<id>"}}`, the file resources in place.
pub async fn list() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "files": *manifest() }))
}

/// An absolute file path without `..` components (`Path` drops inner `.` ones), or a 400.
fn checked(path: &str) -> Result<PathBuf, ApiError> {
    let p = Path::new(path);
    let plain = p.is_absolute()
        && p.file_name().is_some()
        && p.components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !plain {
        return Err(ApiError::invalid(format!(
            "path must be an absolute file path without . or .. components, got {path:?}"
        )));
    }
    Ok(p.to_path_buf())
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
    match put_in(Path::new(LOCKED_ROOT), &target.path, body).await {
        Ok(bytes) => {
            manifest().insert(target.path.clone(), target.id.unwrap_or_default());
            Json(serde_json::json!({ "path": target.path, "size_bytes": bytes })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// [`put`] with the locked root given (tests use a temporary directory).
pub async fn put_in(root: &Path, path: &str, body: Body) -> Result<u64, ApiError> {
    let file = checked(path)?;
    let _unlocked = Unlocked::open(root, &file)?;
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let tmp = file.with_file_name(format!(".{name}.corral-{}", crate::random_hex(6)));
    let written = write_stream(&tmp, body).await;
    let result = written.and_then(|bytes| {
        set_mode(&tmp, 0o444).map_err(|e| io_error("cannot protect", &tmp, &e))?;
        std::fs::rename(&tmp, &file).map_err(|e| io_error("cannot move into place", &file, &e))?;
        Ok(bytes)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
    match delete_in(Path::new(LOCKED_ROOT), &target.path) {
        Ok(()) => {
            manifest().remove(&target.path);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// [`delete`] with the locked root given.
pub fn delete_in(root: &Path, path: &str) -> Result<(), ApiError> {
    let file = checked(path)?;
    if std::fs::symlink_metadata(&file).is_err() {
        return Ok(());
    }
    let _unlocked = Unlocked::open(root, &file)?;
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("cannot remove", &file, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_absolute_paths_are_taken() {
        assert!(checked("/mnt/session/uploads/file_1").is_ok());
        for bad in ["relative/x", "/mnt/../etc/passwd", "/mnt/session/..", "/", ""] {
            assert!(checked(bad).is_err(), "{bad}");
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
        let path = dir.path().join("in/data.csv").to_str().unwrap().to_owned();
        let target = |id: Option<&str>| {
            Query(Target {
                path: path.clone(),
                id: id.map(str::to_owned),
            })
        };
        assert_eq!(
            put(target(Some("file_1")), Body::from("a,b")).await.status(),
            StatusCode::OK
        );
        let listed = list().await.0;
        assert_eq!(listed["files"][&path], "file_1");
        assert_eq!(delete(target(None)).await.status(), StatusCode::NO_CONTENT);
        assert!(list().await.0["files"].get(&path).is_none());
        assert!(!Path::new(&path).exists());
    }

    #[tokio::test]
    async fn a_file_lands_read_only_in_a_read_only_directory_and_goes_again() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("uploads/file_1");
        let path_str = path.to_str().unwrap();
        let written = put_in(root.path(), path_str, Body::from("hello")).await.unwrap();
        assert_eq!(written, 5);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o444);
        assert_eq!(mode(&root.path().join("uploads")), 0o555);
        // A new version replaces the old one whole.
        put_in(root.path(), path_str, Body::from("bye")).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "bye");
        assert_eq!(
            std::fs::read_dir(root.path().join("uploads")).unwrap().count(),
            1,
            "no temporary file left"
        );
        delete_in(root.path(), path_str).unwrap();
        assert!(!path.exists());
        assert_eq!(mode(&root.path().join("uploads")), 0o555);
        delete_in(root.path(), path_str).unwrap();
    }
}
