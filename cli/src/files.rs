//! `corral files upload|download|get|list|delete`: the Files API (`/v1/files`) of the key's namespace. Uploads and
//! downloads stream between disk and the gateway in small chunks, so a file of any size takes little memory.

use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use reqwest::{
    Body, Method,
    multipart::{Form, Part},
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{
    args::{FileCommand, FileDownloadArgs, FileListArgs, FileUploadArgs, Output},
    client::Client,
    error::{CliError, Result},
    output::{self, Column, age, field, time},
    resources::{deleted, id_segment},
};

/// Files from this size up show a progress bar (on a terminal); smaller ones finish before it would draw.
const PROGRESS_FROM: u64 = 1 << 20;

/// How much of a file one read takes.
const CHUNK: usize = 64 << 10;

fn size(v: &Value) -> String {
    v.get("size_bytes")
        .and_then(Value::as_u64)
        .map_or_else(|| "-".into(), |n| HumanBytes(n).to_string())
}

const FILE_COLUMNS: &[Column] = &[
    Column::id(|v| field(v, "/id")),
    Column::new("FILENAME", |v| field(v, "/filename")),
    Column::new("SIZE", size),
    Column::wide("BYTES", |v| field(v, "/size_bytes")),
    Column::wide("TYPE", |v| field(v, "/mime_type")),
    Column::wide("SCOPE", |v| field(v, "/scope/id")),
    Column::wide("EXPIRES", |v| time(v, "/expires_at")),
    Column::new("AGE", |v| age(v, "/created_at")),
    Column::wide("CREATED", |v| time(v, "/created_at")),
];

/// A progress bar on standard error for `len` bytes; hidden for machine output, small files, or when standard
/// error is not a terminal.
fn progress(format: Output, len: u64, what: &str) -> ProgressBar {
    if !format.human() || len < PROGRESS_FROM {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{msg} {wide_bar:.cyan/blue} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("█▉▊▋▌▍▎▏ "),
    );
    pb.set_message(what.to_owned());
    pb
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> CliError {
    CliError::Input(format!("{what} {}: {e}", path.display()))
}

/// Runs a file command.
pub async fn run(client: &Client, format: Output, cmd: FileCommand) -> Result<()> {
    match cmd {
        FileCommand::Upload(args) => upload(client, format, args).await,
        FileCommand::Download(args) => download(client, format, args).await,
        FileCommand::Get(a) => {
            let path = format!("/v1/files/{}", id_segment(&a.id)?);
            output::object(format, &client.get(&path, &[]).await?)
        }
        FileCommand::List(args) => list(client, format, &args).await,
        FileCommand::Delete(a) => {
            let path = format!("/v1/files/{}", id_segment(&a.id)?);
            let res = client.delete(&path).await?;
            deleted(format, &res, "file", &a.id)
        }
    }
}

async fn list(client: &Client, format: Output, args: &FileListArgs) -> Result<()> {
    let limit = (!args.all).then_some(args.limit);
    let mut q = vec![(
        "limit".to_owned(),
        limit.map_or(1000, |l| l.clamp(1, 1000)).to_string(),
    )];
    if let Some(scope) = &args.scope {
        q.push(("scope_id".into(), id_segment(scope)?.to_owned()));
    }
    let page = client.list("/v1/files", &q, limit).await?;
    output::list(format, &page.data, FILE_COLUMNS, "no files")?;
    if page.next.is_some() && format.human() {
        eprintln!(
            "{}",
            console::style("(more files: raise --limit or pass --all)").dim()
        );
    }
    Ok(())
}

/// The name an upload stores: `--name`, else the path's last component.
fn upload_name(args: &FileUploadArgs) -> Result<String> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    if name.trim().is_empty() {
        return Err(CliError::Input(format!(
            "{} has no file name: pass --name",
            args.path.display()
        )));
    }
    Ok(name)
}

async fn upload(client: &Client, format: Output, args: FileUploadArgs) -> Result<()> {
    let path = &args.path;
    let name = upload_name(&args)?;
    let mime = args.mime_type.clone().unwrap_or_else(|| {
        mime_guess::from_path(&name)
            .first_or_octet_stream()
            .essence_str()
            .to_owned()
    });
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io_error("opening", path, &e))?;
    let meta = file.metadata().await.map_err(|e| io_error("reading", path, &e))?;
    if !meta.is_file() {
        return Err(CliError::Input(format!("{} is not a file", path.display())));
    }
    let len = meta.len();
    let pb = progress(format, len, &format!("uploading {name}"));
    let counter = pb.clone();
    // At most the length announced in the part: a file that grows meanwhile is cut there, not sent malformed.
    let chunks = tokio_util::io::ReaderStream::with_capacity(file.take(len), CHUNK)
        .inspect_ok(move |chunk| counter.inc(chunk.len() as u64));
    let part = Part::stream_with_length(Body::wrap_stream(chunks), len)
        .file_name(name)
        .mime_str(&mime)
        .map_err(|e| CliError::Input(format!("--mime-type {mime:?}: {e}")))?;
    let mut form = Form::new();
    if let Some(secs) = args.expires_in {
        form = form.text("expires_in_seconds", secs.to_string());
    }
    let req = client
        .request(Method::POST, "/v1/files")
        .multipart(form.part("file", part));
    let stored = client.send(req).await;
    pb.finish_and_clear();
    let stored = stored.map_err(|e| match e {
        // The gateway refuses a file over its limits before reading it and closes the connection; the answer
        // (413) is lost when the connection breaks under the body first.
        CliError::Network(msg) => CliError::Network(format!(
            "{msg}; the gateway closed the connection during the upload: the file may be over its size limit \
             (objectStore.maxFileBytes) or the namespace's storage quota"
        )),
        other => other,
    })?;
    output::object(format, &stored)
}

/// Where a download goes when no DEST is given: the stored name (its last path component) in the current
/// directory, or the id when that name could point elsewhere.
fn default_dest(meta: &Value, id: &str) -> PathBuf {
    let stored = meta.get("filename").and_then(Value::as_str).unwrap_or("");
    let last = stored.rsplit(['/', '\\']).next().unwrap_or("");
    if last.is_empty() || last == "." || last == ".." || last.chars().any(char::is_control) {
        PathBuf::from(id)
    } else {
        PathBuf::from(last)
    }
}

/// `dest` with `.<pid>.part` added: a download is written there (a new file, never one that exists) and renamed
/// when complete, so an interrupted one never leaves a truncated file under the real name.
pub(crate) fn partial(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.part", std::process::id()));
    dest.with_file_name(name)
}

async fn download(client: &Client, format: Output, args: FileDownloadArgs) -> Result<()> {
    let id = id_segment(&args.id)?;
    let meta = client.get(&format!("/v1/files/{id}"), &[]).await?;
    let to_stdout = args.dest.as_deref() == Some(Path::new("-"));
    let dest = match &args.dest {
        Some(d) if d.is_dir() => d.join(default_dest(&meta, id)),
        Some(d) => d.clone(),
        None => default_dest(&meta, id),
    };
    if !to_stdout && !args.force && dest.exists() {
        return Err(CliError::Input(format!(
            "{} exists: pass --force to replace it",
            dest.display()
        )));
    }
    let res = client
        .execute(client.request(Method::GET, &format!("/v1/files/{id}/content")))
        .await?;
    let len = res
        .content_length()
        .or_else(|| meta.get("size_bytes").and_then(Value::as_u64))
        .unwrap_or(0);
    let mut body = res.bytes_stream();
    if to_stdout {
        return stream_to_stdout(&mut body, id).await;
    }
    let pb = progress(format, len, &format!("downloading {}", dest.display()));
    let part = partial(&dest);
    let written = write_stream(&mut body, &part, &pb).await;
    pb.finish_and_clear();
    let expected = meta.get("size_bytes").and_then(Value::as_u64);
    let written = match written {
        Ok(n) if expected.is_none_or(|size| size == n) => n,
        Ok(n) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(CliError::Network(format!(
                "downloading {id}: got {n} bytes of {}; nothing was written to {}",
                expected.unwrap_or_default(),
                dest.display()
            )));
        }
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    tokio::fs::rename(&part, &dest)
        .await
        .map_err(|e| io_error("writing", &dest, &e))?;
    if format.human() {
        crate::out!("downloaded {id} to {} ({})", dest.display(), HumanBytes(written));
        Ok(())
    } else {
        let done = json!({ "id": id, "path": dest.display().to_string(), "size_bytes": written });
        output::data(format, &done)
    }
}

/// Writes a download's body to standard output; a reader that goes away (`| head`) ends it quietly.
pub(crate) async fn stream_to_stdout(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    id: &str,
) -> Result<()> {
    // Blocking writes: the CLI does nothing else meanwhile, and a pipe's reader sets the pace.
    let mut out = std::io::stdout().lock();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| CliError::Network(format!("downloading {id}: {e}")))?;
        std::io::Write::write_all(&mut out, &chunk).map_err(stdout_error)?;
    }
    std::io::Write::flush(&mut out).map_err(stdout_error)
}

fn stdout_error(e: std::io::Error) -> CliError {
    match e.kind() {
        std::io::ErrorKind::BrokenPipe => CliError::Closed,
        _ => CliError::Other(format!("writing to standard output: {e}")),
    }
}

/// Writes the response body to `path` chunk by chunk; returns the bytes written.
pub(crate) async fn write_stream(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    path: &Path,
    pb: &ProgressBar,
) -> Result<u64> {
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .await
        .map_err(|e| io_error("creating", path, &e))?;
    let mut written = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| CliError::Network(format!("downloading: {e}")))?;
        file.write_all(&chunk)
            .await
            .map_err(|e| io_error("writing", path, &e))?;
        written += chunk.len() as u64;
        pb.inc(chunk.len() as u64);
    }
    file.flush().await.map_err(|e| io_error("writing", path, &e))?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downloads_land_in_the_current_directory_under_the_stored_name() {
        let meta = json!({ "filename": "report.csv" });
        assert_eq!(default_dest(&meta, "file_1"), PathBuf::from("report.csv"));
        let escape = json!({ "filename": "x\u{1b}]52;c;aGk=\u{7}.txt" });
        assert_eq!(default_dest(&escape, "file_1"), PathBuf::from("file_1"));
        for odd in ["../../etc/passwd", "a/b/..", "", "..", "dir\\x.txt"] {
            let dest = default_dest(&json!({ "filename": odd }), "file_1");
            assert!(
                dest.components().count() == 1 && dest != Path::new(".."),
                "{odd} → {}",
                dest.display()
            );
        }
        assert_eq!(
            partial(Path::new("out/r.csv")),
            PathBuf::from(format!("out/r.csv.{}.part", std::process::id()))
        );
    }

    #[test]
    fn sizes_read_for_people() {
        assert_eq!(size(&json!({ "size_bytes": 3_145_728 })), "3.00 MiB");
        assert_eq!(size(&json!({})), "-");
    }
}
