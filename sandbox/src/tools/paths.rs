//! Where a path given by the model points, and whether a file is text.

use std::path::{Path, PathBuf};

/// How many leading bytes decide whether a file is binary.
pub const SNIFF_BYTES: usize = 8 * 1024;

/// `path` as given, or joined to the workspace when relative.
pub fn resolve(workspace: &Path, path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("the path is empty".to_owned());
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte".to_owned());
    }
    let path = Path::new(path);
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        workspace.join(path)
    })
}

/// Whether these leading bytes of a file look binary (a NUL byte, as `grep` and `git` decide).
pub fn looks_binary(prefix: &[u8]) -> bool {
    memchr::memchr(0, &prefix[..prefix.len().min(SNIFF_BYTES)]).is_some()
}

/// A clear message for an I/O error on `path`.
pub fn io_error(action: &str, path: &Path, error: &std::io::Error) -> String {
    match error.kind() {
        std::io::ErrorKind::NotFound => format!("{} does not exist", path.display()),
        std::io::ErrorKind::PermissionDenied => format!("permission denied {action} {}", path.display()),
        _ => format!("error {action} {}: {error}", path.display()),
    }
}

/// `line` cut to `max_chars` characters, saying how much was cut.
pub fn cut_line(line: &str, max_chars: usize) -> String {
    match line.char_indices().nth(max_chars) {
        None => line.to_owned(),
        Some((at, _)) => {
            let rest = line[at..].chars().count();
            format!("{}... [line truncated: {rest} more characters]", &line[..at])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_resolve_against_the_workspace() {
        let ws = Path::new("/ws");
        assert_eq!(resolve(ws, "a/b").unwrap(), PathBuf::from("/ws/a/b"));
        assert_eq!(resolve(ws, "/etc/x").unwrap(), PathBuf::from("/etc/x"));
        assert!(resolve(ws, "").is_err());
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        assert_eq!(cut_line("héllo", 10), "héllo");
        assert_eq!(cut_line("héllo", 2), "hé... [line truncated: 3 more characters]");
    }
}
