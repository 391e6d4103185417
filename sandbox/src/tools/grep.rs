//! The `grep` tool: lines matching a regular expression, as `path:line:text`.

use std::path::Path;

use regex::bytes::RegexBuilder;

use super::{
    paths::{cut_line, looks_binary, resolve},
    walk::walk,
};
use corral_sandbox_protocol::catalogue::GrepInput;

use crate::{config::Limits, truncate::limit_text};

/// How long a line of grep output may be, at most.
const MAX_MATCH_LINE_CHARS: usize = 500;

/// Searches `input.path` (a file or a directory) for `input.pattern`.
pub fn run(workspace: &Path, limits: &Limits, input: &GrepInput) -> Result<String, String> {
    if input.pattern.is_empty() {
        return Err("pattern is empty".to_owned());
    }
    let regex = RegexBuilder::new(&input.pattern)
        .size_limit(16 * 1024 * 1024)
        .build()
        .map_err(|e| format!("invalid regular expression: {e}"))?;
    let root = match &input.path {
        Some(path) => resolve(workspace, path)?,
        None => workspace.to_path_buf(),
    };
    if !root.exists() {
        return Err(format!("{} does not exist", root.display()));
    }
    let mut out = String::new();
    let mut matches = 0usize;
    let mut more = 0usize;
    let mut skipped_large = 0usize;
    let line_chars = limits.max_line_chars.min(MAX_MATCH_LINE_CHARS);
    for entry in walk(&root).flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        if entry.metadata().is_ok_and(|m| m.len() > limits.max_file_bytes) {
            skipped_large += 1;
            continue;
        }
        let Ok(bytes) = std::fs::read(path) else {
            continue;
        };
        if looks_binary(&bytes) {
            continue;
        }
        let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            if !regex.is_match(line) {
                continue;
            }
            if matches >= limits.max_results {
                more += 1;
                continue;
            }
            matches += 1;
            let text = String::from_utf8_lossy(line);
            let text = text.trim_end_matches('\r');
            out.push_str(&format!(
                "{}:{}:{}\n",
                path.display(),
                i + 1,
                cut_line(text, line_chars)
            ));
        }
    }
    if matches == 0 {
        out = format!("No matches for {:?} in {}", input.pattern, root.display());
    }
    if more > 0 {
        out.push_str(&format!(
            "[{more} more matching lines are not shown; narrow the pattern or the path]\n"
        ));
    }
    if skipped_large > 0 {
        out.push_str(&format!(
            "[{skipped_large} files larger than {} bytes were not searched]\n",
            limits.max_file_bytes
        ));
    }
    Ok(limit_text(out, limits.max_output_bytes))
}
