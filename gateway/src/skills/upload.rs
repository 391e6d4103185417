//! Reading a skill upload: the multipart parts `files[]` (each part's file name carries its path, all under one
//! top-level directory holding `SKILL.md`) and `display_name`, checked into what a version stores.

use axum::extract::Multipart;
use bytes::Bytes;
use corral_api::skill_md;

use crate::error::{ApiError, ApiResult};

/// Most bytes one version's files may take together (8 MiB, as the Managed Agents API allows).
pub const MAX_SKILL_BYTES: u64 = 8 << 20;
/// Room for the multipart framing of [`MAX_SKILL_FILES`] parts and the `display_name` above the files' bytes.
pub const FRAMING_BYTES: usize = 1 << 20;
/// Most files one version may hold.
pub const MAX_SKILL_FILES: usize = 500;
/// Longest path of one file.
const MAX_PATH_BYTES: usize = 512;
/// Longest segment of a path (the sandbox writes each file next to its place under a longer temporary name, and a
/// file name has at most 255 bytes).
const MAX_SEGMENT_BYTES: usize = 200;
/// Longest `display_name`.
const MAX_DISPLAY_NAME_CHARS: usize = 255;
/// How long the client may send nothing.
const IDLE: std::time::Duration = std::time::Duration::from_secs(30);

/// A checked upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillUpload {
    /// The slug: `SKILL.md`'s frontmatter `name`, else its directory's name.
    pub name: String,
    /// `SKILL.md`'s frontmatter `description`.
    pub description: String,
    /// The `display_name` part, if sent.
    pub display_name: Option<String>,
    /// The files by their path below the skill's directory, in upload order.
    pub files: Vec<(String, Bytes)>,
}

fn too_large() -> ApiError {
    let mut err = ApiError::for_status(axum::http::StatusCode::PAYLOAD_TOO_LARGE);
    err.message = format!("files: a skill's files may take at most {MAX_SKILL_BYTES} bytes together");
    err.with_code("skill_too_large")
}

/// Reads the multipart body (holding at most [`MAX_SKILL_BYTES`] of file content) and checks it.
pub async fn read(mut multipart: Multipart, display_name_allowed: bool) -> ApiResult<SkillUpload> {
    let mut files: Vec<(String, Bytes)> = Vec::new();
    let mut display_name = None;
    let mut total = 0u64;
    loop {
        let field = tokio::time::timeout(IDLE, multipart.next_field())
            .await
            .map_err(|_| ApiError::invalid("body: the upload stalled"))?
            .map_err(|e| ApiError::invalid(format!("body: {e}")))?;
        let Some(mut field) = field else { break };
        let name = field.name().unwrap_or_default().to_owned();
        let mut bytes = Vec::new();
        let limit = match name.as_str() {
            "files[]" | "files" => MAX_SKILL_BYTES - total,
            "display_name" if display_name_allowed => 4 * MAX_DISPLAY_NAME_CHARS as u64,
            other => return Err(ApiError::field(other, "Extra inputs are not permitted")),
        };
        let path = field.file_name().map(str::to_owned);
        loop {
            let chunk = tokio::time::timeout(IDLE, field.chunk())
                .await
                .map_err(|_| ApiError::invalid("body: the upload stalled"))?
                .map_err(|e| ApiError::invalid(format!("body: {e}")))?;
            let Some(chunk) = chunk else { break };
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(if name == "display_name" {
                    ApiError::field(
                        "display_name",
                        format!("at most {MAX_DISPLAY_NAME_CHARS} characters"),
                    )
                } else {
                    too_large()
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        if name == "display_name" {
            let text =
                String::from_utf8(bytes).map_err(|_| ApiError::field("display_name", "not UTF-8 text"))?;
            display_name = Some(text);
            continue;
        }
        let path =
            path.ok_or_else(|| ApiError::field("files", "each file part needs a file name (its path)"))?;
        total += bytes.len() as u64;
        files.push((path, Bytes::from(bytes)));
    }
    check(files, display_name)
}

/// Checks an upload's files and display name (see the module documentation).
pub fn check(files: Vec<(String, Bytes)>, display_name: Option<String>) -> ApiResult<SkillUpload> {
    if let Some(name) = &display_name {
        let name = name.trim();
        if name.is_empty() || name.contains(['\n', '\r']) || name.chars().count() > MAX_DISPLAY_NAME_CHARS {
            return Err(ApiError::field(
                "display_name",
                format!("must be one line of 1 to {MAX_DISPLAY_NAME_CHARS} characters"),
            ));
        }
    }
    if files.is_empty() {
        return Err(ApiError::field(
            "files",
            "is required: the skill's files, each part's file name its path (my-skill/SKILL.md)",
        ));
    }
    if files.len() > MAX_SKILL_FILES {
        return Err(ApiError::field(
            "files",
            format!("at most {MAX_SKILL_FILES} files"),
        ));
    }
    let mut top: Option<String> = None;
    let mut out: Vec<(String, Bytes)> = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        let (dir, rest) = split_path(&path)?;
        match &top {
            None => top = Some(dir.to_owned()),
            Some(t) if t != dir => {
                return Err(ApiError::field(
                    "files",
                    format!("all files must be in one top-level directory; got {t:?} and {dir:?}"),
                ));
            }
            Some(_) => {}
        }
        if out.iter().any(|(p, _)| p == rest) {
            return Err(ApiError::field("files", format!("{path:?} is uploaded twice")));
        }
        // A path cannot be a file and a directory at once.
        if let Some((p, _)) = out.iter().find(|(p, _)| is_below(rest, p) || is_below(p, rest)) {
            return Err(ApiError::field(
                "files",
                format!(
                    "{path:?} and {dir}/{p} cannot both be: one names a file the other needs as a directory"
                ),
            ));
        }
        out.push((rest.to_owned(), bytes));
    }
    let top = top.unwrap_or_default();
    let skill_md = out
        .iter()
        .find(|(p, _)| p == "SKILL.md")
        .ok_or_else(|| ApiError::field("files", format!("{top}/SKILL.md is required")))?;
    let text = std::str::from_utf8(&skill_md.1)
        .map_err(|_| ApiError::field("files", "SKILL.md is not UTF-8 text"))?;
    let header = skill_md::parse(text).map_err(|why| ApiError::field("files", why))?;
    let name = header.name.unwrap_or_else(|| top.clone());
    if !skill_md::slug_ok(&name) {
        return Err(ApiError::field("files", skill_md::bad_slug(&name)));
    }
    let description = header.description;
    Ok(SkillUpload {
        name,
        description,
        display_name: display_name.map(|d| d.trim().to_owned()),
        files: out,
    })
}

/// A file name split into its top-level directory and the path below it, both made of plain segments.
fn split_path(path: &str) -> ApiResult<(&str, &str)> {
    let bad = |why: &str| ApiError::field("files", format!("file name {path:?}: {why}"));
    if path.len() > MAX_PATH_BYTES {
        return Err(bad(&format!("longer than {MAX_PATH_BYTES} bytes")));
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Err(bad("must use / between segments and hold no control characters"));
    }
    let Some((dir, rest)) = path.split_once('/') else {
        return Err(bad("must be under the skill's directory (my-skill/SKILL.md)"));
    };
    if path.split('/').any(|seg| matches!(seg, "" | "." | "..")) {
        return Err(bad("no segment may be empty, . or .."));
    }
    if path.split('/').any(|seg| seg.len() > MAX_SEGMENT_BYTES) {
        return Err(bad(&format!(
            "a segment is longer than {MAX_SEGMENT_BYTES} bytes"
        )));
    }
    Ok((dir, rest))
}

/// Whether `path` lies below `dir` (`dir/...`).
fn is_below(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> (String, Bytes) {
        (path.to_owned(), Bytes::from(text.to_owned()))
    }

    const SKILL: &str =
        "---\nname: csv-report\ndescription: Turns a CSV into a report.\n---\n# Use\nRun it.\n";

    #[test]
    fn a_skill_directory_gives_its_name_description_and_paths_below_it() {
        let up = check(
            vec![
                file("csv/SKILL.md", SKILL),
                file("csv/scripts/run.py", "print(1)"),
            ],
            Some(" CSV reports ".into()),
        )
        .unwrap();
        assert_eq!(up.name, "csv-report");
        assert_eq!(up.description, "Turns a CSV into a report.");
        assert_eq!(up.display_name.as_deref(), Some("CSV reports"));
        let paths: Vec<_> = up.files.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["SKILL.md", "scripts/run.py"]);
    }

    #[test]
    fn without_a_frontmatter_name_the_directory_names_the_skill() {
        let up = check(vec![file("my-tool/SKILL.md", "---\ndescription: d\n---\n")], None).unwrap();
        assert_eq!(up.name, "my-tool");
    }

    #[test]
    fn uploads_that_are_not_one_skill_directory_are_refused_naming_why() {
        let cases: Vec<(Vec<(String, Bytes)>, &str)> = vec![
            (vec![], "is required"),
            (vec![file("SKILL.md", SKILL)], "under the skill's directory"),
            (
                vec![file("a/SKILL.md", SKILL), file("b/x", "")],
                "one top-level directory",
            ),
            (vec![file("a/notes.md", "x")], "a/SKILL.md is required"),
            (vec![file("a/../SKILL.md", SKILL)], "empty, . or .."),
            (vec![file("a//SKILL.md", SKILL)], "empty, . or .."),
            (vec![file("a\\SKILL.md", SKILL)], "must use /"),
            (vec![file("a/SKILL.md", "# no frontmatter")], "YAML frontmatter"),
            (vec![file("a/SKILL.md", "---\nname: a\n---\n")], "description"),
            (
                vec![file("a/SKILL.md", "---\nname: Big Name\ndescription: d\n---\n")],
                "kebab-case",
            ),
            (vec![file("a/SKILL.md", "---\n: [\n---\n")], "not valid YAML"),
            (
                vec![file("a/SKILL.md", SKILL), file("a/SKILL.md", SKILL)],
                "uploaded twice",
            ),
            (
                vec![file("a/SKILL.md", SKILL), file("a/x", ""), file("a/x/y", "")],
                "as a directory",
            ),
            (
                vec![
                    file("a/SKILL.md", SKILL),
                    file(&format!("a/{}", "n".repeat(201)), ""),
                ],
                "longer than 200",
            ),
        ];
        for (files, want) in cases {
            let err = check(files.clone(), None).unwrap_err();
            assert_eq!(err.status.as_u16(), 400, "{files:?}");
            assert!(err.message.contains(want), "{files:?}: {}", err.message);
        }
        let err = check(vec![file("a/SKILL.md", SKILL)], Some("two\nlines".into())).unwrap_err();
        assert!(err.message.starts_with("display_name"), "{}", err.message);
    }
}
