//! Where file bytes live: one small trait, [`Blobs`], and its implementation over any `object_store` store (S3 and
//! S3-compatible servers in production, the in-memory store in unit tests).

use std::{fmt, sync::Arc};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, future::BoxFuture, stream::BoxStream};
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart, path::Path};

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The upload went past the size limit (bytes); nothing was kept.
    #[error("over the limit of {0} bytes")]
    TooLarge(u64),
    /// No such blob.
    #[error("not found")]
    NotFound,
    /// The client's body failed while it was read.
    #[error("reading the upload: {0}")]
    Body(String),
    /// The client sent nothing for this long.
    #[error("the upload stalled for {0:?}")]
    Idle(std::time::Duration),
    /// The client sent less than this many bytes per second on average over a window (see `limits::MinRate`).
    #[error("the upload was slower than {0} bytes per second")]
    TooSlow(u64),
    /// The store failed.
    #[error("object storage: {0}")]
    Store(String),
}

/// A stream of upload bytes, as read from the request.
pub type ByteStream<'a> = BoxStream<'a, Result<Bytes, BlobError>>;

/// Blob storage: write a stream under a key (never held whole in memory), read it back as a stream, delete it.
pub trait Blobs: Send + Sync + fmt::Debug {
    /// Streams `body` to `key`, failing with [`BlobError::TooLarge`] (and keeping nothing) once more than `max`
    /// bytes came. Returns the size.
    fn put<'a>(
        &'a self,
        key: &'a str,
        body: ByteStream<'a>,
        max: u64,
    ) -> BoxFuture<'a, Result<u64, BlobError>>;
    /// The blob's bytes.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<ByteStream<'static>, BlobError>>;
    /// Deletes the blob; a missing one is not an error.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BlobError>>;
}

/// [`Blobs`] over an `object_store` store. A blob under 8 MiB is one `PUT`; a larger one goes out as a multipart
/// upload in 8 MiB parts, at most two in flight: the gateway holds about 24 MiB per upload, whatever the file's size.
#[derive(Debug, Clone)]
pub struct ObjectBlobs {
    store: Arc<dyn ObjectStore>,
}

/// Part size of multipart uploads (S3's minimum is 5 MiB).
const PART_BYTES: usize = 8 << 20;
/// Parts in flight per upload.
const PARTS_IN_FLIGHT: usize = 2;

impl ObjectBlobs {
    /// Blobs in `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }
}

fn store_error(err: object_store::Error) -> BlobError {
    match err {
        object_store::Error::NotFound { .. } => BlobError::NotFound,
        other => BlobError::Store(other.to_string()),
    }
}

impl Blobs for ObjectBlobs {
    fn put<'a>(
        &'a self,
        key: &'a str,
        mut body: ByteStream<'a>,
        max: u64,
    ) -> BoxFuture<'a, Result<u64, BlobError>> {
        Box::pin(async move {
            let path = Path::from(key);
            // A blob smaller than one part (most files, every skill file) goes out in one PUT rather than a
            // multipart upload's three requests; a larger one starts a multipart upload with what was read.
            let mut head: Vec<Bytes> = Vec::new();
            let mut size = 0u64;
            loop {
                match body.next().await {
                    None => {
                        let payload = object_store::PutPayload::from_iter(head);
                        self.store.put(&path, payload).await.map_err(store_error)?;
                        return Ok(size);
                    }
                    Some(Err(err)) => return Err(err),
                    Some(Ok(chunk)) => {
                        size += chunk.len() as u64;
                        if size > max {
                            return Err(BlobError::TooLarge(max));
                        }
                        head.push(chunk);
                        if size >= PART_BYTES as u64 {
                            break;
                        }
                    }
                }
            }
            let upload = self.store.put_multipart(&path).await.map_err(store_error)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            for chunk in head {
                writer.put(chunk);
            }
            let failure = loop {
                let chunk = match body.next().await {
                    None => break None,
                    Some(Err(err)) => break Some(err),
                    Some(Ok(chunk)) => chunk,
                };
                size += chunk.len() as u64;
                if size > max {
                    break Some(BlobError::TooLarge(max));
                }
                if let Err(err) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                    break Some(store_error(err));
                }
                writer.put(chunk);
            };
            match failure {
                Some(err) => {
                    // Abort, so the parts sent so far are not billed or kept.
                    let _ = writer.abort().await;
                    Err(err)
                }
                None => {
                    writer.finish().await.map_err(store_error)?;
                    Ok(size)
                }
            }
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<ByteStream<'static>, BlobError>> {
        Box::pin(async move {
            let result = self.store.get(&Path::from(key)).await.map_err(store_error)?;
            Ok(result.into_stream().map_err(store_error).boxed())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), BlobError>> {
        Box::pin(async move {
            match self.store.delete(&Path::from(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(err) => Err(store_error(err)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn body(chunks: &[&'static [u8]]) -> ByteStream<'static> {
        let chunks: Vec<Result<Bytes, BlobError>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        futures::stream::iter(chunks).boxed()
    }

    #[tokio::test]
    async fn a_blob_is_written_read_and_deleted_and_a_large_one_is_refused() {
        let blobs = ObjectBlobs::new(Arc::new(InMemory::new()));
        let size = blobs.put("t/a", body(&[b"hello ", b"world"]), 100).await.unwrap();
        assert_eq!(size, 11);
        let read: Vec<Bytes> = blobs.get("t/a").await.unwrap().try_collect().await.unwrap();
        assert_eq!(read.concat(), b"hello world");
        blobs.delete("t/a").await.unwrap();
        assert!(matches!(blobs.get("t/a").await, Err(BlobError::NotFound)));
        blobs.delete("t/a").await.expect("deleting twice is fine");
        let err = blobs
            .put("t/b", body(&[b"12345", b"67890"]), 8)
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::TooLarge(8)), "{err}");
        assert!(
            matches!(blobs.get("t/b").await, Err(BlobError::NotFound)),
            "nothing kept"
        );
    }

    #[tokio::test]
    async fn a_blob_past_one_part_goes_out_in_parts_whole() {
        let blobs = ObjectBlobs::new(Arc::new(InMemory::new()));
        let chunk = Bytes::from(vec![7u8; 1 << 20]);
        let chunks: Vec<Result<Bytes, BlobError>> = (0..(PART_BYTES >> 20) * 2 + 3)
            .map(|_| Ok(chunk.clone()))
            .collect();
        let expected = chunks.len() as u64 * chunk.len() as u64;
        let size = blobs
            .put("t/big", futures::stream::iter(chunks).boxed(), u64::MAX)
            .await
            .unwrap();
        assert_eq!(size, expected);
        let read: Vec<Bytes> = blobs.get("t/big").await.unwrap().try_collect().await.unwrap();
        assert_eq!(read.concat().len() as u64, expected);
        assert!(read.concat().iter().all(|b| *b == 7));
    }
}
