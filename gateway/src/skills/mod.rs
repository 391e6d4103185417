//! Skills: a skill is a named set of immutable versions; each version is the files of one directory holding a
//! `SKILL.md` whose frontmatter names and describes it. Metadata lives in Redis under the tenant's prefix
//! ([`corral_session::keys::SkillKeys`]), the files in the Files API's object storage under
//! `t/<namespace>/skills/<skill>/<upload>/<path>`. See docs/skills.md.

pub mod upload;

use std::collections::HashMap;

use corral_session::Connection;
use corral_session::keys::{SkillKeys, Tenant};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::mapping::common::time;

/// One file of a version: its path below the skill's directory (`SKILL.md`, `scripts/run.py`) and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkillFile {
    /// The path below the skill's directory.
    pub path: String,
    /// Bytes.
    pub size: u64,
}

/// A skill: what every version shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkillMeta {
    /// `skill_<ULID>`.
    pub id: String,
    /// The human-readable label.
    pub display_name: String,
    /// The immutable kebab-case slug of its first version's `SKILL.md` (the mounted directory's name).
    pub name: String,
    /// When it was created.
    pub created_at: jiff::Timestamp,
    /// When its newest version was added.
    pub updated_at: jiff::Timestamp,
}

impl SkillMeta {
    /// The SDK's `BetaSkill`, with `latest` its newest version's id.
    pub fn object(&self, latest: &str) -> Value {
        json!({
            "id": self.id,
            "type": "skill",
            "display_name": self.display_name,
            "latest_version_id": latest,
            "source": { "type": "custom" },
            "created_at": time(self.created_at),
            "updated_at": time(self.updated_at),
        })
    }

    fn from_fields(id: &str, f: &HashMap<String, String>) -> Option<Self> {
        Some(Self {
            id: id.to_owned(),
            display_name: f.get("display_name")?.clone(),
            name: f.get("name")?.clone(),
            created_at: micros(f.get("created_at")?)?,
            updated_at: micros(f.get("updated_at")?)?,
        })
    }
}

/// One version: what its `SKILL.md` says and the files it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// The skill's id (not stored: the key says it).
    #[serde(skip)]
    pub skill_id: String,
    /// The version's id: microseconds since the epoch at its creation, increasing per skill (not stored).
    #[serde(skip)]
    pub version: String,
    /// The skill's slug.
    pub name: String,
    /// The `description` of its `SKILL.md`.
    pub description: String,
    /// Where its files are in object storage (a prefix ending in `/`).
    pub blobs: String,
    /// Its files.
    pub files: Vec<SkillFile>,
}

impl VersionMeta {
    /// The SDK's `BetaSkillVersion`.
    pub fn object(&self) -> Value {
        json!({
            "id": self.version,
            "type": "skill_version",
            "skill_id": self.skill_id,
            "name": self.name,
            "description": self.description,
            "created_at": micros(&self.version).map(time),
        })
    }

    /// The object key of one of its files.
    pub fn blob_key(&self, file: &SkillFile) -> String {
        format!("{}{}", self.blobs, file.path)
    }

    /// Bytes all its files take.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// A time stored as microseconds since the epoch (version ids are such times).
fn micros(value: &str) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_microsecond(value.parse().ok()?).ok()
}

/// The object-key prefix of one upload's files.
pub fn blob_prefix(namespace: &str, skill: &str, upload: &str) -> String {
    format!("t/{namespace}/skills/{skill}/{upload}/")
}

/// Whether `id` could be a skill id (`skill_` and a ULID): anything else is not looked up.
pub fn valid_skill_id(id: &str) -> bool {
    id.strip_prefix("skill_")
        .is_some_and(|u| ulid::Ulid::from_string(u).is_ok())
}

/// Whether `version` could be a version id (digits only).
pub fn valid_version_id(version: &str) -> bool {
    !version.is_empty() && version.len() <= 20 && version.bytes().all(|b| b.is_ascii_digit())
}

/// The most skills one namespace may hold.
pub const MAX_SKILLS: u64 = 500;
/// The most versions one skill may hold.
pub const MAX_VERSIONS: u64 = 100;

/// Adds a version (and, for a new skill, the skill) in one step. KEYS: the skill's hash, its versions, the new
/// version's key, the index. ARGV: version id, version JSON, skill id, `create` or `add`, the most skills, the most
/// versions, then for `create` the skill hash's field/value pairs. 1: stored; 0: the id is not newer than the
/// skill's newest (pick a later one); -1: `create` of a skill that exists; -2: `add` to a skill that does not;
/// -3: the namespace holds the most skills; -4: the skill holds the most versions.
const ADD_VERSION: &str = r"
if ARGV[4] == 'create' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
  if redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[5]) then return -3 end
else
  if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return -4 end
local last = redis.call('ZREVRANGE', KEYS[2], 0, 0)
if last[1] and tonumber(last[1]) >= tonumber(ARGV[1]) then return 0 end
if ARGV[4] == 'create' then
  redis.call('HSET', KEYS[1], unpack(ARGV, 7))
  redis.call('ZADD', KEYS[4], 0, ARGV[3])
end
redis.call('SET', KEYS[3], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('HSET', KEYS[1], 'updated_at', ARGV[1])
return 1
";

/// Removes one version unless it is the skill's only one. KEYS: the skill's versions, the version's key. Returns
/// `{1, json}` when removed, `{0, false}` when there was no such version, `{-1, false}` when it is the only one.
const REMOVE_VERSION: &str = r"
local json = redis.call('GET', KEYS[2])
if not json then return {0, false} end
if redis.call('ZCARD', KEYS[1]) <= 1 then return {-1, false} end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[1], ARGV[1])
return {1, json}
";

/// Removes a skill and every version. KEYS: the skill's hash, its versions, the index. ARGV: the skill id, the
/// prefix of its version keys (same slot). Returns the removed versions' JSON, or false when there was no skill.
const REMOVE_SKILL: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local out = {}
for _, v in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local key = ARGV[2] .. v
  local json = redis.call('GET', key)
  if json then table.insert(out, json) end
  redis.call('DEL', key)
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
return out
";

/// What [`SkillIndex::add_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// Stored under this version id.
    Stored(String),
    /// `create` found the skill already there (an id collision: never in practice).
    Exists,
    /// The skill is gone.
    NoSkill,
    /// The namespace holds [`MAX_SKILLS`] skills.
    TooManySkills,
    /// The skill holds [`MAX_VERSIONS`] versions.
    TooManyVersions,
}

/// What [`SkillIndex::remove_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// Removed; its files are to be deleted.
    Version(VersionMeta),
    /// No such version.
    Missing,
    /// It is the skill's only version (delete the skill instead).
    Last,
}

/// The skills of one namespace.
#[derive(Clone)]
pub struct SkillIndex {
    redis: Connection,
    keys: SkillKeys,
}

impl SkillIndex {
    /// The skills of `namespace`.
    pub fn new(redis: Connection, namespace: &str) -> Self {
        Self {
            redis,
            keys: Tenant::new(namespace).skills(),
        }
    }

    /// A skill, if it exists.
    pub async fn get(&self, id: &str) -> redis::RedisResult<Option<SkillMeta>> {
        let fields: HashMap<String, String> = self.redis.clone().hgetall(self.keys.skill(id)).await?;
        Ok(SkillMeta::from_fields(id, &fields))
    }

    /// A skill's newest version id.
    pub async fn latest(&self, id: &str) -> redis::RedisResult<Option<String>> {
        let newest: Vec<String> = self.redis.clone().zrevrange(self.keys.versions(id), 0, 0).await?;
        Ok(newest.into_iter().next())
    }

    /// One version of a skill, if it exists.
    pub async fn version(&self, id: &str, version: &str) -> redis::RedisResult<Option<VersionMeta>> {
        let json: Option<String> = self.redis.clone().get(self.keys.version(id, version)).await?;
        Ok(json.and_then(|j| parse_version(id, version, &j)))
    }

    /// Up to `limit` skill ids, newest first, older than `before` (exclusive) when given.
    pub async fn page(&self, before: Option<&str>, limit: usize) -> redis::RedisResult<Vec<String>> {
        let max = before.map_or_else(|| "+".to_owned(), |b| format!("({b}"));
        self.redis
            .clone()
            .zrevrangebylex_limit(self.keys.index(), max, "-", 0, limit as isize)
            .await
    }

    /// Up to `limit` version ids of a skill, newest first, older than `before` (exclusive) when given.
    pub async fn versions_page(
        &self,
        id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> redis::RedisResult<Vec<String>> {
        let max = before.map_or_else(|| "+inf".to_owned(), |b| format!("({b}"));
        self.redis
            .clone()
            .zrevrangebyscore_limit(self.keys.versions(id), max, "-inf", 0, limit as isize)
            .await
    }

    /// Stores `version` as the newest version of skill `skill` (creating the skill when `create` is given), under
    /// a version id no older than now and newer than the skill's newest.
    pub async fn add_version(
        &self,
        skill: &str,
        version: &VersionMeta,
        create: Option<&SkillMeta>,
    ) -> redis::RedisResult<Added> {
        let json = serde_json::to_string(version).map_err(|e| {
            redis::RedisError::from((redis::ErrorKind::Client, "version JSON", e.to_string()))
        })?;
        let script = Script::new(ADD_VERSION);
        let mut id = jiff::Timestamp::now().as_microsecond();
        loop {
            let v = id.to_string();
            let mut invocation = script.prepare_invoke();
            invocation
                .key(self.keys.skill(skill))
                .key(self.keys.versions(skill))
                .key(self.keys.version(skill, &v))
                .key(self.keys.index())
                .arg(&v)
                .arg(&json)
                .arg(skill)
                .arg(if create.is_some() { "create" } else { "add" })
                .arg(MAX_SKILLS)
                .arg(MAX_VERSIONS);
            if let Some(meta) = create {
                invocation
                    .arg("display_name")
                    .arg(&meta.display_name)
                    .arg("name")
                    .arg(&meta.name)
                    .arg("created_at")
                    .arg(&v);
            }
            let code: i64 = invocation.invoke_async(&mut self.redis.clone()).await?;
            match code {
                1 => return Ok(Added::Stored(v)),
                -1 => return Ok(Added::Exists),
                -2 => return Ok(Added::NoSkill),
                -3 => return Ok(Added::TooManySkills),
                -4 => return Ok(Added::TooManyVersions),
                _ => {
                    let newest = self.latest(skill).await?.and_then(|l| l.parse::<i64>().ok());
                    id = newest.map_or(id + 1, |n| n.max(id) + 1);
                }
            }
        }
    }

    /// Removes one version of a skill, unless it is its only one.
    pub async fn remove_version(&self, skill: &str, version: &str) -> redis::RedisResult<Removed> {
        let (code, json): (i64, Option<String>) = Script::new(REMOVE_VERSION)
            .key(self.keys.versions(skill))
            .key(self.keys.version(skill, version))
            .arg(version)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(match (code, json) {
            (1, Some(json)) => {
                parse_version(skill, version, &json).map_or(Removed::Missing, Removed::Version)
            }
            (-1, _) => Removed::Last,
            _ => Removed::Missing,
        })
    }

    /// Removes a skill and all its versions; the removed versions (their files are to be deleted), or `None` when
    /// there was no such skill.
    pub async fn remove_skill(&self, skill: &str) -> redis::RedisResult<Option<Vec<VersionMeta>>> {
        let prefix = self.keys.version(skill, "");
        let removed: Option<Vec<String>> = Script::new(REMOVE_SKILL)
            .key(self.keys.skill(skill))
            .key(self.keys.versions(skill))
            .key(self.keys.index())
            .arg(skill)
            .arg(&prefix)
            .invoke_async(&mut self.redis.clone())
            .await?;
        Ok(removed.map(|all| {
            all.iter()
                .filter_map(|json| parse_version(skill, "", json))
                .collect()
        }))
    }
}

fn parse_version(skill: &str, version: &str, json: &str) -> Option<VersionMeta> {
    let mut meta: VersionMeta = serde_json::from_str(json).ok()?;
    meta.skill_id = skill.to_owned();
    meta.version = version.to_owned();
    Some(meta)
}
