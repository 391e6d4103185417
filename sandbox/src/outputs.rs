//! `GET /v1/outputs` and `GET /v1/outputs/content?path=`: the files the agent leaves under
//! [`OUTPUTS_DIR`](corral_sandbox_protocol::pod::OUTPUTS_DIR), listed with a fingerprint and read back by the harness,
//! which stores each new or changed one as a File scoped to the session (docs/files.md, "Session outputs").
//!
//! Only regular files count: a symlink is neither listed nor read (the harness must not be led to another file of
//! the sandbox under an output's name), and neither is a path that leaves the directory through a swapped-in
//! symlinked directory. The agent runs as the daemon's own uid, so this is about honest names, not secrecy: the
//! agent may copy any file it can read into the directory.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use axum::{
    Json,
    body::Body,
    extract::Query,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use corral_sandbox_protocol::pod::{OUTPUTS_DIR, output_path_ok};
use corral_sandbox_protocol::wire::{OutputFile, OutputsListing};
use serde::Deserialize;
use tokio::io::AsyncReadExt as _;

use crate::error::ApiError;

/// Makes the outputs directory when the session volume is there (in a sandbox pod), so the agent finds it.
pub fn prepare() {
    let root = Path::new(OUTPUTS_DIR);
    if root.parent().is_some_and(Path::is_dir)
        && let Err(e) = std::fs::create_dir_all(root)
    {
        tracing::warn!(dir = OUTPUTS_DIR, error = %e, "could not make the outputs directory");
    }
}

/// `GET /v1/outputs`: a file resource the harness put under the directory is the session's input, not an output.
pub async fn list() -> Response {
    let resources = crate::files::resource_paths();
    let listed = tokio::task::spawn_blocking(move || {
        without_resources(
            list_in(Path::new(OUTPUTS_DIR)),
            Path::new(OUTPUTS_DIR),
            &resources,
        )
    });
    match listed.await {
        Ok(listing) => Json(listing).into_response(),
        Err(e) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            format!("listing the outputs failed: {e}"),
        )
        .into_response(),
    }
}

/// `listing` of `root` without the files at `resources` (absolute paths of file resources).
fn without_resources(mut listing: OutputsListing, root: &Path, resources: &[String]) -> OutputsListing {
    listing
        .files
        .retain(|f| !resources.iter().any(|r| Path::new(r) == root.join(&f.path)));
    listing
}

/// The regular files under `root` (none when it does not exist), sorted by path, at most
/// [`OutputsListing::MAX_FILES`].
pub fn list_in(root: &Path) -> OutputsListing {
    let mut listing = OutputsListing::default();
    walk(root, "", 0, &mut listing);
    listing.files.sort_by(|a, b| a.path.cmp(&b.path));
    listing
}

fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut OutputsListing) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if out.files.len() >= OutputsListing::MAX_FILES {
            out.truncated = true;
            return;
        }
        let Ok(name) = entry.file_name().into_string() else {
            out.truncated = true;
            continue;
        };
        // `DirEntry::metadata` does not follow symlinks.
        let Ok(meta) = entry.metadata() else { continue };
        let path = format!("{prefix}{name}");
        if meta.is_dir() {
            if depth + 1 >= OutputsListing::MAX_DEPTH {
                out.truncated = true;
            } else {
                walk(&entry.path(), &format!("{path}/"), depth + 1, out);
            }
        } else if meta.is_file() && output_path_ok(&path) {
            let modified = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.files.push(OutputFile {
                path,
                size_bytes: meta.len(),
                fingerprint: format!("{}:{modified}", meta.len()),
            });
        }
    }
}

/// The query of `GET /v1/outputs/content`.
#[derive(Deserialize, Debug)]
pub struct OutputQuery {
    /// The output's path relative to the outputs directory.
    path: String,
}

/// `GET /v1/outputs/content?path=`: the output's bytes, streamed.
pub async fn content(Query(query): Query<OutputQuery>) -> Response {
    match open_in(Path::new(OUTPUTS_DIR), &query.path).await {
        Ok((file, size)) => {
            let stream = futures::stream::unfold(file, |mut file| async move {
                let mut buf = vec![0u8; 64 << 10];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok::<_, std::io::Error>(axum::body::Bytes::from(buf)), file))
                    }
                    Err(e) => Some((Err(e), file)),
                }
            });
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
                    (header::CONTENT_LENGTH, size.to_string()),
                ],
                Body::from_stream(stream),
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Opens output `path` under `root`: a regular file reached without a symlink, with its size.
pub async fn open_in(root: &Path, path: &str) -> Result<(tokio::fs::File, u64), ApiError> {
    if !output_path_ok(path) {
        return Err(ApiError::invalid(format!(
            "path must be a relative path of plain segments under the outputs directory, got {path:?}"
        )));
    }
    let missing = || ApiError::not_found(format!("no output file {path:?}"));
    let file: PathBuf = root.join(path);
    let real = std::fs::canonicalize(&file).map_err(|_| missing())?;
    let real_root = std::fs::canonicalize(root).map_err(|_| missing())?;
    if real != real_root.join(path) {
        return Err(missing());
    }
    // Checked before opening: a FIFO swapped in after the listing would block the open.
    if !std::fs::metadata(&real).is_ok_and(|m| m.is_file()) {
        return Err(missing());
    }
    let opened = tokio::fs::File::open(&real).await.map_err(|_| missing())?;
    let meta = opened.metadata().await.map_err(|_| missing())?;
    if !meta.is_file() {
        return Err(missing());
    }
    Ok((opened, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_listed_with_their_relative_paths_and_symlinks_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("report.md"), "# done").unwrap();
        std::fs::create_dir_all(root.join("charts/q1")).unwrap();
        std::fs::write(root.join("charts/q1/a.csv"), "1,2").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", root.join("link")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc")).unwrap();
        let listing = list_in(root);
        let paths: Vec<_> = listing.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["charts/q1/a.csv", "report.md"]);
        assert_eq!(listing.files[1].size_bytes, 6);
        assert!(!listing.truncated);
    }

    #[test]
    fn a_changed_file_has_a_new_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.txt");
        std::fs::write(&file, "one").unwrap();
        let before = list_in(dir.path()).files[0].fingerprint.clone();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file, "two").unwrap();
        assert_ne!(list_in(dir.path()).files[0].fingerprint, before);
    }

    #[test]
    fn a_file_resource_under_the_outputs_directory_is_not_an_output() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("given.csv"), "in").unwrap();
        std::fs::write(dir.path().join("made.csv"), "out").unwrap();
        let given = dir.path().join("given.csv").display().to_string();
        let listing = without_resources(list_in(dir.path()), dir.path(), &[given]);
        let paths: Vec<_> = listing.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["made.csv"]);
    }

    #[test]
    fn a_missing_directory_lists_nothing() {
        let listing = list_in(Path::new("/nonexistent/corral-outputs"));
        assert!(listing.files.is_empty() && !listing.truncated);
    }

    #[tokio::test]
    async fn only_regular_files_inside_the_directory_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("ok.txt"), "fine").unwrap();
        std::fs::write(outside.path().join("secret"), "no").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("sub")).unwrap();
        std::fs::create_dir(root.join("dir")).unwrap();
        let (mut file, size) = open_in(root, "ok.txt").await.unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).await.unwrap();
        assert_eq!((text.as_str(), size), ("fine", 4));
        for refused in [
            "link",
            "sub/secret",
            "dir",
            "../x",
            "a//b",
            "/etc/hostname",
            "missing",
        ] {
            assert!(
                open_in(root, refused).await.is_err(),
                "{refused} must not be read"
            );
        }
    }
}
