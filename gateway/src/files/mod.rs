//! The Files API's storage: bytes in S3-compatible object storage ([`blob`]), metadata in Redis under the tenant's
//! prefix ([`meta`]). See docs/files.md.

pub mod args;
pub mod blob;
pub mod limits;
pub mod meta;
pub mod sweep;

use std::{fmt, sync::Arc, time::Duration};

use object_store::{ClientOptions, aws::AmazonS3Builder};

pub use blob::{BlobError, Blobs, ObjectBlobs};

/// The default upper bound of one file: 500 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 500 << 20;
/// The default storage quota of one namespace: 10 GiB.
pub const DEFAULT_NAMESPACE_QUOTA_BYTES: u64 = 10 << 30;
/// The default number of uploads one gateway streams at once, and one namespace's share of them.
pub const DEFAULT_MAX_UPLOADS: usize = 16;
/// See [`DEFAULT_MAX_UPLOADS`].
pub const DEFAULT_MAX_UPLOADS_PER_NAMESPACE: usize = 4;
/// The default time an upload may send nothing before it is dropped.
pub const DEFAULT_UPLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The default slowest upload: 32 KiB/s on average over each 30 s of waiting for the client.
pub const DEFAULT_UPLOAD_MIN_RATE: limits::MinRate = limits::MinRate {
    bytes_per_second: 32 << 10,
    window: Duration::from_secs(30),
};
/// The default interval of the background sweep of expired files.
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Where files go and how large they may be.
#[derive(Debug, Clone)]
pub struct FileStorage {
    /// The bytes.
    pub blobs: Arc<dyn Blobs>,
    /// Largest file accepted, in bytes (larger uploads get a 413).
    pub max_bytes: u64,
    /// Bytes one namespace's files may take together (past it, a 413 `storage_quota_exceeded`).
    pub namespace_quota_bytes: u64,
    /// Uploads streamed at once (past them, a 429 or 503).
    pub slots: limits::UploadSlots,
    /// How long an upload may send nothing before it fails (a stalled client holds a slot and its buffers).
    pub idle_timeout: Duration,
    /// The slowest an upload may send (past it, a 400 `upload_too_slow`): a client sending a little just before
    /// each idle timeout would otherwise hold its slot for ever.
    pub min_rate: limits::MinRate,
    /// How often the background sweep removes expired files.
    pub sweep_interval: Duration,
}

/// How to reach an S3 bucket. Its `Debug` leaves the secret key out.
#[derive(Clone)]
pub struct S3Config {
    /// The S3 API's URL (`http://corral-objects:8333`); empty for AWS S3 itself.
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The region (S3-compatible servers accept any).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

impl S3Config {
    /// Blobs in this bucket, through `object_store`'s S3 client (path-style requests, so any S3-compatible server
    /// works; plain HTTP allowed only for an explicit endpoint, such as the chart's in-cluster server).
    pub fn blobs(&self) -> anyhow::Result<ObjectBlobs> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_access_key_id(&self.access_key_id)
            .with_secret_access_key(&self.secret_access_key)
            .with_virtual_hosted_style_request(false)
            .with_client_options(ClientOptions::new().with_allow_http(self.endpoint.is_some()));
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        Ok(ObjectBlobs::new(Arc::new(builder.build()?)))
    }
}
