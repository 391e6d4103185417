//! File metadata in Redis, under the tenant's prefix (`corral_session::keys::FileKeys`): one hash per file, an
//! index newest first, an index per scope, and the expiry queue.

use std::collections::HashMap;

use corral_session::Connection;
use corral_session::keys::{FileKeys, Tenant, system};
use redis::{AsyncCommands, Script};
use serde_json::{Value, json};

use crate::mapping::common::time;

/// What a scope is (the SDK's `BetaFileScope`): today only sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `session`.
    pub kind: String,
    /// The session's id.
    pub id: String,
}

/// One file's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// `file_<ULID>`.
    pub id: String,
    /// The last path component of the upload's file name.
    pub filename: String,
    /// The upload part's content type.
    pub mime_type: String,
    /// Bytes.
    pub size_bytes: u64,
    /// Upload time.
    pub created_at: jiff::Timestamp,
    /// When the file expires, if it does.
    pub expires_at: Option<jiff::Timestamp>,
    /// Whether its content may be downloaded.
    pub downloadable: bool,
    /// The scope that produced it, if any.
    pub scope: Option<Scope>,
}

impl FileMeta {
    /// The SDK's `BetaFileMetadata`.
    pub fn object(&self) -> Value {
        json!({
            "id": self.id,
            "type": "file",
            "filename": self.filename,
            "mime_type": self.mime_type,
            "size_bytes": self.size_bytes,
            "created_at": time(self.created_at),
            "expires_at": self.expires_at.map(time),
            "downloadable": self.downloadable,
            "scope": self.scope.as_ref().map(|s| json!({ "type": s.kind, "id": s.id })),
        })
    }

    /// Whether the file has expired at `now`.
    pub fn expired(&self, now: jiff::Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("filename", self.filename.clone()),
            ("mime_type", self.mime_type.clone()),
            ("size_bytes", self.size_bytes.to_string()),
            ("created_at", self.created_at.as_millisecond().to_string()),
            ("downloadable", self.downloadable.to_string()),
        ];
        if let Some(at) = self.expires_at {
            out.push(("expires_at", at.as_millisecond().to_string()));
        }
        if let Some(scope) = &self.scope {
            out.push(("scope_type", scope.kind.clone()));
            out.push(("scope_id", scope.id.clone()));
        }
        out
    }

    fn from_fields(id: &str, f: &HashMap<String, String>) -> Option<Self> {
        let ms = |k: &str| {
            f.get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .and_then(|v| jiff::Timestamp::from_millisecond(v).ok())
        };
        Some(Self {
            id: id.to_owned(),
            filename: f.get("filename")?.clone(),
            mime_type: f.get("mime_type")?.clone(),
            size_bytes: f.get("size_bytes")?.parse().ok()?,
            created_at: ms("created_at")?,
            expires_at: ms("expires_at"),
            downloadable: f.get("downloadable").is_none_or(|v| v == "true"),
            scope: match (f.get("scope_type"), f.get("scope_id")) {
                (Some(kind), Some(id)) => Some(Scope {
                    kind: kind.clone(),
                    id: id.clone(),
                }),
                _ => None,
            },
        })
    }
}

/// The object key of a file's bytes: per tenant, so a bucket shared by many namespaces keeps them apart.
pub fn blob_key(namespace: &str, file: &str) -> String {
    format!("t/{namespace}/files/{file}")
}

/// The file metadata of one namespace.
#[derive(Clone)]
pub struct FileIndex {
    redis: Connection,
    keys: FileKeys,
    namespace: String,
}

/// Adds `ARGV[1]` bytes to the usage counter unless the sum would pass the quota `ARGV[2]`: the new usage, or -1.
const RESERVE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return -1 end
return redis.call('INCRBY', KEYS[1], ARGV[1])
";

/// Lowers the usage counter by `ARGV[1]`, never below zero (files stored before the counter existed are not in it).
const RELEASE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = used - tonumber(ARGV[1])
if left <= 0 then redis.call('DEL', KEYS[1]) return 0 end
return redis.call('DECRBY', KEYS[1], ARGV[1])
";

impl FileIndex {
    /// The files of `namespace`.
    pub fn new(redis: Connection, namespace: &str) -> Self {
        Self {
            redis,
            keys: Tenant::new(namespace).files(),
            namespace: namespace.to_owned(),
        }
    }

    /// The bytes the namespace's files take.
    pub async fn usage(&self) -> redis::RedisResult<u64> {
        let used: Option<u64> = self.redis.clone().get(self.keys.usage()).await?;
        Ok(used.unwrap_or(0))
    }

    /// Counts `bytes` more against the namespace's `quota`; false (and nothing counted) when they do not fit.
    pub async fn reserve(&self, bytes: u64, quota: u64) -> redis::RedisResult<bool> {
        let used: i64 = Script::new(RESERVE)
            .key(self.keys.usage())
            .arg(bytes)
            .arg(quota)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(used >= 0)
    }

    /// Gives back `bytes` of the namespace's quota (a deleted or expired file, an upload that was not indexed).
    pub async fn release(&self, bytes: u64) -> redis::RedisResult<()> {
        let _: i64 = Script::new(RELEASE)
            .key(self.keys.usage())
            .arg(bytes)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(())
    }

    /// Records a new file (its bytes are stored already).
    pub async fn insert(&self, meta: &FileMeta) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(self.keys.file(&meta.id), &meta.fields())
            .ignore()
            .zadd(self.keys.index(), &meta.id, 0)
            .ignore();
        if let Some(scope) = &meta.scope {
            pipe.zadd(self.keys.scope(&scope.id), &meta.id, 0).ignore();
        }
        if let Some(at) = meta.expires_at {
            pipe.zadd(self.keys.expiring(), &meta.id, at.as_millisecond())
                .ignore();
        }
        pipe.query_async::<()>(&mut self.redis.clone()).await?;
        if meta.expires_at.is_some() {
            // Another slot than the namespace's keys, so not in the transaction: at worst the background sweep
            // misses this namespace until its next expiring upload, and the lazy sweeps still remove the file.
            let _: () = self
                .redis
                .clone()
                .sadd(system::expiring_file_namespaces(), &self.namespace)
                .await?;
        }
        Ok(())
    }

    /// How many of the namespace's files have an expiry.
    pub async fn expiring_count(&self) -> redis::RedisResult<u64> {
        self.redis.clone().zcard(self.keys.expiring()).await
    }

    /// A file's metadata, if it exists (expired or not).
    pub async fn get(&self, id: &str) -> redis::RedisResult<Option<FileMeta>> {
        let fields: HashMap<String, String> = self.redis.clone().hgetall(self.keys.file(id)).await?;
        Ok(FileMeta::from_fields(id, &fields))
    }

    /// Forgets a file and gives its bytes back to the quota; true when it existed (then only this call released
    /// them, however many remove it at once).
    pub async fn remove(&self, meta: &FileMeta) -> redis::RedisResult<bool> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.keys.file(&meta.id))
            .zrem(self.keys.index(), &meta.id)
            .ignore()
            .zrem(self.keys.expiring(), &meta.id)
            .ignore();
        if let Some(scope) = &meta.scope {
            pipe.zrem(self.keys.scope(&scope.id), &meta.id).ignore();
        }
        let (deleted,): (u64,) = pipe.query_async(&mut self.redis.clone()).await?;
        if deleted > 0 {
            self.release(meta.size_bytes).await?;
        }
        Ok(deleted > 0)
    }

    /// Up to `limit` file ids, newest first, older than `before` (exclusive) when given; of one scope when given.
    pub async fn page(
        &self,
        scope: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> redis::RedisResult<Vec<String>> {
        let key = scope.map_or_else(|| self.keys.index(), |s| self.keys.scope(s));
        let max = before.map_or_else(|| "+".to_owned(), |b| format!("({b}"));
        self.redis
            .clone()
            .zrevrangebylex_limit(key, max, "-", 0, limit as isize)
            .await
    }

    /// Ids of files whose expiry is at or before `now` (at most `limit`).
    pub async fn expired(&self, now: jiff::Timestamp, limit: usize) -> redis::RedisResult<Vec<String>> {
        self.redis
            .clone()
            .zrangebyscore_limit(
                self.keys.expiring(),
                "-inf",
                now.as_millisecond(),
                0,
                limit as isize,
            )
            .await
    }
}

/// The namespaces the background sweep visits: those that uploaded a file with an expiry.
pub async fn expiring_namespaces(redis: &Connection) -> redis::RedisResult<Vec<String>> {
    redis.clone().smembers(system::expiring_file_namespaces()).await
}

/// Drops `namespace` from the sweep's set (it has no expiring file left; its next one adds it back).
pub async fn forget_expiring_namespace(redis: &Connection, namespace: &str) -> redis::RedisResult<()> {
    redis
        .clone()
        .srem(system::expiring_file_namespaces(), namespace)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_through_its_hash_and_shows_as_the_sdk_types_it() {
        let meta = FileMeta {
            id: "file_01J".into(),
            filename: "a.txt".into(),
            mime_type: "text/plain".into(),
            size_bytes: 5,
            created_at: "2026-05-01T10:00:00Z".parse().unwrap(),
            expires_at: Some("2026-05-01T11:00:00Z".parse().unwrap()),
            downloadable: true,
            scope: Some(Scope {
                kind: "session".into(),
                id: "sesn-1".into(),
            }),
        };
        let fields: HashMap<String, String> = meta
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(FileMeta::from_fields("file_01J", &fields), Some(meta.clone()));
        let obj = meta.object();
        assert_eq!(obj["type"], "file");
        assert_eq!(obj["size_bytes"], 5);
        assert_eq!(obj["created_at"], "2026-05-01T10:00:00.000Z");
        assert_eq!(obj["expires_at"], "2026-05-01T11:00:00.000Z");
        assert_eq!(obj["scope"], json!({ "type": "session", "id": "sesn-1" }));
        assert!(meta.expired("2026-05-01T11:00:00Z".parse().unwrap()));
        assert!(!meta.expired("2026-05-01T10:59:59Z".parse().unwrap()));
        assert_eq!(FileMeta::from_fields("file_x", &HashMap::new()), None);
        assert_eq!(blob_key("team-a", "file_01J"), "t/team-a/files/file_01J");
    }
}
