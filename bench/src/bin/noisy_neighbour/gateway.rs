//! The gateway under test: the release `corral-gateway` binary as a process of its own, with its default limits,
//! as a deployment runs it.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// A running `corral-gateway serve`; killed when dropped.
pub struct Gateway {
    child: Child,
    /// The API's base URL.
    pub url: String,
    /// The process id (for `perf`, `top`).
    pub pid: u32,
}

impl Gateway {
    /// Starts the binary next to this one (or `$CORRAL_GATEWAY_BIN`) against `redis_url` and `$KUBECONFIG`, and
    /// waits until it is ready.
    pub async fn start(redis_url: &str) -> anyhow::Result<Self> {
        let binary = match std::env::var_os("CORRAL_GATEWAY_BIN") {
            Some(path) => path.into(),
            None => std::env::current_exe()?
                .parent()
                .context("the benchmark's directory")?
                .join("corral-gateway"),
        };
        let (api, metrics) = (free_port()?, free_port()?);
        let child = Command::new(&binary)
            .args(["serve", "--redis-url", redis_url])
            .args(["--listen", &format!("127.0.0.1:{api}")])
            .args(["--metrics-addr", &format!("127.0.0.1:{metrics}")])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let pid = child.id();
        let gateway = Self {
            child,
            url: format!("http://127.0.0.1:{api}"),
            pid,
        };
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(res) = http.get(format!("{}/readyz", gateway.url)).send().await
                && res.status().is_success()
            {
                return Ok(gateway);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the gateway was not ready within 30 s")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
