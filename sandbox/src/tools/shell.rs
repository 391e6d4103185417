//! The persistent shell behind the `bash` tool: one long-lived bash process in its own process group. Each command
//! is sent with `eval` and followed by a fresh random marker that carries the exit status, the new working
//! directory and the exported variables, so state carries over between calls and can be restored after a restart.
//! A command that outlives its timeout is killed with its whole process group and the shell is restarted.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::atomic::{AtomicBool, AtomicI32, Ordering},
    time::Duration,
};

use nix::{
    sys::signal::{Signal, killpg},
    unistd::Pid,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    process::{Child, ChildStdin, ChildStdout, Command},
    sync::Mutex,
    time::Instant,
};

use crate::truncate::HeadTail;

/// How long to wait for a killed shell to be reaped.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Variables set for every shell so that nothing waits for a human or paints colours.
const NON_INTERACTIVE_ENV: &[(&str, &str)] = &[
    ("TERM", "dumb"),
    ("NO_COLOR", "1"),
    ("PAGER", "cat"),
    ("GIT_PAGER", "cat"),
    ("GIT_TERMINAL_PROMPT", "0"),
    ("DEBIAN_FRONTEND", "noninteractive"),
];

/// What a shell needs to start.
#[derive(Debug, Clone)]
pub struct ShellOptions {
    /// The program (a bash-compatible shell).
    pub program: String,
    /// Where a fresh shell starts.
    pub workspace: PathBuf,
    /// How much output one command keeps (head and tail).
    pub max_output_bytes: usize,
    /// Variables set for the shell on top of the daemon's environment (the installed packages' paths).
    pub env: Vec<(String, String)>,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The command finished with this exit status.
    Finished(i32),
    /// The command ran past its timeout; its process group was killed. `restarted` says whether a new shell runs.
    TimedOut {
        /// Whether a new shell was started.
        restarted: bool,
    },
    /// The shell itself exited during the command (for example `exit 3`), with this status if known.
    ShellExited(Option<i32>),
}

/// The result of one command.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The merged stdout and stderr, truncated in the middle if long.
    pub output: String,
    /// How it ended.
    pub ending: Ending,
    /// The shell's working directory after the command (or the one a restarted shell is in).
    pub cwd: PathBuf,
    /// Things the model should know (a shell that had to be started again, ...).
    pub notes: Vec<String>,
}

/// The session's persistent shell.
pub struct Shell {
    options: ShellOptions,
    state: Mutex<State>,
    /// The running shell's process group (0 when none), readable without waiting for a running command.
    pgid: AtomicI32,
    /// Set at shutdown: no new shell starts.
    closed: AtomicBool,
    /// Variables bound to the session after the daemon started (credential placeholders), for shells started later.
    session_env: std::sync::Mutex<Vec<(String, String)>>,
}

struct State {
    process: Option<Process>,
    cwd: PathBuf,
    exports: Option<Vec<u8>>,
    runs: u64,
    nonce: String,
}

struct Process {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    pgid: Option<Pid>,
}

enum ReadEnd {
    Timeout,
    Closed,
}

struct Trailer {
    status: i32,
    cwd: PathBuf,
    exports: Vec<u8>,
}

impl Shell {
    /// A shell that starts on first use.
    pub fn new(options: ShellOptions) -> Self {
        let cwd = options.workspace.clone();
        Self {
            options,
            session_env: std::sync::Mutex::new(Vec::new()),
            state: Mutex::new(State {
                process: None,
                cwd,
                exports: None,
                runs: 0,
                nonce: crate::random_hex(12),
            }),
            pgid: AtomicI32::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs `command`, waiting at most `timeout`. `Err` only when no shell can be started at all.
    pub async fn run(&self, command: &str, timeout: Duration) -> Result<Outcome, String> {
        if command.contains('\0') {
            return Err("the command contains a NUL byte, which a shell cannot run".to_owned());
        }
        let mut state = self.state.lock().await;
        let mut notes = Vec::new();
        if state.process.is_none() {
            self.spawn(&mut state, &mut notes).await?;
        }
        state.runs += 1;
        let marker = format!("__corral_{}_{}", state.nonce, state.runs);
        let script = wrap(command, &marker);
        if !send(&mut state, &script).await {
            // The shell died between calls (killed from outside, or a background job ended it): start another.
            self.kill(&mut state).await;
            notes.push("The previous shell had exited; this command ran in a new one.".to_owned());
            self.spawn(&mut state, &mut notes).await?;
            if !send(&mut state, &script).await {
                self.kill(&mut state).await;
                return Err("the shell exits as soon as it starts".to_owned());
            }
        }
        let deadline = Instant::now() + timeout;
        let mut output = HeadTail::new(self.options.max_output_bytes);
        let result = match state.process.as_mut() {
            Some(process) => read_until_marker(&mut process.stdout, &marker, &mut output, deadline).await,
            None => Err(ReadEnd::Closed),
        };
        let ending = match result {
            Ok(trailer) => {
                state.cwd = trailer.cwd;
                state.exports = Some(trailer.exports);
                Ending::Finished(trailer.status)
            }
            Err(ReadEnd::Timeout) => {
                self.kill(&mut state).await;
                let restarted = self.spawn(&mut state, &mut notes).await.is_ok();
                Ending::TimedOut { restarted }
            }
            Err(ReadEnd::Closed) => {
                let status = self.kill(&mut state).await;
                Ending::ShellExited(status)
            }
        };
        Ok(Outcome {
            output: output.render(),
            ending,
            cwd: state.cwd.clone(),
            notes,
        })
    }

    /// Kills the shell and starts a fresh one in the workspace, without the previous exports.
    pub async fn restart(&self) -> Result<PathBuf, String> {
        let mut state = self.state.lock().await;
        self.kill(&mut state).await;
        state.cwd = self.options.workspace.clone();
        state.exports = None;
        let mut notes = Vec::new();
        self.spawn(&mut state, &mut notes).await?;
        Ok(state.cwd.clone())
    }

    /// The running shell's process id, if one runs.
    pub fn pid(&self) -> Option<Pid> {
        match self.pgid.load(Ordering::SeqCst) {
            0 => None,
            pid => Some(Pid::from_raw(pid)),
        }
    }

    /// Sets the variables every shell started from now on gets (on top of the daemon's environment).
    pub fn set_session_env(&self, env: Vec<(String, String)>) {
        if let Ok(mut current) = self.session_env.lock() {
            *current = env;
        }
    }

    /// Kills the running command's shell and everything it started, without waiting for the command: the call
    /// running it returns (the shell exited) and the next one starts a new shell in the same directory with the same
    /// exports. For a call its caller abandoned (an interrupt, a lost replica).
    pub fn interrupt(&self) {
        let pgid = self.pgid.load(Ordering::SeqCst);
        if pgid > 0 {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }

    /// Kills the shell and everything it started, without waiting for a running command, and starts no other.
    pub fn shutdown(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let pgid = self.pgid.swap(0, Ordering::SeqCst);
        if pgid > 0 {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }

    async fn spawn(&self, state: &mut State, notes: &mut Vec<String>) -> Result<(), String> {
        if self.closed.load(Ordering::SeqCst) {
            return Err("the sandbox daemon is shutting down".to_owned());
        }
        if !state.cwd.is_dir() {
            notes.push(format!(
                "The working directory {} no longer exists; the shell starts in {}.",
                state.cwd.display(),
                self.options.workspace.display()
            ));
            state.cwd = self.options.workspace.clone();
        }
        let mut command = Command::new(&self.options.program);
        if Path::new(&self.options.program)
            .file_name()
            .is_some_and(|name| name == "bash")
        {
            command.args(["--noprofile", "--norc"]);
        }
        for (key, _) in std::env::vars_os() {
            if key
                .to_string_lossy()
                .starts_with(corral_sandbox_protocol::pod::ENV_PREFIX)
            {
                command.env_remove(key);
            }
        }
        command
            .envs(NON_INTERACTIVE_ENV.iter().copied())
            .envs(self.options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(self.session_env.lock().map(|e| e.clone()).unwrap_or_default())
            .current_dir(&state.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| format!("could not start the shell `{}`: {e}", self.options.program))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err("the shell started without pipes".to_owned());
        };
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .map(Pid::from_raw);
        self.pgid
            .store(pgid.map(|p| p.as_raw()).unwrap_or(0), Ordering::SeqCst);
        state.process = Some(Process {
            child,
            stdin,
            stdout,
            pgid,
        });
        let mut init = b"exec 2>&1\n".to_vec();
        if let Some(exports) = &state.exports {
            init.extend_from_slice(b"builtin eval ");
            init.extend_from_slice(ansi_c_quote(exports).as_bytes());
            init.extend_from_slice(b" 2>/dev/null\n");
        }
        if !send(state, &init).await {
            self.kill(state).await;
            return Err(format!(
                "the shell `{}` exited as soon as it started",
                self.options.program
            ));
        }
        tracing::debug!(cwd = %state.cwd.display(), "started a shell");
        Ok(())
    }

    /// Kills the shell's process group and reaps it; returns its exit status if it had one.
    async fn kill(&self, state: &mut State) -> Option<i32> {
        let mut process = state.process.take()?;
        if let Some(pgid) = process.pgid {
            // ESRCH means the group is already gone, which is what we want.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
        let _ = process.child.start_kill();
        let status = match tokio::time::timeout(KILL_WAIT, process.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => None,
        };
        // Only now may the reaper wait for this pid: the status above was ours to read.
        self.pgid.store(0, Ordering::SeqCst);
        status
    }
}

/// Writes to the shell's stdin; false when the shell is gone.
async fn send(state: &mut State, bytes: &[u8]) -> bool {
    let Some(process) = state.process.as_mut() else {
        return false;
    };
    process.stdin.write_all(bytes).await.is_ok() && process.stdin.flush().await.is_ok()
}

/// The text sent for one command: the command under `eval` with stdin closed, then the marker, the exit status,
/// the working directory and the exported variables.
fn wrap(command: &str, marker: &str) -> Vec<u8> {
    format!(
        "builtin eval {} < /dev/null\n__corral_status=$?\n\
         builtin printf '\\n%s %d\\n%s\\0' '{marker}' \"$__corral_status\" \"$PWD\"\n\
         builtin export -p\n\
         builtin printf '\\0%s_end\\n' '{marker}'\n",
        ansi_c_quote(command.as_bytes())
    )
    .into_bytes()
}

/// Quotes bytes as a bash `$'...'` string.
fn ansi_c_quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 3);
    out.push_str("$'");
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('\'');
    out
}

async fn read_some(stdout: &mut ChildStdout, buf: &mut [u8], deadline: Instant) -> Result<usize, ReadEnd> {
    match tokio::time::timeout_at(deadline, stdout.read(buf)).await {
        Err(_) => Err(ReadEnd::Timeout),
        Ok(Ok(0) | Err(_)) => Err(ReadEnd::Closed),
        Ok(Ok(n)) => Ok(n),
    }
}

/// Reads the command's output into `output` until its marker, then the trailer after it.
async fn read_until_marker(
    stdout: &mut ChildStdout,
    marker: &str,
    output: &mut HeadTail,
    deadline: Instant,
) -> Result<Trailer, ReadEnd> {
    let start = format!("\n{marker} ").into_bytes();
    let end = format!("\0{marker}_end\n").into_bytes();
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut trailer = loop {
        if let Some(i) = memchr::memmem::find(&pending, &start) {
            output.push(&pending[..i]);
            break pending.split_off(i + start.len());
        }
        // Keep just enough to find a marker split across reads.
        let keep = start.len() - 1;
        if pending.len() > keep {
            let cut = pending.len() - keep;
            output.push(&pending[..cut]);
            pending.drain(..cut);
        }
        match read_some(stdout, &mut buf, deadline).await {
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(end) => {
                // What was held back in case it began a marker is output after all.
                output.push(&pending);
                return Err(end);
            }
        }
    };
    loop {
        if let Some(i) = memchr::memmem::find(&trailer, &end) {
            trailer.truncate(i);
            return Ok(parse_trailer(&trailer));
        }
        let n = read_some(stdout, &mut buf, deadline).await?;
        trailer.extend_from_slice(&buf[..n]);
    }
}

/// Parses `{status}\n{cwd}\0{export -p output}`.
fn parse_trailer(trailer: &[u8]) -> Trailer {
    let (status, rest) = split_once(trailer, b'\n');
    let (cwd, exports) = split_once(rest, b'\0');
    Trailer {
        status: String::from_utf8_lossy(status).trim().parse().unwrap_or(-1),
        cwd: PathBuf::from(String::from_utf8_lossy(cwd).into_owned()),
        exports: exports.to_vec(),
    }
}

fn split_once(bytes: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match memchr::memchr(sep, bytes) {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_what_bash_would_interpret() {
        assert_eq!(ansi_c_quote(b"echo 'a'\\n"), r"$'echo \'a\'\\n'");
        assert_eq!(ansi_c_quote("é\n\x01".as_bytes()), r"$'\xc3\xa9\n\x01'");
    }

    #[test]
    fn the_trailer_carries_status_cwd_and_exports() {
        let t = parse_trailer(b"3\n/tmp/x y\0declare -x A=\"1\"\n");
        assert_eq!(t.status, 3);
        assert_eq!(t.cwd, PathBuf::from("/tmp/x y"));
        assert_eq!(t.exports, b"declare -x A=\"1\"\n");
    }
}
