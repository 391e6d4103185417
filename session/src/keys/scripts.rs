//! The Lua scripts that make appends and lease changes atomic inside Redis.

use std::sync::LazyLock;

use redis::Script;

/// Appends events in order, refusing when a fencing token is given and is not the session's current one; with a
/// session name, also enqueues its wake-up; with an idempotency window, records the append under the client's key
/// and answers a repeat with the first append's entries instead of appending again; refuses, writing nothing, an
/// append that would take the log past its caps (bytes of event JSON, kept in the size counter, and entries). All
/// keys are in the session's slot, so this is one atomic step.
///
/// KEYS: events stream, fence counter, wake-up shard, idempotency record, size counter. ARGV: token (`""` for an
/// unfenced client append), session to wake (`""`: none), idempotency window in milliseconds (`""`: none), the
/// most bytes and the most entries the log may hold after this append (`"0"`: no cap), then one `event id, type,
/// JSON body` triple per event. Returns `{"ok", entry ids...}`, `{"fenced", current token}`, `{"repeat", first
/// entry id, last entry id}` or `{"full", "bytes" | "events", held, cap}`.
pub(crate) static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if ARGV[1] ~= '' then
  local current = redis.call('GET', KEYS[2]) or '0'
  if current ~= ARGV[1] then
    return {'fenced', current}
  end
end
if ARGV[3] ~= '' then
  local prior = redis.call('GET', KEYS[4])
  if prior then
    local first, last = string.match(prior, '^(%S+) (%S+)$')
    return {'repeat', first, last}
  end
end
local added = 0
for i = 8, #ARGV, 3 do
  added = added + #ARGV[i]
end
local max_bytes = tonumber(ARGV[4]) or 0
local size = tonumber(redis.call('GET', KEYS[5]) or '0')
if max_bytes > 0 and size + added > max_bytes then
  return {'full', 'bytes', tostring(size), ARGV[4]}
end
local max_events = tonumber(ARGV[5]) or 0
if max_events > 0 then
  local held = redis.call('XLEN', KEYS[1])
  if held + (#ARGV - 5) / 3 > max_events then
    return {'full', 'events', tostring(held), ARGV[5]}
  end
end
local reply = {'ok'}
for i = 6, #ARGV, 3 do
  reply[#reply + 1] = redis.call('XADD', KEYS[1], '*', 'id', ARGV[i], 'type', ARGV[i + 1], 'data', ARGV[i + 2])
end
redis.call('INCRBY', KEYS[5], added)
if ARGV[2] ~= '' then
  redis.call('XADD', KEYS[3], '*', 'session', ARGV[2])
end
if ARGV[3] ~= '' and #reply > 1 then
  redis.call('SET', KEYS[4], reply[2] .. ' ' .. reply[#reply], 'PX', ARGV[3])
end
return reply
",
    )
});

/// A Lua prelude defining `next_token(fence)`: bumps a fence counter to max(counter + 1, the Redis clock in
/// microseconds) and returns it as a string. The clock floor keeps tokens rising even when a Redis failover lost the
/// last `INCR` (an asynchronous replica promoted) or Redis lost its data: a token issued later is larger as long as
/// the clock moved on, so two holders never share one. The comparison is on decimal strings (Lua's numbers print
/// 16-digit values in exponent form), and the fence is read back with `GET` for the same reason.
pub(crate) const NEXT_TOKEN: &str = r"
local function next_token(fence)
  local t = redis.call('TIME')
  local floor = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('INCR', fence)
  local token = redis.call('GET', fence)
  if #token < #floor or (#token == #floor and token < floor) then
    redis.call('SET', fence, floor)
    token = floor
  end
  return token
end
";

/// Takes the lease for a holder: a free (or expired) lease is taken with a new fencing token (`next_token`); a
/// lease the holder already has is extended with its token unchanged.
///
/// KEYS: lease hash, fence counter. ARGV: holder, ttl in milliseconds. Returns `{"ok", token}` or
/// `{"held", holder, pttl}`.
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NEXT_TOKEN}{}",
        r"
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder and holder ~= ARGV[1] then
  return {'held', holder, tostring(redis.call('PTTL', KEYS[1]))}
end
local token
if holder then
  token = redis.call('HGET', KEYS[1], 'token')
else
  token = next_token(KEYS[2])
  redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {'ok', token}
"
    ))
});

/// Extends a lease if the token still holds it. A lease that expired without anyone taking over is taken back,
/// since the fencing token is still the current one.
///
/// KEYS: lease hash, fence counter. ARGV: holder, token, ttl in milliseconds. Returns `"ok"` or `"lost"`.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local token = redis.call('HGET', KEYS[1], 'token')
if token == ARGV[2] and redis.call('HGET', KEYS[1], 'holder') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 'ok'
end
if not token and redis.call('GET', KEYS[2]) == ARGV[2] then
  redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 'ok'
end
return 'lost'
",
    )
});

/// Gives a lease up if the token still holds it; a lease already gone or taken over is left alone.
///
/// KEYS: lease hash. ARGV: token. Returns 1 when released, 0 otherwise.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Restarts the visibility timeout of a wake-up entry if this consumer still holds it.
///
/// KEYS: queue stream. ARGV: group, consumer, entry id. Returns 1 when touched, 0 when the entry is no longer this
/// consumer's.
pub(crate) static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if #pending == 1 and pending[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  return 1
end
return 0
",
    )
});

/// Deletes a single key when it has gone unread and unwritten for at least `ARGV[1]` seconds (`OBJECT IDLETIME`,
/// which is not a read itself), so a key read or written just before cannot be deleted under its reader. Returns
/// 1 when deleted, 0 when kept (or gone), -1 when Redis keeps no idle time (an LFU `maxmemory-policy`).
///
/// KEYS: the key. ARGV: the idle seconds.
pub(crate) static DELETE_IF_IDLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local idle = redis.pcall('OBJECT', 'IDLETIME', KEYS[1])
if type(idle) == 'table' and idle.err then
  if string.find(idle.err, 'LFU') then return -1 end
  return 0
end
if type(idle) ~= 'number' then return 0 end
if idle >= tonumber(ARGV[1]) then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Raises a counter to a value, never lowering it: two writers finishing out of order leave the larger value. The
/// counter expires `ARGV[2]` ms after its last raise.
///
/// KEYS: the counter (string). ARGV: the value, the time to live in ms. Returns the counter's value after the call.
pub(crate) static RAISE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return wanted
end
return current
",
    )
});
