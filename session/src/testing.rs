//! A real `redis-server` for tests: started on a free loopback port with a temporary directory, killed on drop.
//!
//! Enabled by the `test-support` feature. `redis-server` comes from Debian's package (`hack/tools.sh` installs
//! it); set `REDIS_SERVER` to use another binary.

pub mod s3;

use std::{
    io::{self, Read, Write},
    net::{Ipv4Addr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// How a test server persists its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// `appendfsync always`: every acknowledged write is on disk before the reply (the default here, and what a
    /// session log needs to survive the loss of its machine).
    Always,
    /// `appendfsync everysec`: at most one second of acknowledged writes lost if the machine (not just the
    /// process) dies.
    EverySec,
}

/// A `redis-server` child process with the append-only file on, owned by a test.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    fsync: Fsync,
}

impl RedisServer {
    /// Starts a server with `appendonly yes` and `appendfsync always`, and waits until it answers.
    pub fn start() -> io::Result<Self> {
        Self::start_with(Fsync::Always)
    }

    /// Starts a server with `appendonly yes` and the given fsync policy, and waits until it answers.
    pub fn start_with(fsync: Fsync) -> io::Result<Self> {
        let dir = tempfile::Builder::new().prefix("corral-redis-").tempdir()?;
        let mut last_error = None;
        // The port is free when picked but may be taken before the server binds it: try a few.
        for _ in 0..5 {
            let port = free_port()?;
            match spawn(dir.path(), port, fsync) {
                Ok(child) => {
                    return Ok(Self {
                        child: Some(child),
                        port,
                        dir,
                        fsync,
                    });
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    /// The URL to connect to (`redis://127.0.0.1:<port>/`).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory (append-only file, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server with SIGKILL (no shutdown, no final save) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL ends a stopped process too
            let _ = child.wait();
        }
    }

    /// Freezes the server (SIGSTOP): it keeps its connections but answers nothing, like a stalled or partitioned
    /// Redis. [`RedisServer::resume`] lets it go on.
    pub fn pause(&self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Lets a paused server go on (SIGCONT); it then runs the commands that queued up meanwhile.
    pub fn resume(&self) -> io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> io::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| io::Error::other("redis-server is not running"))?;
        let status = Command::new("kill").arg(signal).arg(pid.to_string()).status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill {signal} {pid} failed: {status}")))
        }
    }

    /// Starts the server again on the same port and directory, after [`RedisServer::kill`] (or kills it first). It
    /// reloads its append-only file before it answers.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        self.child = Some(spawn(self.dir.path(), self.port, self.fsync)?);
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `redis-server` on `port` in `dir` and waits until it answers PING.
fn spawn(dir: &Path, port: u16, fsync: Fsync) -> io::Result<Child> {
    let binary =
        std::env::var_os("REDIS_SERVER").map_or_else(|| PathBuf::from("redis-server"), PathBuf::from);
    let log = dir.join("redis.log");
    let fsync = match fsync {
        Fsync::Always => "always",
        Fsync::EverySec => "everysec",
    };
    let mut child = Command::new(&binary)
        .arg("--port")
        .arg(port.to_string())
        .args([
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--save",
            "",
        ])
        .args(["--appendonly", "yes", "--appendfsync", fsync])
        .arg("--dir")
        .arg(dir)
        .arg("--logfile")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot run {}: {e} (install it with hack/tools.sh)",
                    binary.display()
                ),
            )
        })?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if ping(port) {
            return Ok(child);
        }
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            return Err(io::Error::other(format!(
                "redis-server exited with {status} on port {port}: {}",
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "redis-server did not answer PING within 20s",
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

/// Whether a server on `port` answers PING (not while it is still loading its data).
fn ping(port: u16) -> bool {
    let Ok(mut stream) =
        TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_millis(200))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// How many clients the Redis of `store` has connected (`CLIENT LIST`), the asking connection included.
pub async fn client_count(store: &crate::Store) -> crate::Result<usize> {
    let mut conn = store.connection();
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut conn).await?;
    Ok(list.lines().count())
}
