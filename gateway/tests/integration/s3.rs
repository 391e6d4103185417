//! The S3 server of the Files API tests (`corral_session::testing::s3`), ready for uploads, and the Files API's
//! storage on it.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use corral_gateway::files::{FileStorage, S3Config};
use corral_session::testing::s3::{ACCESS_KEY, BUCKET, SECRET_KEY, WeedServer};

/// A running `weed mini`, ready for uploads.
pub struct S3Server {
    weed: WeedServer,
}

impl S3Server {
    /// Starts `weed mini` with the bucket [`BUCKET`] and waits until its S3 API answers.
    pub async fn start() -> Self {
        let server = Self {
            weed: WeedServer::start().expect("weed mini starts"),
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
            endpoint: Some(self.weed.endpoint.clone()),
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
