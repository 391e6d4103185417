//! The gateway's object storage flags (the Helm chart sets them from `objectStore` values).

use clap::Args;

use super::{DEFAULT_MAX_FILE_BYTES, FileStorage, S3Config};

/// Where the Files API keeps bytes. Without `--object-store-bucket` the Files API answers 503.
#[derive(Args, Debug, Clone)]
pub struct ObjectStoreArgs {
    /// The S3 bucket for files (created beforehand; the chart's bundled server gets it at start).
    #[arg(long, env = "CORRAL_OBJECT_STORE_BUCKET")]
    pub object_store_bucket: Option<String>,
    /// The S3 API's URL for an S3-compatible server (`http://corral-objects:8333`); unset for AWS S3.
    #[arg(long, env = "CORRAL_OBJECT_STORE_ENDPOINT")]
    pub object_store_endpoint: Option<String>,
    /// The bucket's region.
    #[arg(long, env = "CORRAL_OBJECT_STORE_REGION", default_value = "us-east-1")]
    pub object_store_region: String,
    /// Access key id (the chart reads it from a Secret).
    #[arg(
        long,
        env = "CORRAL_OBJECT_STORE_ACCESS_KEY_ID",
        default_value = "",
        hide_env_values = true
    )]
    pub object_store_access_key_id: String,
    /// Secret access key (the chart reads it from a Secret).
    #[arg(
        long,
        env = "CORRAL_OBJECT_STORE_SECRET_ACCESS_KEY",
        default_value = "",
        hide_env_values = true
    )]
    pub object_store_secret_access_key: String,
    /// Largest file one upload may carry, in bytes (a bigger one is a 413).
    #[arg(long, env = "CORRAL_MAX_FILE_BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES)]
    pub max_file_bytes: u64,
}

impl ObjectStoreArgs {
    /// The Files API's storage, when a bucket is configured.
    pub fn storage(&self) -> anyhow::Result<Option<FileStorage>> {
        let Some(bucket) = self.object_store_bucket.clone().filter(|b| !b.is_empty()) else {
            return Ok(None);
        };
        let blobs = S3Config {
            endpoint: self.object_store_endpoint.clone().filter(|e| !e.is_empty()),
            bucket,
            region: self.object_store_region.clone(),
            access_key_id: self.object_store_access_key_id.clone(),
            secret_access_key: self.object_store_secret_access_key.clone(),
        }
        .blobs()?;
        Ok(Some(FileStorage {
            blobs: std::sync::Arc::new(blobs),
            max_bytes: self.max_file_bytes,
        }))
    }
}
