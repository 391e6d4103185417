//! The local sandbox: the daemon run as a child process in its own workspace directory, on a free loopback port,
//! with a fresh token, and in its own user, PID, mount, IPC and UTS namespaces where the machine allows (through
//! `unshare`). Used by the local runner and by tests; it speaks the same protocol as a sandbox pod.

use std::{
    io::Write,
    net::SocketAddr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use nix::{
    sys::signal::{Signal, kill},
    unistd::Pid,
};
use tokio::{process::Child, sync::OnceCell};

use crate::client::SandboxClient;
use crate::pod::{BINARY_NAME, ENV_PREFIX, vars};

/// `unshare` flags for a local sandbox. No network namespace: the daemon must stay reachable on loopback.
const UNSHARE_ARGS: &[&str] = &[
    "--user",
    "--map-current-user",
    "--pid",
    "--fork",
    "--kill-child=SIGTERM",
    "--mount",
    "--mount-proc",
    "--ipc",
    "--uts",
];

/// How a local sandbox is separated from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Namespaces when `unshare` works here, a plain child process otherwise.
    #[default]
    Auto,
    /// Namespaces, or fail.
    Namespaces,
    /// A plain child process.
    Plain,
}

/// How to start a local sandbox.
#[derive(Debug, Clone)]
pub struct LocalSandboxOptions {
    /// The daemon binary; found with [`find_daemon_binary`] when `None`.
    pub binary: Option<PathBuf>,
    /// The workspace directory (created if missing); a fresh temporary directory, removed on drop, when `None`.
    pub workspace: Option<PathBuf>,
    /// Namespaces or not.
    pub isolation: Isolation,
    /// More daemon flags, for example `--default-timeout-ms=5000`.
    pub extra_args: Vec<String>,
    /// The daemon's log filter (its logs go to this process's stdout).
    pub log_filter: String,
    /// How long the daemon may take to start listening.
    pub startup_timeout: Duration,
}

impl Default for LocalSandboxOptions {
    fn default() -> Self {
        Self {
            binary: None,
            workspace: None,
            isolation: Isolation::Auto,
            extra_args: Vec::new(),
            log_filter: "warn".to_owned(),
            startup_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a local sandbox did not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalSandboxError {
    /// No daemon binary was given or found.
    #[error(
        "cannot find the {BINARY_NAME} binary (set CORRAL_SANDBOX_BIN, put it next to this program or on PATH)"
    )]
    NoBinary,
    /// Namespaces were required and `unshare` does not work here.
    #[error("namespaces were required but `unshare` does not work on this machine")]
    NoNamespaces,
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The daemon exited before listening.
    #[error("the sandbox daemon exited before it was ready ({0})")]
    Exited(std::process::ExitStatus),
    /// The daemon did not listen in time.
    #[error("the sandbox daemon was not ready within {0:?}")]
    StartTimeout(Duration),
    /// The client could not be built.
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalSandboxError {
    let context = context.into();
    move |source| LocalSandboxError::Io { context, source }
}

/// A running local sandbox. Dropping it stops the daemon (SIGTERM) and removes the temporary directories.
#[derive(Debug)]
pub struct LocalSandbox {
    child: Child,
    client: SandboxClient,
    token: String,
    workspace: PathBuf,
    isolated: bool,
    _state_dir: tempfile::TempDir,
    _workspace_dir: Option<tempfile::TempDir>,
}

impl LocalSandbox {
    /// Starts a daemon and waits until it listens.
    pub async fn start(options: LocalSandboxOptions) -> Result<Self, LocalSandboxError> {
        let binary = match options.binary.clone() {
            Some(binary) => binary,
            None => find_daemon_binary().ok_or(LocalSandboxError::NoBinary)?,
        };
        let isolated = match options.isolation {
            Isolation::Plain => false,
            Isolation::Auto => namespaces_work().await,
            Isolation::Namespaces if namespaces_work().await => true,
            Isolation::Namespaces => return Err(LocalSandboxError::NoNamespaces),
        };
        let state_dir = tempfile::Builder::new()
            .prefix("corral-sandbox-")
            .tempdir()
            .map_err(io("creating the sandbox state directory"))?;
        let (workspace, workspace_dir) = match &options.workspace {
            Some(path) => {
                std::fs::create_dir_all(path).map_err(io(format!("creating {}", path.display())))?;
                (path.clone(), None)
            }
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("corral-workspace-")
                    .tempdir()
                    .map_err(io("creating the workspace"))?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        let workspace =
            std::fs::canonicalize(&workspace).map_err(io(format!("resolving {}", workspace.display())))?;
        let token = crate::random_hex(32);
        let token_file = state_dir.path().join("token");
        write_private(&token_file, &token)?;
        let addr_file = state_dir.path().join("addr");

        let mut command = if isolated {
            let mut c = tokio::process::Command::new("unshare");
            c.args(UNSHARE_ARGS).arg("--").arg(&binary);
            c
        } else {
            tokio::process::Command::new(&binary)
        };
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with(ENV_PREFIX) {
                command.env_remove(key);
            }
        }
        command
            .arg("--addr=127.0.0.1:0")
            .arg(format!("--token-file={}", token_file.display()))
            .arg(format!("--workspace={}", workspace.display()))
            .arg(format!("--addr-file={}", addr_file.display()))
            .arg(format!("--log={}", options.log_filter))
            .arg("--log-format=text")
            .args(&options.extra_args)
            .current_dir(&workspace)
            .stdin(Stdio::null());
        let mut child = command
            .spawn()
            .map_err(io(format!("starting {}", binary.display())))?;
        let addr = match wait_for_addr(&mut child, &addr_file, options.startup_timeout).await {
            Ok(addr) => addr,
            Err(e) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(e);
            }
        };
        let client = match SandboxClient::new(format!("http://{addr}"), token.clone()) {
            Ok(client) => client,
            Err(e) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(e.into());
            }
        };
        tracing::debug!(%addr, isolated, workspace = %workspace.display(), "started a local sandbox");
        Ok(Self {
            child,
            client,
            token,
            workspace,
            isolated,
            _state_dir: state_dir,
            _workspace_dir: workspace_dir,
        })
    }

    /// The client for this sandbox.
    pub fn client(&self) -> &SandboxClient {
        &self.client
    }

    /// The bearer token the daemon accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The workspace directory.
    pub fn workspace(&self) -> &Path {
        &self.workspace
    }

    /// Whether the daemon runs in its own namespaces.
    pub fn is_isolated(&self) -> bool {
        self.isolated
    }

    /// The process id of the child (the daemon, or `unshare` in front of it).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the daemon: SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub async fn stop(mut self, grace: Duration) -> std::io::Result<std::process::ExitStatus> {
        self.terminate();
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                self.child.start_kill()?;
                self.child.wait().await
            }
        }
    }

    /// Sends SIGTERM to the daemon. In namespaces the child is `unshare`, which ignores SIGTERM while it waits:
    /// the daemon is its child then. If that cannot be found, killing `unshare` makes the kernel send the daemon
    /// SIGTERM (`--kill-child`).
    fn terminate(&self) {
        let Some(pid) = self.child.id().and_then(|id| i32::try_from(id).ok()) else {
            return;
        };
        if !self.isolated {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            return;
        }
        let daemons = children_of(pid);
        if daemons.is_empty() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        for daemon in daemons {
            let _ = kill(Pid::from_raw(daemon), Signal::SIGTERM);
        }
    }
}

impl Drop for LocalSandbox {
    fn drop(&mut self) {
        // SIGTERM lets the daemon kill its shell's process group; in namespaces, the kernel ends the rest.
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// The processes whose parent is `parent`, from `/proc`.
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses, so split after the last ')'.
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

async fn wait_for_addr(
    child: &mut Child,
    addr_file: &Path,
    limit: Duration,
) -> Result<SocketAddr, LocalSandboxError> {
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(addr_file)
            && let Ok(addr) = text.trim().parse::<SocketAddr>()
        {
            return Ok(addr);
        }
        if let Some(status) = child.try_wait().map_err(io("waiting for the sandbox daemon"))? {
            return Err(LocalSandboxError::Exited(status));
        }
        if started.elapsed() > limit {
            return Err(LocalSandboxError::StartTimeout(limit));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), LocalSandboxError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(format!("creating {}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(io(format!("writing {}", path.display())))
}

/// Whether `unshare` can give a child its own namespaces here (checked once per process).
pub async fn namespaces_work() -> bool {
    static WORKS: OnceCell<bool> = OnceCell::const_new();
    *WORKS
        .get_or_init(|| async {
            tokio::process::Command::new("unshare")
                .args(UNSHARE_ARGS)
                .args(["--", "true"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|status| status.success())
        })
        .await
}

/// Finds the daemon binary: `$CORRAL_SANDBOX_BIN`, next to the current executable (or one directory up, for test
/// binaries in `target/*/deps`), then `PATH`.
pub fn find_daemon_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(vars::BIN) {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let mut candidates: Vec<PathBuf> = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(BINARY_NAME))
        .collect();
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join(BINARY_NAME)));
    }
    candidates.into_iter().find(|path| path.is_file())
}
