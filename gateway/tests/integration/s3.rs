//! A real S3-compatible server for the Files API tests: SeaweedFS's `weed mini` (master, volume, filer and S3 in
//! one process) on loopback ports with a temporary directory, killed on drop. `hack/gateway-it.sh` builds it
//! (e2e/cluster/s3-binary.sh) and sets `CORRAL_WEED`.

use std::{
    net::{Ipv4Addr, TcpListener},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use corral_gateway::files::{FileStorage, S3Config};

/// The bucket the server creates at start.
pub const BUCKET: &str = "corral-files";
const ACCESS_KEY: &str = "corral-test";
const SECRET_KEY: &str = "corral-test-secret";

/// A running `weed mini`.
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:<s3 port>`.
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

/// A port that is free, and whose +10000 (SeaweedFS's gRPC port for it) is free too.
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
    /// Starts `weed mini` with the bucket [`BUCKET`] and waits until its S3 API answers.
    pub async fn start() -> Self {
        let weed = std::env::var("CORRAL_WEED")
            .expect("CORRAL_WEED names SeaweedFS's weed binary: run hack/gateway-it.sh (it builds one)");
        let dir = tempfile::Builder::new()
            .prefix("corral-s3-")
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
        let server = Self {
            child,
            endpoint: format!("http://127.0.0.1:{s3}"),
            _dir: dir,
        };
        server.wait_ready().await;
        server
    }

    /// Until an upload to the bucket succeeds (the S3 port opens before the bucket and volumes are ready).
    async fn wait_ready(&self) {
        let storage = self.storage(1 << 20);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let body = futures::stream::iter([Ok(bytes::Bytes::from_static(b"ready"))]);
            match storage.blobs.put("probe", Box::pin(body), 16).await {
                Ok(_) => return,
                Err(err) if Instant::now() > deadline => panic!("weed mini never became ready: {err}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    /// The Files API's storage on this server, with files of at most `max_bytes`.
    pub fn storage(&self, max_bytes: u64) -> FileStorage {
        let blobs = S3Config {
            endpoint: Some(self.endpoint.clone()),
            bucket: BUCKET.into(),
            region: "us-east-1".into(),
            access_key_id: ACCESS_KEY.into(),
            secret_access_key: SECRET_KEY.into(),
        }
        .blobs()
        .expect("S3 client");
        FileStorage {
            blobs: Arc::new(blobs),
            max_bytes,
            namespace_quota_bytes: corral_gateway::files::DEFAULT_NAMESPACE_QUOTA_BYTES,
            slots: corral_gateway::files::limits::UploadSlots::new(16, 4),
            idle_timeout: std::time::Duration::from_secs(30),
            min_rate: corral_gateway::files::DEFAULT_UPLOAD_MIN_RATE,
            sweep_interval: std::time::Duration::from_secs(60),
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
