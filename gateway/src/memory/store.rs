//! Reading and writing one namespace's memory stores in Redis. Every change is one script of [`super::scripts`] in
//! the store's slot; the namespace's index of stores is the only other key (its own slot), written before a new
//! store and after a deleted one, so a crash in between leaves an index entry that lists nothing, never a store that
//! a list cannot find.

use std::collections::HashMap;

use corral_session::Connection;
use corral_session::keys::{MemoryStoreKeys, Tenant};
use redis::{AsyncCommands, Script};

use super::{MAX_MEMORIES, MAX_STORE_BYTES, MAX_STORES, scripts};

/// A hash's fields.
pub type Fields = HashMap<String, String>;

/// What a write of a memory did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Stored; the memory's fields as they are now (`content` among them), none after a delete.
    Stored(Fields),
    /// An update that changed nothing (same content, same path): no version was added.
    Unchanged,
    /// The store does not exist.
    NoStore,
    /// The store is archived: its memories are read-only.
    Archived,
    /// The memory does not exist.
    NoMemory,
    /// The memory's content is not the expected one: its SHA-256 now.
    Precondition(String),
    /// Another memory has the path: its id.
    PathTaken(String),
    /// The store holds [`MAX_MEMORIES`] memories.
    TooMany,
    /// The store's versions hold [`MAX_STORE_BYTES`] bytes.
    Full,
}

/// One write of a memory, as [`MemoryStores::write`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct Write<'a> {
    /// `create`, `update` or `delete`.
    pub mode: &'a str,
    /// The memory's id.
    pub memory: &'a str,
    /// The new path (`update`: `None` keeps it).
    pub path: Option<&'a str>,
    /// The new content (`update`: `None` keeps it).
    pub content: Option<&'a str>,
    /// The SHA-256 the memory's content must have now, if any.
    pub expected: Option<&'a str>,
    /// Who writes (the SDK's actor object, as JSON).
    pub actor: &'a str,
}

/// What a redaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redacted {
    /// Redacted now or before.
    Done,
    /// No such version (or store).
    Missing,
    /// The version holds its memory's current content.
    Current,
}

/// What a change of a store's own fields did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreChange {
    /// Done.
    Done,
    /// No such store.
    Missing,
    /// The store is archived.
    Archived,
    /// The store changed since it was read: read it again.
    Retry,
}

/// The memory stores of one namespace.
#[derive(Clone)]
pub struct MemoryStores {
    redis: Connection,
    tenant: Tenant,
}

fn now_micros() -> String {
    jiff::Timestamp::now().as_microsecond().to_string()
}

impl MemoryStores {
    /// The memory stores of `namespace`.
    pub fn new(redis: Connection, namespace: &str) -> Self {
        Self {
            redis,
            tenant: Tenant::new(namespace),
        }
    }

    fn keys(&self, store: &str) -> MemoryStoreKeys {
        self.tenant.memory_store(store)
    }

    fn conn(&self) -> Connection {
        self.redis.clone()
    }

    /// Creates store `id` with `fields` (name, description, metadata JSON); `false` when the namespace holds
    /// [`MAX_STORES`] stores already.
    pub async fn create_store(&self, id: &str, fields: &[(&str, String)]) -> redis::RedisResult<bool> {
        let index = self.tenant.memory_stores();
        let count: u64 = self.conn().zcard(&index).await?;
        if count >= MAX_STORES {
            return Ok(false);
        }
        let () = self.conn().zadd(&index, id, 0).await?;
        let now = now_micros();
        let mut all: Vec<(&str, String)> = fields.to_vec();
        all.extend([("created_at", now.clone()), ("updated_at", now)]);
        let () = self.conn().hset_multiple(self.keys(id).store(), &all).await?;
        Ok(true)
    }

    /// A store's fields, if it exists.
    pub async fn store(&self, id: &str) -> redis::RedisResult<Option<Fields>> {
        let fields: Fields = self.conn().hgetall(self.keys(id).store()).await?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    /// Up to `count` store ids, newest first, older than `before` (exclusive) when given.
    pub async fn store_ids(&self, before: Option<&str>, count: usize) -> redis::RedisResult<Vec<String>> {
        let max = before.map_or_else(|| "+".to_owned(), |b| format!("({b}"));
        self.conn()
            .zrevrangebylex_limit(self.tenant.memory_stores(), max, "-", 0, count as isize)
            .await
    }

    /// Sets a store's fields if its `updated_at` is still `read_at`.
    pub async fn update_store(
        &self,
        id: &str,
        read_at: &str,
        fields: &[(&str, String)],
    ) -> redis::RedisResult<StoreChange> {
        let script = Script::new(scripts::UPDATE_STORE);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.keys(id).store())
            .arg(read_at)
            .arg(now_micros());
        for (k, v) in fields {
            invocation.arg(*k).arg(v);
        }
        let answer: String = invocation.invoke_async(&mut self.conn()).await?;
        Ok(match answer.as_str() {
            "ok" => StoreChange::Done,
            "archived" => StoreChange::Archived,
            "retry" => StoreChange::Retry,
            _ => StoreChange::Missing,
        })
    }

    /// Archives a store; `false` when there is none.
    pub async fn archive_store(&self, id: &str) -> redis::RedisResult<bool> {
        let answer: String = Script::new(scripts::ARCHIVE_STORE)
            .key(self.keys(id).store())
            .arg(now_micros())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(answer == "ok")
    }

    /// Deletes a store, its memories and versions; `false` when there is none.
    pub async fn delete_store(&self, id: &str) -> redis::RedisResult<bool> {
        let keys = self.keys(id);
        let deleted: i64 = Script::new(scripts::DELETE_STORE)
            .key(keys.store())
            .key(keys.paths())
            .key(keys.tree())
            .key(keys.all_versions())
            .arg(keys.base())
            .invoke_async(&mut self.conn())
            .await?;
        let () = self.conn().zrem(self.tenant.memory_stores(), id).await?;
        Ok(deleted == 1)
    }

    /// A memory's fields, with `content` (from its current version) when `content` is asked for.
    pub async fn memory(&self, store: &str, id: &str, content: bool) -> redis::RedisResult<Option<Fields>> {
        let keys = self.keys(store);
        // The memory may move on between the two reads; its old version keeps its content (a version that holds a
        // memory's content cannot be redacted), so the pair read is always one version's.
        let mut fields: Fields = self.conn().hgetall(keys.memory(id)).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        if content {
            let version = fields.get("version").cloned().unwrap_or_default();
            let text: Option<String> = self.conn().hget(keys.version(&version), "content").await?;
            fields.insert("content".into(), text.unwrap_or_default());
        }
        Ok(Some(fields))
    }

    /// The memory ids of `paths` (`None` for a path no longer there).
    pub async fn ids_of(&self, store: &str, paths: &[String]) -> redis::RedisResult<Vec<Option<String>>> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        redis::cmd("HMGET")
            .arg(self.keys(store).paths())
            .arg(paths)
            .query_async(&mut self.conn())
            .await
    }

    /// Up to `count` paths of the store in order, after the exclusive bound `after` (a path, or a prefix followed
    /// by `0xff` to skip everything below it) and starting with `prefix`.
    pub async fn paths(
        &self,
        store: &str,
        prefix: &str,
        after: Option<&[u8]>,
        count: usize,
    ) -> redis::RedisResult<Vec<String>> {
        let mut min = Vec::with_capacity(prefix.len() + 2);
        match after {
            Some(a) if a >= prefix.as_bytes() => {
                min.push(b'(');
                min.extend_from_slice(a);
            }
            _ => {
                min.push(b'[');
                min.extend_from_slice(prefix.as_bytes());
            }
        }
        let mut max = vec![b'('];
        max.extend_from_slice(prefix.as_bytes());
        max.push(0xff);
        redis::cmd("ZRANGEBYLEX")
            .arg(self.keys(store).tree())
            .arg(min)
            .arg(max)
            .arg("LIMIT")
            .arg(0)
            .arg(count)
            .query_async(&mut self.conn())
            .await
    }

    /// Creates, updates or deletes a memory, with its new version `version`.
    pub async fn write(&self, store: &str, version: &str, w: Write<'_>) -> redis::RedisResult<Written> {
        let keys = self.keys(store);
        let (sha, size) = w.content.map(|c| (super::sha256(c), c.len())).unwrap_or_default();
        loop {
            let current: Option<String> = if w.mode == "create" {
                None
            } else {
                self.conn().hget(keys.memory(w.memory), "version").await?
            };
            let current_key = current
                .as_deref()
                .map_or_else(|| keys.store(), |v| keys.version(v));
            let text: Vec<String> = Script::new(scripts::WRITE)
                .key(keys.store())
                .key(keys.paths())
                .key(keys.tree())
                .key(keys.memory(w.memory))
                .key(keys.versions(w.memory))
                .key(keys.all_versions())
                .key(keys.version(version))
                .key(current_key)
                .arg(w.mode)
                .arg(w.memory)
                .arg(version)
                .arg(now_micros())
                .arg(w.actor)
                .arg(w.path.unwrap_or_default())
                .arg(if w.content.is_some() { "1" } else { "0" })
                .arg(w.content.unwrap_or_default())
                .arg(&sha)
                .arg(size)
                .arg(w.expected.unwrap_or_default())
                .arg(current.as_deref().unwrap_or_default())
                .arg(MAX_MEMORIES)
                .arg(MAX_STORE_BYTES)
                .invoke_async(&mut self.conn())
                .await?;
            let arg = |i: usize| text.get(i).cloned().unwrap_or_default();
            return Ok(match arg(0).as_str() {
                "ok" if text.len() > 1 => {
                    let names = [
                        "path",
                        "sha",
                        "size",
                        "version",
                        "created_at",
                        "updated_at",
                        "content",
                    ];
                    Written::Stored(
                        names
                            .iter()
                            .enumerate()
                            .map(|(i, n)| ((*n).to_owned(), arg(i + 1)))
                            .collect(),
                    )
                }
                "ok" => Written::Stored(Fields::new()),
                "unchanged" => Written::Unchanged,
                "no_store" => Written::NoStore,
                "archived" => Written::Archived,
                "precondition" => Written::Precondition(arg(1)),
                "path_taken" => Written::PathTaken(arg(1)),
                "too_many" => Written::TooMany,
                "full" => Written::Full,
                "retry" => continue,
                _ => Written::NoMemory,
            });
        }
    }

    /// A version's fields, if it exists.
    pub async fn version(&self, store: &str, id: &str) -> redis::RedisResult<Option<Fields>> {
        let fields: Fields = self.conn().hgetall(self.keys(store).version(id)).await?;
        Ok((!fields.is_empty()).then_some(fields))
    }

    /// Up to `count` version ids (with their sequence numbers), newest first, below `before` (exclusive) when given;
    /// of one memory when `memory` is given, else of the whole store.
    pub async fn version_ids(
        &self,
        store: &str,
        memory: Option<&str>,
        before: Option<u64>,
        count: usize,
    ) -> redis::RedisResult<Vec<(String, u64)>> {
        let keys = self.keys(store);
        let key = memory.map_or_else(|| keys.all_versions(), |m| keys.versions(m));
        let max = before.map_or_else(|| "+inf".to_owned(), |b| format!("({b}"));
        self.conn()
            .zrevrangebyscore_limit_withscores(key, max, "-inf", 0, count as isize)
            .await
    }

    /// Redacts a version.
    pub async fn redact(&self, store: &str, id: &str, actor: &str) -> redis::RedisResult<Redacted> {
        let keys = self.keys(store);
        loop {
            let memory: Option<String> = self.conn().hget(keys.version(id), "memory_id").await?;
            let Some(memory) = memory else {
                return Ok(Redacted::Missing);
            };
            let answer: String = Script::new(scripts::REDACT)
                .key(keys.store())
                .key(keys.version(id))
                .key(keys.memory(&memory))
                .arg(id)
                .arg(now_micros())
                .arg(actor)
                .arg(&memory)
                .invoke_async(&mut self.conn())
                .await?;
            return Ok(match answer.as_str() {
                "ok" => Redacted::Done,
                "current" => Redacted::Current,
                "retry" => continue,
                _ => Redacted::Missing,
            });
        }
    }
}
