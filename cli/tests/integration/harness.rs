//! A real gateway for the CLI's tests: `corral-gateway serve` as a child process, against a real redis-server and
//! the kube-apiserver of `$KUBECONFIG` (hack/cli-it.sh brings the light mode up); tenants made with
//! `corral-gateway create-key`; and the real `corral` binary run against it.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use corral_session::testing::RedisServer;
use serde_json::Value;

/// The kubeconfig of the API server under test.
pub fn kubeconfig() -> PathBuf {
    std::env::var_os("KUBECONFIG").map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../e2e/.state/kubeconfig")),
        PathBuf::from,
    )
}

/// The `corral-gateway` binary: `$CORRAL_GATEWAY_BIN`, else the workspace's debug build.
fn gateway_bin() -> PathBuf {
    let path = std::env::var_os("CORRAL_GATEWAY_BIN").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/debug/corral-gateway"
            ))
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no gateway binary at {} : run hack/cli-it.sh (or cargo build -p corral-gateway)",
        path.display()
    );
    path
}

/// A running `corral-gateway serve` and its Redis.
pub struct Gateway {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    port: u16,
    extra: Vec<String>,
    child: Option<Child>,
    redis: RedisServer,
    dir: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The status of `GET path` on loopback `port`, if it answers.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s =
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_millis(300)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A second gateway process on the same Redis.
pub struct Replica {
    /// Its URL.
    pub url: String,
    child: Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `corral-gateway serve` on `port` and waits until it is ready; `None` if it exited (port taken).
fn serve(redis_url: &str, port: u16, log: &std::path::Path, extra: &[String]) -> Option<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut child = Command::new(gateway_bin())
        .args(["--log-format", "text", "serve", "--redis-url", redis_url])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(extra)
        .env("KUBECONFIG", kubeconfig())
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("corral-gateway serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http_status(port, "/readyz") == Some(200) {
            return Some(child);
        }
        if child.try_wait().expect("wait").is_some() {
            return None;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Gateway {
    /// Starts Redis and the gateway, and waits until the gateway is ready (API keys loaded).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Like [`Gateway::start`], with more `serve` flags.
    pub fn start_with(extra: &[&str]) -> Self {
        let redis = RedisServer::start().expect("redis-server");
        let dir = tempfile::tempdir().expect("tempdir");
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        let log = dir.path().join("gateway.log");
        for _ in 0..5 {
            let port = free_port();
            if let Some(child) = serve(&redis.url(), port, &log, &extra) {
                return Self {
                    url: format!("http://127.0.0.1:{port}"),
                    port,
                    extra,
                    child: Some(child),
                    redis,
                    dir,
                };
            }
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("the gateway did not become ready:\n{log}");
    }

    /// Another gateway on the same Redis and API server (another replica), on its own port.
    pub fn replica(&self) -> Replica {
        for _ in 0..5 {
            let port = free_port();
            if let Some(child) = serve(
                &self.redis.url(),
                port,
                &self.dir.path().join("replica.log"),
                &self.extra,
            ) {
                return Replica {
                    url: format!("http://127.0.0.1:{port}"),
                    child,
                };
            }
        }
        panic!("the replica did not become ready");
    }

    /// Kills the gateway (SIGKILL: open streams break without a goodbye).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the gateway again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = serve(
                &self.redis.url(),
                self.port,
                &self.dir.path().join("gateway.log"),
                &self.extra,
            ) {
                self.child = Some(child);
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
        panic!("the gateway did not come back on port {}", self.port);
    }

    /// A fresh namespace and key (`corral-gateway create-key`), usable once `corral agents list` accepts it.
    pub fn tenant(&self) -> Tenant {
        let ns = format!("cli-it-{}", suffix());
        let out = Command::new(gateway_bin())
            .args(["--log-format", "text", "create-key", "--namespace", &ns])
            .env("KUBECONFIG", kubeconfig())
            .output()
            .expect("create-key");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let key = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
        let tenant = Tenant {
            url: self.url.clone(),
            key,
            config: self.dir.path().join(format!("{ns}.toml")),
        };
        for _ in 0..200 {
            if tenant.run(&["agents", "list"]).status.code() != Some(4) {
                return tenant;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("the new key never became valid");
    }
}

/// A short unique lowercase suffix.
pub fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("{:x}{:x}", nanos, std::process::id())
}

/// A namespace's key and the `corral` binary set up for it (through the environment; an empty config file path).
#[derive(Clone, Debug)]
pub struct Tenant {
    /// The gateway's URL.
    pub url: String,
    /// The API key.
    pub key: String,
    /// A config file nobody writes (so the user's own is never read).
    pub config: PathBuf,
}

/// What a finished `corral` printed.
pub struct Run {
    /// Exit status.
    pub status: std::process::ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Self {
        Self {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert!(
            self.status.success(),
            "corral failed ({}):\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts success and parses stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    /// Asserts the exit code and one error line on stderr, and returns stderr.
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(
            self.status.code(),
            Some(code),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(self.stderr.starts_with("error: "), "{}", self.stderr);
        &self.stderr
    }
}

impl Tenant {
    /// `corral` with this tenant's URL and key in the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
        cmd.args(args);
        self.configure(&mut cmd);
        cmd
    }

    /// Gives `cmd` this tenant's URL and key in the environment, no colors and no standard input.
    pub fn configure(&self, cmd: &mut Command) {
        cmd.env("CORRAL_URL", &self.url)
            .env("CORRAL_API_KEY", &self.key)
            .env("CORRAL_CONFIG", &self.config)
            .env("NO_COLOR", "1")
            .env_remove("CLICOLOR_FORCE")
            .stdin(Stdio::null());
    }

    /// Runs `corral args…` in a real pseudo-terminal of `cols` columns (util-linux `script`, TERM=xterm-256color),
    /// with colors unless `no_color` (then `NO_COLOR=1`); returns what the terminal received, CRLF turned to LF.
    pub fn in_terminal(&self, args: &[&str], cols: u16, no_color: bool) -> String {
        let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_corral"))
            .chain(args.iter().copied())
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        let inner = format!("stty cols {cols} rows 50 && exec {}", quoted.join(" "));
        let mut cmd = Command::new("script");
        cmd.args(["-q", "-e", "-c", &inner, "/dev/null"])
            .env("CORRAL_URL", &self.url)
            .env("CORRAL_API_KEY", &self.key)
            .env("CORRAL_CONFIG", &self.config)
            .env("TERM", "xterm-256color")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("CLICOLOR")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null());
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        let out = cmd.output().expect("script (util-linux) runs");
        let screen = String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n");
        assert!(
            out.status.success(),
            "corral {args:?} in a terminal failed ({}): {screen}",
            out.status
        );
        screen
    }

    /// Runs `corral args…` to the end.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run corral"))
    }

    /// Runs `corral args…` with `stdin` as standard input.
    pub fn run_with_input(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn corral");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        Run::from(child.wait_with_output().expect("wait"))
    }

    /// Starts `corral args…` in the background, reading its output line by line.
    pub fn spawn(&self, args: &[&str], stdin: bool) -> Running {
        let mut cmd = self.command(args);
        if stdin {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn corral");
        Running {
            lines: lines_of(child.stdout.take().expect("stdout")),
            errors: lines_of(child.stderr.take().expect("stderr")),
            child,
        }
    }

    /// Creates an agent (scripted provider), an environment and a session; returns their ids.
    pub fn session(&self) -> (String, String, String) {
        let created = self
            .run(&[
                "agents",
                "create",
                "--name",
                "a",
                "--model",
                "m",
                "--script-ref",
                "script/steps",
                "-o",
                "json",
            ])
            .json();
        assert_eq!(created["model"]["provider"]["type"], "scripted", "{created}");
        assert_eq!(
            created["model"]["provider"]["script_ref"]["name"], "script",
            "{created}"
        );
        let agent = created["id"].as_str().expect("agent id").to_owned();
        let env = self.run(&["envs", "create", "--name", "e", "-o", "json"]).json()["id"]
            .as_str()
            .expect("env id")
            .to_owned();
        let session = self
            .run(&[
                "sessions", "create", "--agent", &agent, "--env", &env, "-o", "json",
            ])
            .json()["id"]
            .as_str()
            .expect("session id")
            .to_owned();
        (agent, env, session)
    }
}

fn lines_of(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A `corral` running in the background.
pub struct Running {
    /// The child.
    pub child: Child,
    lines: mpsc::Receiver<String>,
    errors: mpsc::Receiver<String>,
}

impl Running {
    /// Reads stdout lines until one satisfies `pred` (within 30 s), returning every line read.
    pub fn until(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = pred(&line);
                    seen.push(line);
                    if done {
                        return seen;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let errors: Vec<String> = self.errors.try_iter().collect();
                    panic!("never saw {what}; stdout: {seen:?}; stderr: {errors:?}");
                }
            }
        }
    }

    /// The next stdout line within `timeout`, if any.
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// Writes a line to its standard input.
    pub fn write_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin piped");
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
    }

    /// Sends SIGINT (Ctrl-C).
    pub fn interrupt(&self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).expect("SIGINT");
    }

    /// Waits for the exit (within 30 s) and returns the exit code and the rest of stderr.
    pub fn wait(&mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                // The reader thread ends at the pipe's end: read everything up to it.
                let mut stderr = Vec::new();
                while let Ok(line) = self.errors.recv_timeout(Duration::from_secs(5)) {
                    stderr.push(line);
                }
                return (status.code(), stderr.join("\n"));
            }
            assert!(Instant::now() < deadline, "corral did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
