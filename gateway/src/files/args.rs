//! The gateway's object storage flags (the Helm chart sets them from `objectStore` values).

use std::{fmt, time::Duration};

use clap::Args;

use super::{
    DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_UPLOADS, DEFAULT_MAX_UPLOADS_PER_NAMESPACE,
    DEFAULT_NAMESPACE_QUOTA_BYTES, DEFAULT_SWEEP_INTERVAL, DEFAULT_UPLOAD_IDLE_TIMEOUT,
    DEFAULT_UPLOAD_MIN_RATE, FileStorage, S3Config,
    limits::{MinRate, UploadSlots},
};

/// Where the Files API keeps bytes. Without `--object-store-bucket` the Files API answers 503. Its `Debug` leaves
/// the secret key out.
#[derive(Args, Clone)]
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
    /// Bytes one namespace's files may take together (a bigger upload is a 413 `storage_quota_exceeded`).
    #[arg(long, env = "CORRAL_FILES_NAMESPACE_QUOTA_BYTES", default_value_t = DEFAULT_NAMESPACE_QUOTA_BYTES)]
    pub files_namespace_quota_bytes: u64,
    /// Uploads this gateway streams at once (each buffers up to 24 MiB); one more is a 503.
    #[arg(long, env = "CORRAL_MAX_UPLOADS", default_value_t = DEFAULT_MAX_UPLOADS)]
    pub max_uploads: usize,
    /// Uploads one namespace streams at once through this gateway; one more is a 429.
    #[arg(long, env = "CORRAL_MAX_UPLOADS_PER_NAMESPACE", default_value_t = DEFAULT_MAX_UPLOADS_PER_NAMESPACE)]
    pub max_uploads_per_namespace: usize,
    /// Seconds an upload may send nothing before it fails with a 400 (a stalled client frees its slot).
    #[arg(long, env = "CORRAL_UPLOAD_IDLE_TIMEOUT_SECONDS", default_value_t = DEFAULT_UPLOAD_IDLE_TIMEOUT.as_secs())]
    pub upload_idle_timeout_seconds: u64,
    /// KiB per second an upload must send on average over each 30 s of waiting for it, or it fails with a 400
    /// `upload_too_slow` (0 turns the check off).
    #[arg(long, env = "CORRAL_UPLOAD_MIN_KIB_PER_SECOND", default_value_t = DEFAULT_UPLOAD_MIN_RATE.bytes_per_second >> 10)]
    pub upload_min_kib_per_second: u64,
    /// Seconds between background sweeps of expired files (each removes at most 100 per namespace).
    #[arg(long, env = "CORRAL_FILES_SWEEP_INTERVAL_SECONDS", default_value_t = DEFAULT_SWEEP_INTERVAL.as_secs())]
    pub files_sweep_interval_seconds: u64,
}

impl fmt::Debug for ObjectStoreArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreArgs")
            .field("object_store_bucket", &self.object_store_bucket)
            .field("object_store_endpoint", &self.object_store_endpoint)
            .field("object_store_region", &self.object_store_region)
            .field("object_store_access_key_id", &self.object_store_access_key_id)
            .field("object_store_secret_access_key", &"<redacted>")
            .field("max_file_bytes", &self.max_file_bytes)
            .field("files_namespace_quota_bytes", &self.files_namespace_quota_bytes)
            .field("max_uploads", &self.max_uploads)
            .field("max_uploads_per_namespace", &self.max_uploads_per_namespace)
            .field("upload_idle_timeout_seconds", &self.upload_idle_timeout_seconds)
            .field("upload_min_kib_per_second", &self.upload_min_kib_per_second)
            .field("files_sweep_interval_seconds", &self.files_sweep_interval_seconds)
            .finish()
    }
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
            namespace_quota_bytes: self.files_namespace_quota_bytes,
            slots: UploadSlots::new(self.max_uploads, self.max_uploads_per_namespace),
            idle_timeout: Duration::from_secs(self.upload_idle_timeout_seconds.max(1)),
            min_rate: MinRate {
                bytes_per_second: self.upload_min_kib_per_second.saturating_mul(1024),
                window: DEFAULT_UPLOAD_MIN_RATE.window,
            },
            sweep_interval: Duration::from_secs(self.files_sweep_interval_seconds.max(1)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        store: ObjectStoreArgs,
    }

    #[test]
    fn debug_output_never_shows_the_secret_key() {
        let cli = Cli::parse_from([
            "gw",
            "--object-store-bucket=b",
            "--object-store-access-key-id=AKID",
            "--object-store-secret-access-key=hunter2-secret",
        ]);
        let args = format!("{:?}", cli.store);
        assert!(
            args.contains("AKID") && !args.contains("hunter2-secret"),
            "{args}"
        );
        let storage = format!("{:?}", cli.store.storage().unwrap().unwrap());
        assert!(!storage.contains("hunter2-secret"), "{storage}");
        let config = S3Config {
            endpoint: None,
            bucket: "b".into(),
            region: "r".into(),
            access_key_id: "AKID".into(),
            secret_access_key: "hunter2-secret".into(),
        };
        let config = format!("{config:?}");
        assert!(
            config.contains("AKID") && !config.contains("hunter2-secret"),
            "{config}"
        );
    }
}
