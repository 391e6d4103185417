//! Memory paths: the SDK's rules (a leading `/`, 1 to 20 segments, none empty, `.` or `..`, no control or format
//! characters nor U+2028/U+2029, Normalization Form C, at most 1,024 bytes), `path_prefix` filters, and how a
//! listing with a `depth` rolls deeper paths up into `memory_prefix` items.

use unicode_normalization::is_nfc;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::ApiError;

/// The longest path, in UTF-8 bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// The most segments of a path.
pub const MAX_SEGMENTS: usize = 20;

/// Why a character may not be in a path, if it may not.
fn forbidden(c: char) -> Option<&'static str> {
    match c.general_category() {
        GeneralCategory::Control => Some("a control character"),
        GeneralCategory::Format => Some("a format character"),
        GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => {
            Some("a line or paragraph separator")
        }
        _ => None,
    }
}

/// Checks the characters, form and size shared by paths and prefixes; `what` names the request field.
fn check_text(field: &str, path: &str) -> Result<(), ApiError> {
    if !path.starts_with('/') {
        return Err(ApiError::field(field, "must start with /"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(ApiError::field(
            field,
            format!("is {} bytes, over the limit of {MAX_PATH_BYTES}", path.len()),
        ));
    }
    if let Some((c, why)) = path.chars().find_map(|c| forbidden(c).map(|w| (c, w))) {
        return Err(ApiError::field(
            field,
            format!("must not contain {why} (U+{:04X})", u32::from(c)),
        ));
    }
    if !is_nfc(path) {
        return Err(ApiError::field(field, "must be in Unicode Normalization Form C"));
    }
    Ok(())
}

/// Checks segments: none empty, `.` or `..`, and at most [`MAX_SEGMENTS`] of them.
fn check_segments<'a>(field: &str, segments: impl Iterator<Item = &'a str>) -> Result<usize, ApiError> {
    let mut count = 0;
    for segment in segments {
        count += 1;
        match segment {
            "" => return Err(ApiError::field(field, "must not have an empty segment (//)")),
            "." | ".." => {
                return Err(ApiError::field(
                    field,
                    format!("must not have a {segment:?} segment"),
                ));
            }
            _ => {}
        }
    }
    if count > MAX_SEGMENTS {
        return Err(ApiError::field(
            field,
            format!("has {count} segments, over the limit of {MAX_SEGMENTS}"),
        ));
    }
    Ok(count)
}

/// Checks a memory's path (request field `field`).
pub fn check_path(field: &str, path: &str) -> Result<(), ApiError> {
    check_text(field, path)?;
    check_segments(field, path[1..].split('/'))?;
    Ok(())
}

/// Checks a `path_prefix`: `/`, or a path's first segments followed by `/`.
pub fn check_prefix(prefix: &str) -> Result<(), ApiError> {
    const FIELD: &str = "path_prefix";
    check_text(FIELD, prefix)?;
    let Some(inner) = prefix.strip_suffix('/') else {
        return Err(ApiError::field(FIELD, "must end with /"));
    };
    if !inner.is_empty() {
        check_segments(FIELD, inner[1..].split('/'))?;
    }
    Ok(())
}

/// What a listing shows for one stored path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed<'a> {
    /// The memory itself.
    Memory,
    /// A `memory_prefix` standing for it and its siblings below `depth`: the prefix, ending in `/`.
    Prefix(&'a str),
}

/// How `path` (below `prefix`) is listed at `depth` (0: every memory itself).
pub fn listed<'a>(path: &'a str, prefix: &str, depth: usize) -> Listed<'a> {
    if depth == 0 {
        return Listed::Memory;
    }
    let rest = &path[prefix.len().min(path.len())..];
    match rest.match_indices('/').nth(depth - 1) {
        Some((at, _)) => Listed::Prefix(&path[..prefix.len() + at + 1]),
        None => Listed::Memory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_sdks_rules_and_errors_name_the_field() {
        check_path("path", "/notes.md").unwrap();
        check_path("path", "/projects/foo/notes.md").unwrap();
        check_path("path", "/Ünïcode/ok").unwrap();
        let twenty = "/a".repeat(20);
        check_path("path", &twenty).unwrap();
        for bad in [
            "notes.md",
            "/",
            "/a//b",
            "/a/",
            "/a/./b",
            "/a/../b",
            "/a\tb",
            "/a\u{200b}b",
            "/a\u{2028}b",
            "/e\u{301}",
        ] {
            let err = check_path("path", bad).unwrap_err();
            assert!(err.message.starts_with("path: "), "{bad:?}: {}", err.message);
            assert_eq!(err.status, 400);
        }
        let err = check_path("path", &format!("{twenty}/a")).unwrap_err();
        assert!(err.message.contains("21 segments"), "{}", err.message);
        let long = format!("/{}", "x".repeat(MAX_PATH_BYTES));
        assert!(check_path("path", &long).unwrap_err().message.contains("bytes"));
    }

    #[test]
    fn prefixes_end_with_a_slash() {
        check_prefix("/").unwrap();
        check_prefix("/notes/").unwrap();
        for bad in ["/notes", "notes/", "//", "/a//"] {
            let err = check_prefix(bad).unwrap_err();
            assert!(
                err.message.starts_with("path_prefix: "),
                "{bad:?}: {}",
                err.message
            );
        }
    }

    #[test]
    fn depth_rolls_deeper_paths_up_into_prefixes() {
        assert_eq!(listed("/a/b/c.md", "/", 0), Listed::Memory);
        assert_eq!(listed("/a/b/c.md", "/", 1), Listed::Prefix("/a/"));
        assert_eq!(listed("/a/b/c.md", "/", 2), Listed::Prefix("/a/b/"));
        assert_eq!(listed("/a/b/c.md", "/", 3), Listed::Memory);
        assert_eq!(listed("/a/b/c.md", "/a/", 1), Listed::Prefix("/a/b/"));
        assert_eq!(listed("/top.md", "/", 1), Listed::Memory);
    }
}
