//! The daemon's command line and environment.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser};
use corral_runtime::LogArgs;
use corral_sandbox_protocol::pod::{DAEMON_PORT, vars};

use crate::auth::TokenCheck;

/// The sandbox daemon: runs the agent toolset for the harness over HTTP.
#[derive(Parser, Debug, Clone)]
#[command(name = "corral-sandbox", version, about)]
pub struct Config {
    /// The address to serve on. Port 0 picks a free port (see --addr-file).
    #[arg(long, env = vars::ADDR, default_value_t = SocketAddr::from(([0, 0, 0, 0], DAEMON_PORT)))]
    pub addr: SocketAddr,
    /// A file holding the bearer token the harness must present (surrounding whitespace is ignored).
    #[arg(long, env = vars::TOKEN_FILE, conflicts_with = "token")]
    pub token_file: Option<PathBuf>,
    /// The bearer token itself. Prefer --token-file: a flag is visible to other processes.
    #[arg(long, env = vars::TOKEN, hide_env_values = true)]
    pub token: Option<String>,
    /// The SHA-256 of the bearer token (64 hex characters) instead of the token: what a sandbox pod is given, so
    /// the token is not in its spec.
    #[arg(long, env = vars::TOKEN_SHA256, conflicts_with_all = ["token", "token_file"])]
    pub token_sha256: Option<String>,
    /// The workspace: relative paths resolve against it and the shell starts in it. Created if missing.
    #[arg(long, env = vars::WORKSPACE, default_value = ".")]
    pub workspace: PathBuf,
    /// Once listening, write the bound address to this file (written whole, by rename).
    #[arg(long, env = vars::ADDR_FILE)]
    pub addr_file: Option<PathBuf>,
    /// Where the Environment's packages were installed (by `corral-sandbox install-packages`): its directories go
    /// on the shell's `PATH`, `PYTHONPATH`, `NODE_PATH`, `GEM_PATH` and `LD_LIBRARY_PATH`.
    #[arg(long, env = vars::PACKAGES_DIR)]
    pub packages_dir: Option<PathBuf>,
    /// The egress proxy's URL. With it, the first `bash` call asks the proxy which credential placeholders the
    /// session's vaults put in the shell (set by the operator; the values themselves never enter the sandbox).
    #[arg(long, env = vars::EGRESS_URL, requires_all = ["egress_user", "egress_password"])]
    pub egress_url: Option<String>,
    /// The pod's proxy user.
    #[arg(long, env = vars::EGRESS_USER)]
    pub egress_user: Option<String>,
    /// The pod's proxy password.
    #[arg(long, env = vars::EGRESS_PASSWORD, hide_env_values = true)]
    pub egress_password: Option<String>,
    /// The egress CA's certificate (PEM): the shell trusts it besides the image's roots, so HTTPS through the
    /// egress proxy works where it injects credentials.
    #[arg(long, env = vars::EGRESS_CA)]
    pub egress_ca: Option<String>,
    /// Tool limits.
    #[command(flatten)]
    pub limits: Limits,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// The limits every tool call runs under.
#[derive(Args, Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The shell the `bash` tool runs (a bash-compatible shell).
    #[arg(long, env = "CORRAL_SANDBOX_SHELL", default_value = "bash")]
    pub shell: String,
    /// How long a `bash` command may run when the call gives no `timeout_ms`.
    #[arg(long, env = "CORRAL_SANDBOX_DEFAULT_TIMEOUT_MS", default_value_t = 120_000)]
    pub default_timeout_ms: u64,
    /// The largest `timeout_ms` a call may ask for; larger values are lowered to it.
    #[arg(long, env = "CORRAL_SANDBOX_MAX_TIMEOUT_MS", default_value_t = 600_000)]
    pub max_timeout_ms: u64,
    /// The most bytes of text a tool returns; longer output keeps its head and tail around a truncation marker.
    #[arg(long, env = "CORRAL_SANDBOX_MAX_OUTPUT_BYTES", default_value_t = 64 * 1024)]
    pub max_output_bytes: usize,
    /// The most lines `read` returns per call.
    #[arg(long, env = "CORRAL_SANDBOX_MAX_READ_LINES", default_value_t = 2000)]
    pub max_read_lines: usize,
    /// Lines longer than this many characters are cut in `read` and `grep` output.
    #[arg(long, env = "CORRAL_SANDBOX_MAX_LINE_CHARS", default_value_t = 2000)]
    pub max_line_chars: usize,
    /// The most paths `glob` and matches `grep` return.
    #[arg(long, env = "CORRAL_SANDBOX_MAX_RESULTS", default_value_t = 1000)]
    pub max_results: usize,
    /// Files larger than this are skipped by `grep` and refused by `edit`.
    #[arg(long, env = "CORRAL_SANDBOX_MAX_FILE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub max_file_bytes: u64,
    /// The largest request body accepted (a `write` carries the whole file); larger requests get 413.
    #[arg(long, env = "CORRAL_SANDBOX_MAX_BODY_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_body_bytes: usize,
}

impl Config {
    /// The pod's egress identity, when the operator gave it one.
    pub fn egress(&self) -> Option<crate::egress::EgressIdentity> {
        Some(crate::egress::EgressIdentity {
            url: self.egress_url.clone()?,
            user: self.egress_user.clone()?,
            password: self.egress_password.clone()?,
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            shell: "bash".to_owned(),
            default_timeout_ms: 120_000,
            max_timeout_ms: 600_000,
            max_output_bytes: 64 * 1024,
            max_read_lines: 2000,
            max_line_chars: 2000,
            max_results: 1000,
            max_file_bytes: 64 * 1024 * 1024,
            max_body_bytes: 32 * 1024 * 1024,
        }
    }
}

impl Config {
    /// The check of the bearer token, from `--token-sha256`, `--token-file` or `--token`. A daemon without one
    /// refuses to start.
    pub fn token_check(&self) -> anyhow::Result<TokenCheck> {
        match &self.token_sha256 {
            Some(hex) => TokenCheck::from_sha256_hex(hex).map_err(|e| anyhow::anyhow!("--token-sha256: {e}")),
            None => Ok(TokenCheck::new(&self.load_token()?)),
        }
    }

    /// The token, from `--token-file` or `--token`.
    fn load_token(&self) -> anyhow::Result<String> {
        let token = match (&self.token_file, &self.token) {
            (Some(path), _) => std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading the token file {}: {e}", path.display()))?,
            (None, Some(token)) => token.clone(),
            (None, None) => anyhow::bail!(
                "no token: give --token-sha256 (CORRAL_SANDBOX_TOKEN_SHA256), --token-file \
                 (CORRAL_SANDBOX_TOKEN_FILE) or CORRAL_SANDBOX_TOKEN"
            ),
        };
        let token = token.trim().to_owned();
        if token.len() < 16 {
            anyhow::bail!("the token is too short ({} bytes); use at least 16", token.len());
        }
        Ok(token)
    }
}
