//! Every Redis key Corral uses: its name, its hash tag and its ACL prefix. No other module or crate spells a key;
//! `docs/redis.md` describes each one (type, writers and readers, lifetime) and the scripts that touch them.
//!
//! The layout, in three rules:
//!
//! - **Per-tenant prefix.** Every key of a tenant (a namespace) starts with [`tenant_prefix`]
//!   (`corral:t:<namespace>:`), so a Redis ACL user per tenant can be limited to [`tenant_acl_keys`] and
//!   [`tenant_acl_channels`]. Corral's own cross-tenant keys start with [`SYSTEM_PREFIX`] (`corral:sys:`). Namespace
//!   names are DNS labels and never hold a `:`, so one tenant's pattern never matches another's keys.
//! - **One slot per session.** A session's keys share the hash tag of its wake-up shard, `{<namespace>:<shard>}`,
//!   with the shard derived stably from the session id ([`shard_of`]). So an append, the wake-up it causes, its
//!   idempotency record and (later) its webhook outbox entry live in one slot and change together in one script.
//! - **Sharded queues.** A namespace's wake-up queue is [`WAKEUP_SHARDS`] streams, one per shard tag, so a hot
//!   tenant spreads over up to that many Redis Cluster slots (and nodes); consumers read every shard.
//!
//! Key parts (namespaces, session, agent, environment, store and replica names) are Kubernetes names or Corral ids
//! (`[a-z0-9._-]`): they never hold `{`, `}` or `:`, which would break a hash tag or a prefix. Client-chosen strings
//! (idempotency keys) are hashed before they become part of a key.

pub(crate) mod replica_scripts;
pub(crate) mod scripts;

use sha2::{Digest, Sha256};

/// The layout's version, kept in [`system::layout`]. Version 1 (before this module) spelled keys
/// `corral:{<namespace>/<session>}:…`; its keys are not read by this version (see `docs/redis.md`).
pub const LAYOUT_VERSION: u32 = 2;

/// The prefix of Corral's own cross-tenant keys.
pub const SYSTEM_PREFIX: &str = "corral:sys:";

/// How many wake-up shards (and session hash tags) each namespace has. Part of the layout: changing it moves
/// sessions to other tags, so it changes only with [`LAYOUT_VERSION`].
pub const WAKEUP_SHARDS: u16 = 16;

/// The consumer group of the harness pool on each wake-up shard.
pub const WAKEUP_GROUP: &str = "harness";

/// The prefix of every key of `namespace`: `corral:t:<namespace>:`.
pub fn tenant_prefix(namespace: &str) -> String {
    format!("corral:t:{namespace}:")
}

/// The ACL key pattern of `namespace`'s Redis user: `~corral:t:<namespace>:*`.
pub fn tenant_acl_keys(namespace: &str) -> String {
    format!("~{}*", tenant_prefix(namespace))
}

/// The ACL channel pattern of `namespace`'s Redis user (pub/sub delta channels): `&corral:t:<namespace>:*`.
pub fn tenant_acl_channels(namespace: &str) -> String {
    format!("&{}*", tenant_prefix(namespace))
}

/// The `SCAN` pattern of every tenant's sandbox daemon tokens ([`Tenant::sandbox_token`]). It may match other keys
/// too; [`parse_sandbox_token`] keeps only the tokens.
pub const SANDBOX_TOKENS_PATTERN: &str = "corral:t:*:sandbox:*:token";

/// The namespace and pod of a sandbox daemon token's key ([`Tenant::sandbox_token`]); `None` for any other key.
pub fn parse_sandbox_token(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix("corral:t:")?;
    let (namespace, rest) = rest.split_once(':')?;
    let pod = rest.strip_prefix("sandbox:")?.strip_suffix(":token")?;
    let plain = |part: &str| !part.is_empty() && !part.contains([':', '{', '}']);
    (plain(namespace) && plain(pod)).then_some((namespace, pod))
}

/// The wake-up shard of `session`: the first eight bytes of the SHA-256 of its id, modulo [`WAKEUP_SHARDS`].
/// Stable across processes, versions and languages.
pub fn shard_of(session: &str) -> u16 {
    let digest = Sha256::digest(session.as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    // The remainder is below WAKEUP_SHARDS, so it fits.
    u16::try_from(u64::from_be_bytes(head) % u64::from(WAKEUP_SHARDS)).unwrap_or_default()
}

fn hex_sha256(input: &str) -> String {
    Sha256::digest(input.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The keys of one tenant (namespace) that are not a single session's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    namespace: String,
    prefix: String,
}

impl Tenant {
    /// The keys of `namespace`.
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            prefix: tenant_prefix(namespace),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The prefix of every key of the tenant.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash tag of shard `shard`: `{<namespace>:<shard>}`.
    pub fn shard_tag(&self, shard: u16) -> String {
        format!("{{{}:{shard}}}", self.namespace)
    }

    /// The hash tag of the tenant's keys that change together but belong to no session: `{<namespace>}`.
    pub fn tag(&self) -> String {
        format!("{{{}}}", self.namespace)
    }

    /// The keys of session `session`.
    pub fn session(&self, session: &str) -> SessionKeys {
        SessionKeys::new(&self.namespace, session)
    }

    /// Wake-up shard `shard` (stream; group [`WAKEUP_GROUP`]; entries `session=<id>`): sessions with new client
    /// events, read by the namespace's harness pool. Written in the append script, so a client event and its
    /// wake-up land together.
    pub fn wakeups(&self, shard: u16) -> String {
        format!("{}{}:wakeups", self.prefix, self.shard_tag(shard))
    }

    /// Every wake-up shard, indexed by shard.
    pub fn wakeup_queues(&self) -> Vec<String> {
        (0..WAKEUP_SHARDS).map(|shard| self.wakeups(shard)).collect()
    }

    /// Agent `agent`'s spend ledger (hash: session id → `"<tokens> <cents>"`), for agent-wide budgets. Untagged:
    /// a single key that no script touches with another.
    pub fn agent_spend(&self, agent: &str) -> String {
        format!("{}agent:{agent}:spend", self.prefix)
    }

    /// The bearer token of sandbox pod `pod`'s daemon (string: 64 hex characters). Written by the operator
    /// before it creates the pod (whose daemon gets only the token's SHA-256), read by the namespace's harness
    /// to call the daemon, deleted by the operator with the pod. Untagged: a single key that no script touches.
    pub fn sandbox_token(&self, pod: &str) -> String {
        format!("{}sandbox:{pod}:token", self.prefix)
    }

    /// Harness replica `replica`'s liveness key (string: its epoch, `PX` 800 ms renewed every 200 ms by `BEAT`).
    /// `replica` is `<pod>-<random epoch>` and never reused, so a replica once reaped stays dead.
    pub fn replica(&self, replica: &str) -> String {
        format!("{}{}:replica:{replica}", self.prefix, self.tag())
    }

    /// The sessions of wake-up shard `shard` whose lease replica `replica` holds (set of session ids), in the
    /// shard's slot, so `ACQUIRE` adds a session and `RELEASE` and `RECLAIM` remove it in the same step that
    /// changes its lease: the set is exactly the replica's leases of that shard, and a reaper finds them all.
    pub fn replica_sessions(&self, replica: &str, shard: u16) -> String {
        format!(
            "{}{}:replica:{replica}:sessions",
            self.prefix,
            self.shard_tag(shard)
        )
    }

    /// Replica `replica`'s reap tombstone in the namespace's slot (string `1`, `PX`
    /// [`crate::liveness::REAP_TOMBSTONE`]): written by `REAP_BEGIN` in the step that removes it from the registry,
    /// so its next `BEAT` answers `dead`, while a replica missing from the registry without a tombstone lost its
    /// registration with Redis's data and registers again.
    pub fn replica_reaped(&self, replica: &str) -> String {
        format!("{}{}:replica:{replica}:dead", self.prefix, self.tag())
    }

    /// Replica `replica`'s reap tombstone in wake-up shard `shard`'s slot (string `1`, `PX`
    /// [`crate::liveness::REAP_TOMBSTONE`]): written by a reaper before it reads the replica's sessions of the
    /// shard, and checked by `ACQUIRE`, so an `ACQUIRE` of the reaped replica that lands late (a stalled network)
    /// takes nothing.
    pub fn replica_reaped_in_shard(&self, replica: &str, shard: u16) -> String {
        format!("{}{}:replica:{replica}:dead", self.prefix, self.shard_tag(shard))
    }

    /// The namespace's registered replicas (sorted set: replica → its last beat, Unix ms of the Redis clock). A
    /// replica leaves it only when reaped: an old score makes it a suspect, not dead, so a Redis outage moves no
    /// session.
    pub fn replicas(&self) -> String {
        format!("{}{}:replicas", self.prefix, self.tag())
    }

    /// Replicas being reaped (sorted set: replica → when the reaper's lock lapses, Unix ms). An entry whose lock
    /// lapsed is a reap that a crashed reaper left unfinished: any live replica takes it over.
    pub fn reaping(&self) -> String {
        format!("{}{}:reaping", self.prefix, self.tag())
    }

    /// Reserved (outward issue): webhook outbox shard `shard` (sorted set: delivery id → due time, ms). Sharded
    /// like wake-ups, so the append of a session event and the delivery it causes are one script.
    pub fn outbox(&self, shard: u16) -> String {
        format!("{}{}:outbox", self.prefix, self.shard_tag(shard))
    }

    /// Reserved (outward issue): one pending webhook delivery (hash: webhook, event, attempts, last error), in
    /// its outbox shard's slot.
    pub fn delivery(&self, shard: u16, delivery: &str) -> String {
        format!("{}{}:delivery:{delivery}", self.prefix, self.shard_tag(shard))
    }

    /// Reserved (outward issue): webhook `webhook`'s delivery log (stream, capped with `MAXLEN ~`).
    pub fn webhook_log(&self, webhook: &str) -> String {
        format!("{}webhook:{webhook}:log", self.prefix)
    }

    /// The doorbell of follow hub `hub` in this namespace (one hub per gateway or harness process; stream,
    /// `MAXLEN 1`, expires an hour after its last ring): a new follower of one of the namespace's sessions rings it
    /// so that the hub's blocking read returns and takes the session's log in. Under the tenant's prefix, so a
    /// tenant's Redis user may ring and read it. Untagged: the hub's read spans many slots, like a
    /// `WakeConsumer`'s.
    pub fn follow_doorbell(&self, hub: &str) -> String {
        format!("{}follow:{hub}:bell", self.prefix)
    }

    /// The keys of environment `environment` (work queues, warm pools).
    pub fn environment(&self, environment: &str) -> EnvironmentKeys {
        EnvironmentKeys {
            base: format!("{}{{{}:env:{environment}}}:", self.prefix, self.namespace),
        }
    }

    /// The keys of the namespace's Files API objects.
    pub fn files(&self) -> FileKeys {
        FileKeys {
            base: format!("{}{{{}:files}}:", self.prefix, self.namespace),
            system: format!("{SYSTEM_PREFIX}{{{}:files}}:", self.namespace),
        }
    }

    /// The keys of the namespace's skills.
    pub fn skills(&self) -> SkillKeys {
        SkillKeys {
            base: format!("{}{{{}:skills}}:", self.prefix, self.namespace),
        }
    }

    /// The namespace's memory stores in creation order (sorted set, all scores 0: store ids are ULIDs), under the
    /// tag `{<namespace>:memstores}`.
    pub fn memory_stores(&self) -> String {
        format!("{}{{{}:memstores}}:index", self.prefix, self.namespace)
    }

    /// The keys of memory store `store`.
    pub fn memory_store(&self, store: &str) -> MemoryStoreKeys {
        MemoryStoreKeys {
            base: format!("{}{{{}:mem:{store}}}:", self.prefix, self.namespace),
        }
    }
}

/// The keys of one session, all under one hash tag (its wake-up shard's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    tenant: Tenant,
    shard: u16,
    base: String,
}

impl SessionKeys {
    /// The keys of session `session` in namespace `namespace`.
    pub fn new(namespace: &str, session: &str) -> Self {
        let tenant = Tenant::new(namespace);
        let shard = shard_of(session);
        let base = format!("{}{}:s:{session}:", tenant.prefix(), tenant.shard_tag(shard));
        Self { tenant, shard, base }
    }

    /// The session's tenant.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// The session's wake-up shard.
    pub fn shard(&self) -> u16 {
        self.shard
    }

    /// The hash tag every key of the session carries: `{<namespace>:<shard>}`.
    pub fn tag(&self) -> String {
        self.tenant.shard_tag(self.shard)
    }

    /// The session's events in order (stream; fields `id`, `type`, `data`). The entry id is the log's cursor.
    pub fn events(&self) -> String {
        format!("{}events", self.base)
    }

    /// The session's writer lease (hash: `holder`, `token`; a harness replica's lease also has `mode` = `r` and
    /// no expiry, and `again` = `1` once a wake-up came while it was held; a local or older lease expires unless
    /// renewed).
    pub fn lease(&self) -> String {
        format!("{}lease", self.base)
    }

    /// The session's fencing token counter (string), incremented on every lease takeover.
    pub fn fence(&self) -> String {
        format!("{}fence", self.base)
    }

    /// The bytes of event JSON in the session's log (string: counter), kept by `APPEND` for the per-session cap
    /// ([`crate::SessionCaps`]). Deleted with the session.
    pub fn size(&self) -> String {
        format!("{}size", self.base)
    }

    /// The newest `metadata.generation` of the Session custom resource the gateway wrote (string: integer), raised
    /// before it answers a change of the spec (its resources, an update): a harness reading Sessions from a
    /// watch-fed cache reads the spec from the API server instead when its copy is older. Deleted with the session.
    pub fn spec_generation(&self) -> String {
        format!("{}spec", self.base)
    }

    /// The wake-up shard the session's wake-ups go to: in the session's slot.
    pub fn wakeups(&self) -> String {
        self.tenant.wakeups(self.shard)
    }

    /// The record of a client append made with idempotency key `client_key` (string: the appended events' ids and
    /// cursors; expires after the idempotency window). The key is hashed: clients choose it.
    pub fn idempotency(&self, client_key: &str) -> String {
        format!("{}idem:{}", self.base, hex_sha256(client_key))
    }

    /// Reserved (outward issue): the session's streaming-delta channel (sharded pub/sub, `SPUBLISH`): previews of
    /// the model's output that never touch the log.
    pub fn deltas(&self) -> String {
        format!("{}deltas", self.base)
    }

    /// Reserved (together issue): the keys of thread `thread`, in the session's slot so a thread's creation and
    /// the session's lifecycle event are one script.
    pub fn thread(&self, thread: &str) -> ThreadKeys {
        ThreadKeys {
            base: format!("{}t:{thread}:", self.base),
        }
    }

    /// The keys a session's deletion removes. Idempotency records expire by themselves; thread keys are added
    /// here by the together issue.
    pub fn all(&self) -> Vec<String> {
        vec![
            self.events(),
            self.lease(),
            self.fence(),
            self.size(),
            self.spec_generation(),
        ]
    }
}

/// Reserved (together issue): the keys of one thread of a session, in the session's slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadKeys {
    base: String,
}

impl ThreadKeys {
    /// The thread's events (stream, as a session's).
    pub fn events(&self) -> String {
        format!("{}events", self.base)
    }

    /// The thread's writer lease (hash, as a session's).
    pub fn lease(&self) -> String {
        format!("{}lease", self.base)
    }

    /// The thread's fencing token counter (string).
    pub fn fence(&self) -> String {
        format!("{}fence", self.base)
    }
}

/// Reserved: the keys of one environment, under the tag `{<namespace>:env:<environment>}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentKeys {
    base: String,
}

impl EnvironmentKeys {
    /// Self-hosted hands issue: the environment's work queue (stream; group `workers`; entries
    /// `type=session, id=<session>`).
    pub fn work(&self) -> String {
        format!("{}work", self.base)
    }

    /// Self-hosted hands issue: one work item (hash: state, lease holder, `last_heartbeat`), next to its queue.
    pub fn work_item(&self, item: &str) -> String {
        format!("{}work:{item}", self.base)
    }

    /// Speed issue: the environment's ready warm sandboxes (set of pod names), kept by the operator and popped
    /// atomically by a claim.
    pub fn warm_pool(&self) -> String {
        format!("{}warm", self.base)
    }
}

/// The keys of a namespace's files (the Files API), under the tag `{<namespace>:files}`, so that a file's metadata
/// and its index entries are written and removed in one script. The bytes live in object storage. The quota's
/// keys ([`FileKeys::usage`], [`FileKeys::charged`]) share the tag but sit under [`SYSTEM_PREFIX`], out of reach of
/// the tenant's own Redis user, which could otherwise lower its usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileKeys {
    base: String,
    system: String,
}

impl FileKeys {
    /// Every file, newest first by id (sorted set, all scores 0: file ids are ULIDs, so lexical order is time).
    pub fn index(&self) -> String {
        format!("{}index", self.base)
    }

    /// The files of one scope, for example a session's outputs (sorted set like [`FileKeys::index`]).
    pub fn scope(&self, scope: &str) -> String {
        format!("{}scope:{scope}", self.base)
    }

    /// The outputs a session's sandbox produced (hash: path under the outputs directory → `<file id> <fingerprint>`),
    /// so a file is stored again only when it changed, and a changed one replaces its earlier File.
    pub fn outputs(&self, session: &str) -> String {
        format!("{}outputs:{session}", self.base)
    }

    /// Files that expire (sorted set: file id → expiry, ms since the epoch).
    pub fn expiring(&self) -> String {
        format!("{}expiring", self.base)
    }

    /// One file's metadata (hash: filename, mime_type, size_bytes, created_at, expires_at, downloadable, scope).
    pub fn file(&self, file: &str) -> String {
        format!("{}file:{file}", self.base)
    }

    /// The bytes the namespace's files take (integer), counted against its storage quota. A system key.
    pub fn usage(&self) -> String {
        format!("{}usage", self.system)
    }

    /// The bytes each counted file added to [`FileKeys::usage`] (hash: file id → bytes), so a removal gives back
    /// exactly what its file took, once, and a file stored before the counter existed gives back nothing. A
    /// system key.
    pub fn charged(&self) -> String {
        format!("{}charged", self.system)
    }
}

/// The keys of one namespace's skills, all under the tag `{<namespace>:skills}`, so a skill and its versions
/// change together in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillKeys {
    base: String,
}

impl SkillKeys {
    /// Every skill, newest first by id (sorted set, all scores 0: skill ids are ULIDs, so lexical order is time).
    pub fn index(&self) -> String {
        format!("{}index", self.base)
    }

    /// One skill (hash: display_name, name, created_at, updated_at).
    pub fn skill(&self, skill: &str) -> String {
        format!("{}skill:{skill}", self.base)
    }

    /// One skill's versions (sorted set: version id → the same number; version ids are microseconds since the
    /// epoch, increasing per skill).
    pub fn versions(&self, skill: &str) -> String {
        format!("{}skill:{skill}:versions", self.base)
    }

    /// One version (string: JSON with name, description, created_at and the files with their sizes).
    pub fn version(&self, skill: &str, version: &str) -> String {
        format!("{}skill:{skill}:version:{version}", self.base)
    }
}

/// The keys of one memory store, under the tag `{<namespace>:mem:<store>}`: a write (check the precondition,
/// write the memory, add its version) and a store's deletion are each one script in one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStoreKeys {
    base: String,
}

impl MemoryStoreKeys {
    /// The store itself (hash: name, description, metadata JSON, created_at, updated_at, archived_at, the version
    /// counter `seq`, the memory count `memories` and `bytes`, the content bytes its versions hold).
    pub fn store(&self) -> String {
        format!("{}store", self.base)
    }

    /// The store's memories by path (hash: path → memory id).
    pub fn paths(&self) -> String {
        format!("{}paths", self.base)
    }

    /// The store's paths in order (sorted set, all scores 0, so `ZRANGEBYLEX` lists a prefix in path order).
    pub fn tree(&self) -> String {
        format!("{}tree", self.base)
    }

    /// One memory (hash: path, content, `content_sha256`, `size`, `version`, created_at, updated_at).
    pub fn memory(&self, memory: &str) -> String {
        format!("{}memory:{memory}", self.base)
    }

    /// One memory's versions (sorted set: version id → the store's sequence number when it was written); kept
    /// after the memory is deleted.
    pub fn versions(&self, memory: &str) -> String {
        format!("{}memory:{memory}:versions", self.base)
    }

    /// Every version of the store (sorted set: version id → sequence number, increasing with each write).
    pub fn all_versions(&self) -> String {
        format!("{}versions", self.base)
    }

    /// One version (hash: memory_id, operation, path, content, `content_sha256`, `size`, created_at, created_by,
    /// and once redacted redacted_at and redacted_by; redaction deletes path and content and keeps the rest).
    pub fn version(&self, version: &str) -> String {
        format!("{}version:{version}", self.base)
    }

    /// The prefix of every key of the store (a store's deletion removes the keys it lists under it).
    pub fn base(&self) -> &str {
        &self.base
    }
}

/// Corral's own cross-tenant keys, under [`SYSTEM_PREFIX`]; only Corral's system Redis user reaches them.
pub mod system {
    /// The layout version of this Redis (string), written on first connect.
    pub fn layout() -> String {
        format!("{}layout", super::SYSTEM_PREFIX)
    }

    /// The namespaces that have (or had) files with an expiry (set), walked by the gateway's expiry sweep.
    pub fn expiring_file_namespaces() -> String {
        format!("{}files:expiring-namespaces", super::SYSTEM_PREFIX)
    }
}

#[cfg(test)]
mod tests;
