//! The `edit` tool: exact string replacement, refusing when the old text is missing or not unique.

use std::path::Path;

use super::paths::{cut_line, io_error, resolve};
use corral_sandbox_protocol::catalogue::EditInput;

use crate::config::Limits;

/// Lines of context shown around the first replacement.
const CONTEXT_LINES: usize = 3;
/// At most this many line numbers are listed when `old_string` is not unique.
const LISTED_MATCHES: usize = 20;

/// Applies the edit in `input`. Nothing is written when it fails.
pub fn run(workspace: &Path, limits: &Limits, input: &EditInput) -> Result<String, String> {
    let path = resolve(workspace, &input.file_path)?;
    if input.old_string.is_empty() {
        return Err("old_string is empty; to create a file or replace all of it, use write".to_owned());
    }
    if input.old_string == input.new_string {
        return Err("old_string and new_string are identical; there is nothing to change".to_owned());
    }
    let meta = std::fs::metadata(&path).map_err(|e| io_error("reading", &path, &e))?;
    if meta.is_dir() {
        return Err(format!("{} is a directory, not a file", path.display()));
    }
    if meta.len() > limits.max_file_bytes {
        return Err(format!(
            "{} is {} bytes, above the {} bytes edit works on; use bash (for example sed) instead",
            path.display(),
            meta.len(),
            limits.max_file_bytes
        ));
    }
    let bytes = std::fs::read(&path).map_err(|e| io_error("reading", &path, &e))?;
    let content = String::from_utf8(bytes).map_err(|_| {
        format!(
            "{} is not UTF-8 text; edit works on text files only",
            path.display()
        )
    })?;
    let starts: Vec<usize> = content
        .match_indices(input.old_string.as_str())
        .map(|(i, _)| i)
        .collect();
    let replace_all = input.replace_all.unwrap_or(false);
    match starts.len() {
        0 => {
            return Err(format!(
                "old_string was not found in {}. It must match the file exactly, including whitespace and \
                 indentation; read the file again and copy the text to replace.",
                path.display()
            ));
        }
        1 => {}
        n if !replace_all => {
            let mut lines: Vec<String> = starts
                .iter()
                .take(LISTED_MATCHES)
                .map(|&i| line_of(&content, i).to_string())
                .collect();
            if n > LISTED_MATCHES {
                lines.push("...".to_owned());
            }
            return Err(format!(
                "old_string was found {n} times in {} (starting on lines {}); include more surrounding text so \
                 it matches exactly once, or set replace_all to true to replace every occurrence",
                path.display(),
                lines.join(", ")
            ));
        }
        _ => {}
    }
    let updated = if replace_all {
        content.replace(input.old_string.as_str(), &input.new_string)
    } else {
        content.replacen(input.old_string.as_str(), &input.new_string, 1)
    };
    std::fs::write(&path, &updated).map_err(|e| io_error("writing", &path, &e))?;
    let first_line = line_of(&content, starts[0]);
    let new_lines = input.new_string.lines().count().max(1);
    Ok(format!(
        "Replaced {} occurrence{} in {}. The first edited region now reads:\n{}",
        starts.len(),
        if starts.len() == 1 { "" } else { "s" },
        path.display(),
        snippet(&updated, first_line, new_lines, limits.max_line_chars)
    ))
}

/// The 1-indexed line on which byte `at` lies.
fn line_of(text: &str, at: usize) -> usize {
    memchr::memchr_iter(b'\n', &text.as_bytes()[..at]).count() + 1
}

/// Lines around `first..first+count`, numbered like `cat -n`.
fn snippet(text: &str, first: usize, count: usize, max_chars: usize) -> String {
    let from = first.saturating_sub(CONTEXT_LINES).max(1);
    let to = first + count - 1 + CONTEXT_LINES;
    text.lines()
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(n, _)| (from..=to).contains(n))
        .map(|(n, line)| format!("{n:>6}\t{}\n", cut_line(line, max_chars)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_from_one() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }

    #[test]
    fn the_snippet_shows_context_around_the_edit() {
        let text = (1..=10).map(|i| format!("l{i}\n")).collect::<String>();
        let s = snippet(&text, 5, 1, 100);
        assert_eq!(
            s,
            "     2\tl2\n     3\tl3\n     4\tl4\n     5\tl5\n     6\tl6\n     7\tl7\n     8\tl8\n"
        );
    }
}
