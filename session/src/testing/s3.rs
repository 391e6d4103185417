//! A real S3-compatible server for tests: SeaweedFS's `weed mini` (master, volume, filer and S3 in one process) on
//! loopback ports with a temporary directory, killed on drop. The binary is named by `CORRAL_WEED`
//! (`e2e/cluster/s3-binary.sh` builds it; hack/gateway-it.sh and hack/cli-it.sh set it).

use std::{
    io,
    net::{Ipv4Addr, TcpListener},
    process::{Child, Command, Stdio},
};

/// The bucket the server creates at start.
pub const BUCKET: &str = "corral-files";
/// The server's access key id.
pub const ACCESS_KEY: &str = "corral-test";
/// The server's secret key.
pub const SECRET_KEY: &str = "corral-test-secret";

/// A running `weed mini`. Its S3 port opens before the bucket and volumes are ready: a test waits for a first
/// upload to succeed (through whatever client it tests) before it relies on it.
#[derive(Debug)]
pub struct WeedServer {
    child: Child,
    /// `http://127.0.0.1:<s3 port>`.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

/// A free port whose +10000 (SeaweedFS's gRPC port for it) is free too.
fn free_port_pair() -> io::Result<u16> {
    loop {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = l.local_addr()?.port();
        if port < 55_000 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return Ok(port);
        }
    }
}

impl WeedServer {
    /// Starts `weed mini` with the bucket [`BUCKET`].
    pub fn start() -> io::Result<Self> {
        let weed = std::env::var("CORRAL_WEED").map_err(|_| {
            io::Error::other(
                "CORRAL_WEED names SeaweedFS's weed binary: run hack/gateway-it.sh or hack/cli-it.sh (they build one)",
            )
        })?;
        let dir = tempfile::Builder::new().prefix("corral-s3-").tempdir()?;
        let [master, volume, filer, s3] = [
            free_port_pair()?,
            free_port_pair()?,
            free_port_pair()?,
            free_port_pair()?,
        ];
        let child = Command::new(weed)
            .args([
                "mini",
                &format!("-dir={}", dir.path().display()),
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                &format!("-master.port={master}"),
                &format!("-volume.port={volume}"),
                &format!("-filer.port={filer}"),
                &format!("-s3.port={s3}"),
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-webdav=false",
                "-admin.ui=false",
                &format!("-bucket={BUCKET}"),
            ])
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("weed.log"))?)
            .spawn()?;
        Ok(Self {
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
            _dir: dir,
        })
    }
}

impl Drop for WeedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
