//! The Lua scripts that change a memory store. Each touches only the store's slot (`{<namespace>:mem:<store>}`,
//! [`corral_session::keys::MemoryStoreKeys`]), so a write, its precondition and its version are one atomic step.
//! Times are microseconds since the epoch; a version's `seq` is the store's counter, increasing with each write.

/// Creates, updates or deletes one memory and records the version.
///
/// KEYS: 1 store, 2 paths, 3 tree, 4 memory, 5 the memory's versions, 6 the store's versions, 7 the new version,
/// 8 the memory's current version (read by the caller; for `create` any key of the slot).
/// ARGV: 1 `create`|`update`|`delete`, 2 memory id, 3 version id, 4 now, 5 actor JSON, 6 new path (`""`: keep),
/// 7 `1` when content is given, 8 content, 9 its SHA-256, 10 its size, 11 expected SHA-256 (`""`: none), 12 the
/// current version id the caller read (`update`/`delete`), 13 the most memories, 14 the most bytes.
///
/// Answers `{'ok', <memory fields...>}` or `{'unchanged'}` or one of `{'no_store'}`, `{'archived'}`,
/// `{'no_memory'}`, `{'precondition', <sha>}`, `{'path_taken', <id>}`, `{'too_many'}`, `{'full'}`, `{'retry'}`
/// (the memory moved on since the caller read its version: read again).
pub const WRITE: &str = r"
local store, paths, tree, memory = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local mode, id, ver, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('EXISTS', store) == 0 then return {'no_store'} end
if mode ~= 'delete' and redis.call('HEXISTS', store, 'archived_at') == 1 then return {'archived'} end
local path, content, sha, size = ARGV[6], ARGV[8], ARGV[9], tonumber(ARGV[10])
local created = now
if mode == 'create' then
  local taken = redis.call('HGET', paths, path)
  if taken then return {'path_taken', taken} end
  if tonumber(redis.call('HGET', store, 'memories') or '0') >= tonumber(ARGV[13]) then return {'too_many'} end
else
  local cur = redis.call('HMGET', memory, 'path', 'sha', 'size', 'version', 'created_at')
  if not cur[1] then return {'no_memory'} end
  if cur[4] ~= ARGV[12] then return {'retry'} end
  if ARGV[11] ~= '' and ARGV[11] ~= cur[2] then return {'precondition', cur[2]} end
  created = cur[5]
  if mode == 'update' then
    if path == '' then path = cur[1] end
    if ARGV[7] ~= '1' then
      content, sha, size = redis.call('HGET', KEYS[8], 'content') or '', cur[2], tonumber(cur[3])
    end
    if path == cur[1] and sha == cur[2] then return {'unchanged'} end
    if path ~= cur[1] then
      local taken = redis.call('HGET', paths, path)
      if taken then return {'path_taken', taken} end
    end
  else
    path = cur[1]
  end
  if path ~= cur[1] or mode == 'delete' then
    redis.call('HDEL', paths, cur[1])
    redis.call('ZREM', tree, cur[1])
  end
end
if mode ~= 'delete' then
  local bytes = tonumber(redis.call('HGET', store, 'bytes') or '0')
  if bytes + size > tonumber(ARGV[14]) then return {'full'} end
end
local seq = redis.call('HINCRBY', store, 'seq', 1)
local op = 'created'
if mode == 'update' then op = 'modified' elseif mode == 'delete' then op = 'deleted' end
redis.call('HSET', KEYS[7], 'memory_id', id, 'operation', op, 'path', path, 'created_at', now,
  'created_by', ARGV[5], 'seq', seq)
redis.call('ZADD', KEYS[6], seq, ver)
redis.call('ZADD', KEYS[5], seq, ver)
if mode == 'delete' then
  redis.call('DEL', memory)
  redis.call('HINCRBY', store, 'memories', -1)
  return {'ok'}
end
redis.call('HSET', KEYS[7], 'content', content, 'sha', sha, 'size', size)
redis.call('HINCRBY', store, 'bytes', size)
redis.call('HSET', paths, path, id)
redis.call('ZADD', tree, 0, path)
redis.call('HSET', memory, 'path', path, 'sha', sha, 'size', size, 'version', ver, 'created_at', created,
  'updated_at', now)
if mode == 'create' then redis.call('HINCRBY', store, 'memories', 1) end
return {'ok', path, sha, tostring(size), ver, created, now, content}
";

/// Redacts one version: deletes its path and content, keeps its record. KEYS: 1 store, 2 the version, 3 its
/// memory. ARGV: 1 the version id, 2 now, 3 actor JSON, 4 the memory id the caller read from the version.
/// Answers `'ok'` (also for a version redacted before), `'missing'`, `'current'` (it holds its memory's content
/// now: update or delete the memory first) or `'retry'`.
pub const REDACT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
local v = redis.call('HMGET', KEYS[2], 'memory_id', 'redacted_at', 'size')
if not v[1] then return 'missing' end
if v[1] ~= ARGV[4] then return 'retry' end
if v[2] then return 'ok' end
if redis.call('HGET', KEYS[3], 'version') == ARGV[1] then return 'current' end
redis.call('HDEL', KEYS[2], 'path', 'content', 'sha', 'size')
redis.call('HSET', KEYS[2], 'redacted_at', ARGV[2], 'redacted_by', ARGV[3])
if v[3] then redis.call('HINCRBY', KEYS[1], 'bytes', -tonumber(v[3])) end
return 'ok'
";

/// Changes a store's name, description and metadata if it was not changed since the caller read it. KEYS: 1 store.
/// ARGV: 1 the `updated_at` the caller read, 2 now, then field/value pairs. Answers `'ok'`, `'missing'`,
/// `'archived'` or `'retry'`.
pub const UPDATE_STORE: &str = r"
local cur = redis.call('HMGET', KEYS[1], 'updated_at', 'archived_at')
if not cur[1] then return 'missing' end
if cur[2] then return 'archived' end
if cur[1] ~= ARGV[1] then return 'retry' end
redis.call('HSET', KEYS[1], 'updated_at', ARGV[2], unpack(ARGV, 3))
return 'ok'
";

/// Archives a store (once). KEYS: 1 store. ARGV: 1 now. Answers `'ok'` or `'missing'`.
pub const ARCHIVE_STORE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 'missing' end
if redis.call('HEXISTS', KEYS[1], 'archived_at') == 0 then
  redis.call('HSET', KEYS[1], 'archived_at', ARGV[1], 'updated_at', ARGV[1])
end
return 'ok'
";

/// Deletes a store with every memory and version. KEYS: 1 store, 2 paths, 3 tree, 4 the store's versions.
/// ARGV: 1 the prefix of the store's keys (same slot). Answers 1, or 0 when there was no store.
pub const DELETE_STORE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local base = ARGV[1]
local seen = {}
for _, v in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
  local m = redis.call('HGET', base .. 'version:' .. v, 'memory_id')
  if m and not seen[m] then
    seen[m] = true
    redis.call('UNLINK', base .. 'memory:' .. m, base .. 'memory:' .. m .. ':versions')
  end
  redis.call('UNLINK', base .. 'version:' .. v)
end
redis.call('UNLINK', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return 1
";
