//! `corral skills create|update|get|list|versions|download|delete`: the Skills API (`/v1/skills`) of the key's
//! namespace. A skill is uploaded from its directory: every regular file below it, each sent as a `files[]` part
//! named `<directory>/<path>` (symlinks are refused rather than followed out of the directory).

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use reqwest::{
    Method,
    multipart::{Form, Part},
};
use serde_json::json;

use crate::{
    args::{Output, SkillCommand, SkillDownloadArgs, SkillListArgs},
    client::Client,
    error::{CliError, Result},
    files::{partial, stream_to_stdout, write_stream},
    output::{self, Column, age, field, time},
    resources::{deleted, id_segment},
};

/// The most files one skill may hold (the API's limit; more is refused here before anything is sent).
const MAX_FILES: usize = 500;

const SKILL_COLUMNS: &[Column] = &[
    Column::id(|v| field(v, "/id")),
    Column::new("NAME", |v| field(v, "/display_name")),
    Column::new("LATEST", |v| field(v, "/latest_version_id")),
    Column::new("AGE", |v| age(v, "/created_at")),
    Column::wide("UPDATED", |v| time(v, "/updated_at")),
];

const VERSION_COLUMNS: &[Column] = &[
    Column::new("VERSION", |v| field(v, "/id")),
    Column::new("NAME", |v| field(v, "/name")),
    Column::new("DESCRIPTION", |v| field(v, "/description")),
    Column::new("AGE", |v| age(v, "/created_at")),
];

/// Runs a skill command.
pub async fn run(client: &Client, format: Output, cmd: SkillCommand) -> Result<()> {
    match cmd {
        SkillCommand::Create(a) => {
            let mut form = form(&a.dir)?;
            if let Some(name) = a.display_name {
                form = form.text("display_name", name);
            }
            let req = client.request(Method::POST, "/v1/skills").multipart(form);
            output::object(format, &client.send(req).await?)
        }
        SkillCommand::Update(a) => {
            let path = format!("/v1/skills/{}/versions", id_segment(&a.id)?);
            let req = client.request(Method::POST, &path).multipart(form(&a.dir)?);
            output::object(format, &client.send(req).await?)
        }
        SkillCommand::Get(a) => {
            let path = format!("/v1/skills/{}", id_segment(&a.id)?);
            output::object(format, &client.get(&path, &[]).await?)
        }
        SkillCommand::List(a) => list(client, format, &a).await,
        SkillCommand::Versions(a) => {
            let path = format!("/v1/skills/{}/versions", id_segment(&a.id)?);
            let q = [("limit".to_owned(), "1000".to_owned())];
            let page = client.list(&path, &q, None).await?;
            output::list(format, &page.data, VERSION_COLUMNS, "no versions")
        }
        SkillCommand::Download(a) => download(client, format, a).await,
        SkillCommand::Delete(a) => {
            let path = format!("/v1/skills/{}", id_segment(&a.id)?);
            let res = client.delete(&path).await?;
            deleted(format, &res, "skill", &a.id)
        }
    }
}

async fn list(client: &Client, format: Output, args: &SkillListArgs) -> Result<()> {
    let limit = (!args.all).then_some(args.limit);
    let q = [(
        "limit".to_owned(),
        limit.map_or(1000, |l| l.clamp(1, 1000)).to_string(),
    )];
    let page = client.list("/v1/skills", &q, limit).await?;
    output::list(format, &page.data, SKILL_COLUMNS, "no skills")
}

/// The multipart form of the skill directory `dir`: each regular file a `files[]` part named
/// `<dir's name>/<path below dir>`.
fn form(dir: &Path) -> Result<Form> {
    let top = dir
        .canonicalize()
        .map_err(|e| CliError::Input(format!("{}: {e}", dir.display())))?;
    let name = top
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CliError::Input(format!("{} has no directory name", dir.display())))?;
    let mut files = Vec::new();
    collect(&top, Path::new(""), &mut files)?;
    if !files.iter().any(|(rel, _)| rel == Path::new("SKILL.md")) {
        return Err(CliError::Input(format!(
            "{} has no SKILL.md (with YAML frontmatter: name, description)",
            dir.display()
        )));
    }
    let mut form = Form::new();
    for (rel, bytes) in files {
        let part_name = format!("{name}/{}", rel.to_string_lossy());
        let mime = mime_guess::from_path(&rel).first_or_octet_stream();
        let part = Part::bytes(bytes)
            .file_name(part_name)
            .mime_str(mime.essence_str())
            .map_err(|e| CliError::Other(e.to_string()))?;
        form = form.part("files[]", part);
    }
    Ok(form)
}

/// The regular files below `dir` (`rel` is its path below the skill's top), sorted; symlinks are an error.
fn collect(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| CliError::Input(format!("reading {}: {e}", dir.display())))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| CliError::Input(format!("reading {}: {e}", dir.display())))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        let below = rel.join(entry.file_name());
        if kind.is_symlink() {
            return Err(CliError::Input(format!(
                "{} is a symlink: a skill's files are uploaded as they are, copy the file instead",
                path.display()
            )));
        } else if kind.is_dir() {
            collect(&path, &below, out)?;
        } else if kind.is_file() {
            if out.len() >= MAX_FILES {
                return Err(CliError::Input(format!(
                    "a skill holds at most {MAX_FILES} files"
                )));
            }
            let bytes =
                std::fs::read(&path).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
            out.push((below, bytes));
        }
    }
    Ok(())
}

async fn download(client: &Client, format: Output, args: SkillDownloadArgs) -> Result<()> {
    let id = id_segment(&args.id)?;
    let version = id_segment(&args.version)?;
    let res = client
        .execute(client.request(
            Method::GET,
            &format!("/v1/skills/{id}/versions/{version}/content"),
        ))
        .await?;
    let mut body = res.bytes_stream();
    if args.dest.as_deref() == Some(Path::new("-")) {
        return stream_to_stdout(&mut body, id).await;
    }
    let dest = args
        .dest
        .unwrap_or_else(|| PathBuf::from(format!("{id}-{version}.zip")));
    if !args.force && dest.exists() {
        return Err(CliError::Input(format!(
            "{} exists: pass --force to replace it",
            dest.display()
        )));
    }
    let part = partial(&dest);
    let written = match write_stream(&mut body, &part, &ProgressBar::hidden()).await {
        Ok(n) => n,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    tokio::fs::rename(&part, &dest)
        .await
        .map_err(|e| CliError::Input(format!("writing {}: {e}", dest.display())))?;
    if format.human() {
        crate::out!("downloaded {id} version {version} to {}", dest.display());
        Ok(())
    } else {
        let done = json!({ "id": id, "version": version, "path": dest.display().to_string(), "size_bytes": written });
        output::data(format, &done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_collected_file_by_file_and_a_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("SKILL.md"), "---\ndescription: d\n---\n").unwrap();
        std::fs::create_dir(dir.path().join("scripts")).unwrap();
        std::fs::write(dir.path().join("scripts/run.sh"), "echo hi").unwrap();
        let mut files = Vec::new();
        collect(dir.path(), Path::new(""), &mut files).unwrap();
        let paths: Vec<_> = files
            .iter()
            .map(|(p, _)| p.to_string_lossy().into_owned())
            .collect();
        assert_eq!(paths, ["SKILL.md", "scripts/run.sh"]);
        assert!(form(dir.path()).is_ok());

        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("passwd")).unwrap();
        let err = form(dir.path()).unwrap_err().to_string();
        assert!(err.contains("symlink"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        assert!(
            form(empty.path())
                .unwrap_err()
                .to_string()
                .contains("no SKILL.md")
        );
    }
}
