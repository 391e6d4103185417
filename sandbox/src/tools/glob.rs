//! The `glob` tool: files whose path relative to the search directory matches a glob.

use std::path::{Component, Path, PathBuf};

use globset::GlobBuilder;

use super::{paths::resolve, walk::walk};
use corral_sandbox_protocol::catalogue::GlobInput;

use crate::config::Limits;

/// Lists the files matching `input.pattern`, sorted, at most `limits.max_results`.
pub fn run(workspace: &Path, limits: &Limits, input: &GlobInput) -> Result<String, String> {
    if input.pattern.is_empty() {
        return Err("pattern is empty; try for example **/*.rs".to_owned());
    }
    let given_base = match &input.path {
        Some(path) => resolve(workspace, path)?,
        None => workspace.to_path_buf(),
    };
    let (base, pattern) = split_absolute(&given_base, &input.pattern);
    let matcher = GlobBuilder::new(&pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| format!("invalid glob pattern {:?}: {e}", input.pattern))?
        .compile_matcher();
    if !base.is_dir() {
        return Err(format!("{} is not a directory", base.display()));
    }
    let mut found = Vec::new();
    let mut more = 0usize;
    for entry in walk(&base).flatten() {
        if !entry.file_type().is_some_and(|t| t.is_file() || t.is_symlink()) {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(&base) else {
            continue;
        };
        if matcher.is_match(relative) {
            if found.len() < limits.max_results {
                found.push(entry.path().display().to_string());
            } else {
                more += 1;
            }
        }
    }
    if found.is_empty() {
        return Ok(format!(
            "No files match {:?} in {}",
            input.pattern,
            base.display()
        ));
    }
    let mut text = found.join("\n");
    if more > 0 {
        text.push_str(&format!(
            "\n[{more} more files match and are not shown; narrow the pattern or the path]"
        ));
    }
    Ok(text)
}

/// An absolute pattern is split into the directory before its first wildcard and the rest.
fn split_absolute(base: &Path, pattern: &str) -> (PathBuf, String) {
    let as_path = Path::new(pattern);
    if !as_path.is_absolute() {
        return (base.to_path_buf(), pattern.to_owned());
    }
    let mut dir = PathBuf::from("/");
    let mut rest = Vec::new();
    for component in as_path.components() {
        match component {
            Component::Normal(part) if rest.is_empty() && !has_wildcard(&part.to_string_lossy()) => {
                dir.push(part);
            }
            Component::Normal(part) => rest.push(part.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    // The last literal component may be the file name itself: match it rather than search inside it.
    if rest.is_empty()
        && let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned())
    {
        dir.pop();
        rest.push(name);
    }
    (dir, rest.join("/"))
}

fn has_wildcard(part: &str) -> bool {
    part.contains(['*', '?', '[', '{'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_patterns_search_from_their_literal_prefix() {
        let ws = Path::new("/ws");
        assert_eq!(
            split_absolute(ws, "/src/lib/**/*.rs"),
            (PathBuf::from("/src/lib"), "**/*.rs".to_owned())
        );
        assert_eq!(
            split_absolute(ws, "*.rs"),
            (PathBuf::from("/ws"), "*.rs".to_owned())
        );
        assert_eq!(
            split_absolute(ws, "/a/b.rs"),
            (PathBuf::from("/a"), "b.rs".to_owned())
        );
    }
}
