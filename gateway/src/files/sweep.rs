//! Removing files: one at a time (delete, expiry found on read) and in bounded sweeps of expired files, both lazy
//! (each upload and list sweeps its tenant's) and in the background (every namespace with expiring files, so a
//! tenant that never lists still loses its expired files).

use std::time::Duration;

use corral_session::Connection;
use tokio_util::sync::CancellationToken;

use super::{
    FileStorage,
    meta::{FileIndex, FileMeta, blob_key, expiring_namespaces, forget_expiring_namespace_if_idle},
};

/// Expired files removed per namespace per sweep.
pub const SWEEP_BATCH: usize = 100;

/// Removes a file's metadata and gives its bytes back to the quota (one script), then its bytes: a failure leaves
/// at worst an orphaned blob, never a listed file without bytes. True when this call removed the metadata; an error
/// when Redis failed (then nothing was removed).
pub async fn forget(
    index: &FileIndex,
    files: &FileStorage,
    namespace: &str,
    meta: &FileMeta,
) -> redis::RedisResult<bool> {
    let removed = index.remove(meta).await.inspect_err(|err| {
        tracing::warn!(file = %meta.id, error = %err, "could not remove a file's metadata");
    })?;
    if let Err(err) = files.blobs.delete(&blob_key(namespace, &meta.id)).await {
        tracing::warn!(file = %meta.id, error = %err, "could not delete a removed file's bytes");
    }
    Ok(removed)
}

/// Removes up to [`SWEEP_BATCH`] of the namespace's expired files; how many it removed. An expiry entry whose
/// metadata is gone (or unreadable) is dropped too, with any bytes and charge left under its id, so such entries
/// never fill the batch and stall the namespace's expiry.
pub async fn sweep(index: &FileIndex, files: &FileStorage, namespace: &str) -> usize {
    let Ok(ids) = index.expired(jiff::Timestamp::now(), SWEEP_BATCH).await else {
        return 0;
    };
    let mut removed = 0;
    for id in ids {
        match index.get(&id).await {
            Ok(Some(meta)) => {
                if matches!(forget(index, files, namespace, &meta).await, Ok(true)) {
                    removed += 1;
                }
            }
            Ok(None) => {
                if let Err(err) = index.remove_id(&id, None).await {
                    tracing::warn!(file = %id, error = %err, "could not drop an expiry entry without metadata");
                    continue;
                }
                if let Err(err) = files.blobs.delete(&blob_key(namespace, &id)).await {
                    tracing::warn!(file = %id, error = %err, "could not delete the bytes of a file without metadata");
                }
            }
            Err(_) => {}
        }
    }
    removed
}

/// Every `interval` until `stop`, sweeps each namespace that has expiring files (a bounded batch each), and drops
/// from the set those with none left. Every gateway replica runs it; removing a file twice is harmless.
pub async fn run(redis: Connection, files: FileStorage, interval: Duration, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let namespaces = match expiring_namespaces(&redis).await {
            Ok(n) => n,
            Err(err) => {
                tracing::warn!(error = %err, "file expiry sweep: could not read the namespaces");
                continue;
            }
        };
        for namespace in namespaces {
            let index = FileIndex::new(redis.clone(), &namespace);
            let removed = sweep(&index, &files, &namespace).await;
            if removed > 0 {
                tracing::info!(%namespace, removed, "removed expired files");
            }
            if let Err(err) = forget_expiring_namespace_if_idle(&index).await {
                tracing::warn!(%namespace, error = %err, "file expiry sweep: could not update the namespaces");
            }
        }
    }
}
