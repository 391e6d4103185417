//! The `bash` tool: a command in the session's persistent shell, reported for the model.

use std::{sync::Arc, time::Duration};

use super::shell::{Ending, Shell};
use corral_sandbox_protocol::{ToolResult, catalogue::BashInput};

use crate::config::Limits;

/// Runs one `bash` call. The shell work runs in its own task, so a harness that hangs up mid-command cannot leave
/// the shell half-read.
pub async fn run(shell: Arc<Shell>, limits: &Limits, input: BashInput) -> ToolResult {
    let mut notes = Vec::new();
    let timeout_ms = match input.timeout_ms {
        Some(0) => return ToolResult::error("timeout_ms must be at least 1"),
        Some(ms) if ms > limits.max_timeout_ms => {
            notes.push(format!(
                "timeout_ms {ms} is above the maximum {}; the maximum was used.",
                limits.max_timeout_ms
            ));
            limits.max_timeout_ms
        }
        Some(ms) => ms,
        None => limits.default_timeout_ms,
    };
    let restart = input.restart.unwrap_or(false);
    let command = input.command.filter(|c| !c.trim().is_empty());
    if !restart && command.is_none() {
        return ToolResult::error("bash needs a `command` (or `restart: true` to start a fresh shell)");
    }
    let task = tokio::spawn(async move {
        let mut restarted_in = None;
        if restart {
            match shell.restart().await {
                Ok(cwd) => restarted_in = Some(cwd),
                Err(e) => return Err(e),
            }
        }
        match command {
            Some(command) => shell
                .run(&command, Duration::from_millis(timeout_ms))
                .await
                .map(|outcome| (restarted_in, Some(outcome))),
            None => Ok((restarted_in, None)),
        }
    });
    let (restarted_in, outcome) = match task.await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => return ToolResult::error(format!("bash is unavailable: {e}")),
        Err(e) => return ToolResult::error(format!("bash failed inside the sandbox daemon: {e}")),
    };
    if let Some(cwd) = &restarted_in {
        notes.insert(0, format!("Started a fresh shell in {}.", cwd.display()));
    }
    let Some(outcome) = outcome else {
        return ToolResult::ok(notes.join("\n"));
    };
    notes.extend(outcome.notes);
    let mut text = outcome.output;
    let mut is_error = false;
    let status_line = match outcome.ending {
        Ending::Finished(0) => None,
        Ending::Finished(code) => Some(format!("[exit code {code}]")),
        Ending::TimedOut { restarted } => {
            is_error = true;
            Some(if restarted {
                format!(
                    "[the command timed out after {timeout_ms} ms and was killed with every process it started; \
                     the shell was restarted in {} with its exported variables restored]",
                    outcome.cwd.display()
                )
            } else {
                format!(
                    "[the command timed out after {timeout_ms} ms and was killed with every process it started; \
                     a new shell could not be started, the next call will try again]"
                )
            })
        }
        Ending::ShellExited(Some(code)) => Some(format!(
            "[the shell exited with status {code} while running this command; the next command runs in a new shell \
             in {} with the exported variables restored]",
            outcome.cwd.display()
        )),
        // No exit status: a signal killed the shell (the sandbox is shutting down, or something killed it), so
        // the command did not complete.
        Ending::ShellExited(None) => {
            is_error = true;
            Some(format!(
                "[the shell was killed by a signal while running this command, which did not complete; the next \
                 command runs in a new shell in {} with the exported variables restored]",
                outcome.cwd.display()
            ))
        }
    };
    if let Some(line) = status_line {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
    }
    if !notes.is_empty() {
        text = format!("[{}]\n{text}", notes.join(" "));
    }
    if text.is_empty() {
        text = "(no output)".to_owned();
    }
    ToolResult {
        is_error,
        ..ToolResult::ok(text)
    }
}
