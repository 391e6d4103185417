//! A real S3-compatible server for the `corral files` tests: SeaweedFS's `weed mini` on loopback ports with a
//! temporary directory, killed on drop. `hack/cli-it.sh` builds it (e2e/cluster/s3-binary.sh, as
//! hack/gateway-it.sh does) and sets `CORRAL_WEED`.

use std::{
    net::{Ipv4Addr, TcpListener},
    process::{Child, Command, Stdio},
};

/// The bucket the server creates at start.
pub const BUCKET: &str = "corral-files";
/// The server's access key id.
pub const ACCESS_KEY: &str = "corral-cli-test";
/// The server's secret key.
pub const SECRET_KEY: &str = "corral-cli-test-secret";

/// A running `weed mini`.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:<s3 port>`.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

/// A free port whose +10000 (SeaweedFS's gRPC port for it) is free too.
fn free_port_pair() -> u16 {
    loop {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = l.local_addr().expect("addr").port();
        if port < 55_000 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return port;
        }
    }
}

impl S3Server {
    /// Starts `weed mini` with the bucket [`BUCKET`]; it is ready when an upload through the gateway succeeds.
    pub fn start() -> Self {
        let weed = std::env::var("CORRAL_WEED")
            .expect("CORRAL_WEED names SeaweedFS's weed binary: run hack/cli-it.sh (it builds one)");
        let dir = tempfile::Builder::new()
            .prefix("corral-cli-s3-")
            .tempdir()
            .expect("tempdir");
        let [master, volume, filer, s3] = [(); 4].map(|()| free_port_pair());
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
            .stderr(std::fs::File::create(dir.path().join("weed.log")).expect("log file"))
            .spawn()
            .expect("weed mini starts");
        Self {
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
            _dir: dir,
        }
    }

    /// The gateway's `serve` flags for this server.
    pub fn gateway_flags(&self) -> Vec<String> {
        vec![
            format!("--object-store-bucket={BUCKET}"),
            format!("--object-store-endpoint={}", self.endpoint),
            format!("--object-store-access-key-id={ACCESS_KEY}"),
            format!("--object-store-secret-access-key={SECRET_KEY}"),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
