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

/// Charges and indexes a file in one step, so no crash or error can leave a file counted but not listed or listed
/// but not counted. KEYS: usage, charged, the file's hash, index, expiring, and the scope's index if any. ARGV:
/// id, bytes, quota, expiry (ms, or empty), then the hash's field/value pairs. 0 (nothing written) when the bytes
/// would pass the quota, else 1.
const INSERT: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + tonumber(ARGV[2]) > tonumber(ARGV[3]) then return 0 end
redis.call('INCRBY', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[3], unpack(ARGV, 5))
redis.call('ZADD', KEYS[4], 0, ARGV[1])
if ARGV[4] ~= '' then redis.call('ZADD', KEYS[5], ARGV[4], ARGV[1]) end
if KEYS[6] then redis.call('ZADD', KEYS[6], 0, ARGV[1]) end
return 1
";

/// Forgets a file and gives back what it was charged, in one step. KEYS as [`INSERT`]'s; ARGV: id. The reads
/// (which fail on a key of the wrong type) come before any write, so a failing call changes nothing. Only a file
/// with a charge record is released (once: the record goes with it), never below zero. 1 when the file's hash
/// existed.
const REMOVE: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local charged = redis.call('HGET', KEYS[2], ARGV[1])
local existed = redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
if KEYS[6] then redis.call('ZREM', KEYS[6], ARGV[1]) end
if charged then
  redis.call('HDEL', KEYS[2], ARGV[1])
  local left = used - tonumber(charged)
  if left <= 0 then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], left) end
end
return existed
";

/// What [`FileIndex::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The file is charged and listed.
    Stored,
    /// Its bytes would pass the quota: nothing written.
    OverQuota,
}

impl FileIndex {
    /// The files of `namespace`.
    pub fn new(redis: Connection, namespace: &str) -> Self {
        Self {
            redis,
            keys: Tenant::new(namespace).files(),
            namespace: namespace.to_owned(),
        }
    }

    /// The namespace whose files these are.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The bytes the namespace's files take.
    pub async fn usage(&self) -> redis::RedisResult<u64> {
        let used: Option<u64> = self.redis.clone().get(self.keys.usage()).await?;
        Ok(used.unwrap_or(0))
    }

    /// The keys a file's scripts touch, in [`INSERT`]'s order.
    fn script_keys(&self, id: &str, scope: Option<&str>) -> Vec<String> {
        let mut keys = vec![
            self.keys.usage(),
            self.keys.charged(),
            self.keys.file(id),
            self.keys.index(),
            self.keys.expiring(),
        ];
        keys.extend(scope.map(|s| self.keys.scope(s)));
        keys
    }

    /// Charges a new file's bytes against the namespace's `quota` and records it, in one script (its bytes are
    /// stored already). On an error the file may or may not have been recorded: ask [`FileIndex::get`].
    pub async fn insert(&self, meta: &FileMeta, quota: u64) -> redis::RedisResult<Inserted> {
        let script = Script::new(INSERT);
        let mut call = script.prepare_invoke();
        for key in self.script_keys(&meta.id, meta.scope.as_ref().map(|s| s.id.as_str())) {
            call.key(key);
        }
        call.arg(&meta.id).arg(meta.size_bytes).arg(quota).arg(
            meta.expires_at
                .map(|at| at.as_millisecond().to_string())
                .unwrap_or_default(),
        );
        for (field, value) in meta.fields() {
            call.arg(field).arg(value);
        }
        let stored: i64 = call.invoke_async(&mut self.redis.clone()).await?;
        if stored == 0 {
            return Ok(Inserted::OverQuota);
        }
        if meta.expires_at.is_some() {
            // Another slot than the namespace's keys, so not in the script; the file is stored whatever happens
            // here: at worst the background sweep misses this namespace until its next expiring upload, and the
            // lazy sweeps (each list and upload) still remove the file.
            let added: redis::RedisResult<()> = self
                .redis
                .clone()
                .sadd(system::expiring_file_namespaces(), &self.namespace)
                .await;
            if let Err(err) = added {
                tracing::warn!(namespace = %self.namespace, error = %err, "could not add the namespace to the expiry sweep's set");
            }
        }
        Ok(Inserted::Stored)
    }

    /// The outputs recorded for `session`: path → (file id, fingerprint).
    pub async fn outputs(&self, session: &str) -> redis::RedisResult<HashMap<String, (String, String)>> {
        let all: HashMap<String, String> = self.redis.clone().hgetall(self.keys.outputs(session)).await?;
        Ok(all
            .into_iter()
            .filter_map(|(path, v)| {
                let (id, fingerprint) = v.split_once(' ')?;
                Some((path, (id.to_owned(), fingerprint.to_owned())))
            })
            .collect())
    }

    /// Records `file` as `session`'s output at `path` with `fingerprint`; answers the file it replaces, if any.
    pub async fn record_output(
        &self,
        session: &str,
        path: &str,
        file: &str,
        fingerprint: &str,
    ) -> redis::RedisResult<Option<String>> {
        let key = self.keys.outputs(session);
        let (previous,): (Option<String>,) = redis::pipe()
            .atomic()
            .hget(&key, path)
            .hset(&key, path, format!("{file} {fingerprint}"))
            .ignore()
            .query_async(&mut self.redis.clone())
            .await?;
        Ok(previous
            .and_then(|v| v.split_once(' ').map(|(id, _)| id.to_owned()))
            .filter(|id| id != file))
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

    /// Forgets a file and gives back what it was charged, in one script; true when its metadata existed.
    pub async fn remove(&self, meta: &FileMeta) -> redis::RedisResult<bool> {
        self.remove_id(&meta.id, meta.scope.as_ref().map(|s| s.id.as_str()))
            .await
    }

    /// [`FileIndex::remove`] by id, for an id whose metadata may be gone (then only its index entries and charge
    /// are removed); `scope` names the scope index it may be in.
    pub async fn remove_id(&self, id: &str, scope: Option<&str>) -> redis::RedisResult<bool> {
        let script = Script::new(REMOVE);
        let mut call = script.prepare_invoke();
        for key in self.script_keys(id, scope) {
            call.key(key);
        }
        let existed: i64 = call.arg(id).invoke_async(&mut self.redis.clone()).await?;
        Ok(existed > 0)
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

/// Drops `namespace` from the sweep's set when it has no expiring file left (its next one adds it back). The set
/// and the namespace's keys are in different slots, so an upload may add an expiring file between the count and
/// the removal: counting again after it and adding the namespace back closes that gap.
pub async fn forget_expiring_namespace_if_idle(index: &FileIndex) -> redis::RedisResult<()> {
    if index.expiring_count().await? > 0 {
        return Ok(());
    }
    let mut redis = index.redis.clone();
    let set = system::expiring_file_namespaces();
    let _: () = redis.srem(&set, &index.namespace).await?;
    if index.expiring_count().await? > 0 {
        let _: () = redis.sadd(&set, &index.namespace).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use corral_session::testing::RedisServer;

    use super::*;

    fn file(size: u64, expires: bool) -> FileMeta {
        // Milliseconds, as stored.
        let created_at = jiff::Timestamp::from_millisecond(jiff::Timestamp::now().as_millisecond()).unwrap();
        FileMeta {
            id: format!("file_{}", ulid::Ulid::new()),
            filename: "f".into(),
            mime_type: "text/plain".into(),
            size_bytes: size,
            created_at,
            expires_at: expires.then(|| created_at + jiff::SignedDuration::from_secs(3600)),
            downloadable: true,
            scope: Some(Scope {
                kind: "session".into(),
                id: "sesn-1".into(),
            }),
        }
    }

    /// The file index of namespace `team-a` on `server`, and the shared connection it uses.
    async fn team_a_index(server: &RedisServer) -> (FileIndex, Connection) {
        let redis = corral_session::Store::connect(&server.url(), corral_session::Config::default())
            .await
            .unwrap()
            .connection();
        (FileIndex::new(redis.clone(), "team-a"), redis)
    }

    #[tokio::test]
    async fn a_file_is_charged_with_its_metadata_and_released_once_and_only_if_it_was_charged() {
        let server = RedisServer::start().expect("redis-server");
        let (index, redis) = team_a_index(&server).await;
        let (a, b) = (file(60, true), file(50, false));
        assert_eq!(index.insert(&a, 100).await.unwrap(), Inserted::Stored);
        assert_eq!(index.insert(&b, 100).await.unwrap(), Inserted::OverQuota);
        assert_eq!(
            index.get(&b.id).await.unwrap(),
            None,
            "nothing written past the quota"
        );
        assert_eq!(index.usage().await.unwrap(), 60);
        assert_eq!(index.get(&a.id).await.unwrap(), Some(a.clone()));
        assert_eq!(
            index.page(Some("sesn-1"), None, 10).await.unwrap(),
            vec![a.id.clone()]
        );
        assert_eq!(index.expiring_count().await.unwrap(), 1);

        // Two removals at once: one finds the file, and the bytes are given back once.
        let (first, second) = tokio::join!(index.remove(&a), index.remove(&a));
        assert_eq!(first.unwrap() as u8 + second.unwrap() as u8, 1);
        assert_eq!(index.usage().await.unwrap(), 0);
        assert_eq!(index.page(None, None, 10).await.unwrap(), Vec::<String>::new());
        assert_eq!(index.expiring_count().await.unwrap(), 0);

        // A file indexed before the counter existed (no charge record) gives nothing back.
        assert_eq!(index.insert(&b, 100).await.unwrap(), Inserted::Stored);
        let old = file(40, false);
        let mut conn = redis.clone();
        let keys = Tenant::new("team-a").files();
        let _: () = conn
            .hset_multiple(keys.file(&old.id), &old.fields())
            .await
            .unwrap();
        assert!(index.remove(&old).await.unwrap());
        assert_eq!(index.usage().await.unwrap(), 50);

        // An expiry entry without metadata is dropped by id.
        let _: () = conn.zadd(keys.expiring(), "file_ghost", 1).await.unwrap();
        assert!(!index.remove_id("file_ghost", None).await.unwrap());
        assert_eq!(index.expiring_count().await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_namespace_leaves_the_sweeps_set_only_without_expiring_files() {
        let server = RedisServer::start().expect("redis-server");
        let (index, redis) = team_a_index(&server).await;
        let a = file(1, true);
        index.insert(&a, 100).await.unwrap();
        assert_eq!(
            expiring_namespaces(&redis).await.unwrap(),
            vec!["team-a".to_owned()]
        );
        forget_expiring_namespace_if_idle(&index).await.unwrap();
        assert_eq!(
            expiring_namespaces(&redis).await.unwrap().len(),
            1,
            "it still has one"
        );
        index.remove(&a).await.unwrap();
        forget_expiring_namespace_if_idle(&index).await.unwrap();
        assert!(expiring_namespaces(&redis).await.unwrap().is_empty());
    }

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
