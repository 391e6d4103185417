//! The Files API's storage: bytes in S3-compatible object storage ([`blob`]), metadata in Redis under the tenant's
//! prefix ([`meta`]). See docs/files.md.

pub mod args;
pub mod blob;
pub mod meta;

use std::sync::Arc;

use object_store::{ClientOptions, aws::AmazonS3Builder};

pub use blob::{BlobError, Blobs, ObjectBlobs};

/// The default upper bound of one file: 500 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 500 << 20;

/// Where files go and how large they may be.
#[derive(Debug, Clone)]
pub struct FileStorage {
    /// The bytes.
    pub blobs: Arc<dyn Blobs>,
    /// Largest file accepted, in bytes (larger uploads get a 413).
    pub max_bytes: u64,
}

/// How to reach an S3 bucket.
#[derive(Debug, Clone)]
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
