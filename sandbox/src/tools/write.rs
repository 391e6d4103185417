//! The `write` tool: create or overwrite a file, creating its parent directories.

use std::path::Path;

use super::paths::{io_error, resolve};
use corral_sandbox_protocol::catalogue::WriteInput;

/// Writes the file named in `input`.
pub fn run(workspace: &Path, input: &WriteInput) -> Result<String, String> {
    let path = resolve(workspace, &input.file_path)?;
    if path.is_dir() {
        return Err(format!("{} is a directory, not a file", path.display()));
    }
    let existed = path.exists();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io_error("creating the directory", parent, &e))?;
    }
    std::fs::write(&path, &input.content).map_err(|e| io_error("writing", &path, &e))?;
    let lines = input.content.lines().count();
    Ok(format!(
        "{} {} ({} bytes, {lines} lines)",
        if existed { "Overwrote" } else { "Created" },
        path.display(),
        input.content.len()
    ))
}
