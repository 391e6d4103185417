//! Walking a directory tree for `glob` and `grep`: sorted, honouring `.gitignore` and `.ignore` files, showing
//! hidden files but never descending into `.git`.

use std::path::Path;

use ignore::{Walk, WalkBuilder};

/// A deterministic walk of `root`.
pub fn walk(root: &Path) -> Walk {
    WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|entry| entry.file_name() != ".git")
        .build()
}
