//! The `read` tool: a text file with line numbers, like `cat -n`, a window at a time.

use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    path::Path,
};

use super::paths::{SNIFF_BYTES, cut_line, io_error, looks_binary, resolve};
use corral_sandbox_protocol::catalogue::ReadInput;

use crate::{config::Limits, truncate::limit_text};

/// Reads the file named in `input`.
pub fn run(workspace: &Path, limits: &Limits, input: &ReadInput) -> Result<String, String> {
    let path = resolve(workspace, &input.file_path)?;
    let (start, end) = match input.view_range {
        None => (1, None),
        Some([start, _]) if start < 1 => {
            return Err(format!(
                "view_range start must be at least 1 (lines are 1-indexed), got {start}"
            ));
        }
        Some([start, end]) if end <= 0 => (start as u64, None),
        Some([start, end]) if end < start => {
            return Err(format!("view_range end ({end}) is before its start ({start})"));
        }
        Some([start, end]) => (start as u64, Some(end as u64)),
    };
    let meta = std::fs::metadata(&path).map_err(|e| io_error("reading", &path, &e))?;
    if meta.is_dir() {
        return Err(format!(
            "{} is a directory; use glob to list files, or bash with ls",
            path.display()
        ));
    }
    let mut file = File::open(&path).map_err(|e| io_error("opening", &path, &e))?;
    let mut prefix = Vec::with_capacity(SNIFF_BYTES);
    (&mut file)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| io_error("reading", &path, &e))?;
    if looks_binary(&prefix) {
        return Err(format!(
            "{} is a binary file ({} bytes); read shows text only, inspect it with bash (for example `xxd {} | head`)",
            path.display(),
            meta.len(),
            path.display()
        ));
    }
    if meta.len() == 0 {
        return Ok(format!("(the file {} is empty)", path.display()));
    }
    let mut reader = BufReader::new(prefix.as_slice().chain(file));
    let max_lines = limits.max_read_lines.max(1) as u64;
    let last_wanted = end.unwrap_or(u64::MAX).min(start + max_lines - 1);
    let mut out = String::new();
    let mut line = Vec::new();
    let mut number = 0u64;
    let mut shown_until = 0u64;
    let mut out_of_room = false;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| io_error("reading", &path, &e))?;
        if n == 0 {
            break;
        }
        number += 1;
        if number < start || number > last_wanted || out_of_room {
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches('\n').trim_end_matches('\r');
        out.push_str(&format!(
            "{number:>6}\t{}\n",
            cut_line(text, limits.max_line_chars)
        ));
        shown_until = number;
        out_of_room = out.len() >= limits.max_output_bytes;
    }
    let total = number;
    if start > total {
        return Err(format!(
            "view_range starts at line {start} but {} has only {total} lines",
            path.display()
        ));
    }
    let asked_until = end.unwrap_or(total).min(total);
    if shown_until < asked_until {
        out.push_str(&format!(
            "\n[showing lines {start}-{shown_until} of {total}; call read again with view_range [{}, ...] for more]\n",
            shown_until + 1
        ));
    }
    Ok(limit_text(out, limits.max_output_bytes + 256))
}
