//! The Lua scripts of replica liveness and replica-mode leases: a harness replica beats once every 200 ms for all
//! its sessions, its session leases point at it without a time limit, and a live replica that finds it stale
//! reclaims its sessions. Each script stays in one slot: the namespace's (`{<ns>}`: liveness, registry, reap
//! locks) or one wake-up shard's (`{<ns>:<s>}`: leases, fences, the shard's queue and the replica's set of the
//! shard's sessions). A replica id crosses from one to the other as an argument, which is sound because ids are
//! never reused and a reaped replica never comes back.

use std::sync::LazyLock;

use redis::Script;

use super::scripts::NEXT_TOKEN;

/// The Redis server's clock in Unix milliseconds, as a Lua prelude (`now`). Scripts replicate their effects, so
/// reading the clock inside one is allowed.
const NOW: &str =
    "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n";

fn with_clock(body: &str) -> Script {
    Script::new(&format!("{NOW}{body}"))
}

/// Registers a replica: its liveness key and its entry in the registry, unless it was reaped (its tombstone is
/// there: a replica registering again after Redis lost its registration may have been reaped since).
///
/// KEYS: replica liveness key, registry, the replica's reap tombstone (namespace slot). ARGV: replica, epoch,
/// liveness ttl (ms). Returns the server's clock (ms), or -1 when the replica was reaped.
pub(crate) static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    with_clock(
        r"
if redis.call('EXISTS', KEYS[3]) == 1 then
  return -1
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[1])
return now
",
    )
});

/// One beat of a replica: renews its liveness (or revives it after an outage, as long as nobody reaped it) and
/// returns the replicas a live one should watch to reap: registered ones silent for at least the suspect time
/// (with their last beat, which the reaper must see unchanged for a while on its own clock before it reaps), and
/// reaps whose reaper's lock lapsed (with `""`).
///
/// KEYS: replica liveness key, registry, reap locks, the replica's reap tombstone (namespace slot). ARGV: replica,
/// epoch, liveness ttl (ms), suspect after (ms), most suspects returned. Returns `{"dead"}` once the replica was
/// reaped, `{"unregistered"}` when it is missing from the registry without a tombstone (Redis lost its data), else
/// `{"ok", suspect, last beat, suspect, last beat...}`.
pub(crate) static BEAT: LazyLock<Script> = LazyLock::new(|| {
    with_clock(
        r"
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then
  if redis.call('EXISTS', KEYS[4]) == 1 then
    return {'dead'}
  end
  return {'unregistered'}
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[1])
local reply = {'ok'}
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]), 'WITHSCORES', 'LIMIT', 0, ARGV[5])
for i = 1, #stale, 2 do
  reply[#reply + 1] = stale[i]
  reply[#reply + 1] = stale[i + 1]
end
for _, r in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, ARGV[5])) do
  reply[#reply + 1] = r
  reply[#reply + 1] = ''
end
return reply
",
    )
});

/// Starts reaping a replica: unless forced, only a replica whose liveness key lapsed, whose last beat is older
/// than the stale time and still the one the reaper observed (a beat since, or a reaper that saw it only briefly
/// after a step of the Redis clock, reaps nothing), or a reap whose lock lapsed. Removes it from the registry for
/// good and writes its tombstone (its next beat answers `dead`), and takes the reap lock.
///
/// KEYS: the replica's liveness key, registry, reap locks, the replica's reap tombstone (namespace slot). ARGV:
/// replica, stale after (ms), lock time (ms), `1` to force, the last beat the reaper observed (`""`: none),
/// tombstone time (ms). Returns `{"ok", last beat or "", now}`, `{"alive"}` (it beat, or beat since it was
/// observed), `{"busy"}` (another reaper holds the lock) or `{"gone"}` (already reaped, or never registered).
pub(crate) static REAP_BEGIN: LazyLock<Script> = LazyLock::new(|| {
    with_clock(
        r"
local last = redis.call('ZSCORE', KEYS[2], ARGV[1])
if ARGV[4] ~= '1' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    return {'alive'}
  end
  if last then
    if tonumber(last) > now - tonumber(ARGV[2]) or tonumber(last) ~= tonumber(ARGV[5]) then
      return {'alive'}
    end
  else
    local lock = redis.call('ZSCORE', KEYS[3], ARGV[1])
    if not lock then
      return {'gone'}
    end
    if tonumber(lock) > now then
      return {'busy'}
    end
  end
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[6])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1])
return {'ok', last or '', tostring(now)}
",
    )
});

/// Ends a reap: drops its lock.
///
/// KEYS: reap locks. ARGV: replica. Returns 1 when the lock was there.
pub(crate) static REAP_END: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
return redis.call('ZREM', KEYS[1], ARGV[1])
",
    )
});

/// Takes a session's lease for a replica, without expiry, adding the session to the replica's set of the shard,
/// and acknowledges the wake-up that brought it (so a running turn holds no pending entry). A lease held by anyone
/// (this replica included) is left alone: a replica-mode lease is marked `again`, so its holder wakes the session
/// once more when it lets go, and the wake-up is acknowledged; an expiring (local or older) lease is reported
/// with its time left and the wake-up stays pending. Running it again for the same replica and wake-up answers
/// the lease it took (a retry after a lost reply).
///
/// A replica whose reap tombstone is in the shard takes nothing and acknowledges nothing: its `ACQUIRE` was
/// delayed past its own reap (which already handed its wake-ups back), and a lease taken now would be in a set no
/// reaper reads again.
///
/// KEYS: lease, fence, wake-up shard, the replica's session set of the shard, the replica's reap tombstone of the
/// shard. ARGV: replica, session, wake-up entry id (`""`: none), consumer group. Returns `{"ok", token}`,
/// `{"held", holder, "-1"}` (acknowledged), `{"held", holder, pttl}` (expiring lease, not acknowledged) or
/// `{"dead"}`.
pub(crate) static ACQUIRE_FOR_REPLICA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NEXT_TOKEN}{}",
        r"
if redis.call('EXISTS', KEYS[5]) == 1 then
  return {'dead'}
end
local function ack()
  if ARGV[3] ~= '' then
    redis.call('XACK', KEYS[3], ARGV[4], ARGV[3])
    redis.call('XDEL', KEYS[3], ARGV[3])
  end
end
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder == ARGV[1] and ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'entry') == ARGV[3] then
  return {'ok', redis.call('HGET', KEYS[1], 'token')}
end
if holder then
  local pttl = redis.call('PTTL', KEYS[1])
  if pttl > 0 then
    return {'held', holder, tostring(pttl)}
  end
  redis.call('HSET', KEYS[1], 'again', '1')
  ack()
  return {'held', holder, '-1'}
end
local token = next_token(KEYS[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token, 'mode', 'r', 'entry', ARGV[3])
redis.call('SADD', KEYS[4], ARGV[2])
ack()
return {'ok', token}
"
    ))
});

/// Gives a replica-mode lease up if its token still holds it, removing the session from the replica's set, and
/// wakes the session again when asked to (a hand-back) or when a wake-up came while it was held.
///
/// KEYS: lease, wake-up shard, the replica's session set of the shard. ARGV: token, session, `1` to wake it
/// again. Returns `"released"`, `"requeued"` or `"lost"`.
pub(crate) static RELEASE_FOR_REPLICA: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then
  return 'lost'
end
local again = redis.call('HGET', KEYS[1], 'again')
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[3], ARGV[2])
if again or ARGV[3] == '1' then
  redis.call('XADD', KEYS[2], '*', 'session', ARGV[2])
  return 'requeued'
end
return 'released'
",
    )
});

/// Takes a session away from a reaped replica: if the replica still holds its lease, a new fencing token (which
/// fences every write of the old holder), the lease deleted and a fresh wake-up, so a live replica resumes it at
/// once. The session leaves the replica's set either way.
///
/// KEYS: lease, fence, wake-up shard, the reaped replica's session set of the shard. ARGV: reaped replica,
/// session. Returns 1 when the session was taken over, 0 when the replica no longer held it.
pub(crate) static RECLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NEXT_TOKEN}{}",
        r"
redis.call('SREM', KEYS[4], ARGV[2])
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1] then
  return 0
end
next_token(KEYS[2])
redis.call('DEL', KEYS[1])
redis.call('XADD', KEYS[3], '*', 'session', ARGV[2])
return 1
"
    ))
});

/// Hands a reaped consumer's pending wake-ups of one shard back to the pool (a fresh entry each, the old one
/// acknowledged), then deletes the consumer once it has none left.
///
/// KEYS: wake-up shard. ARGV: consumer group, consumer, most entries per call. Returns `{"done" | "more", entries
/// handed back}`.
pub(crate) static HANDBACK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'done', 0}
end
local pending = redis.pcall('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[3], ARGV[2])
if type(pending) ~= 'table' or pending.err then
  return {'done', 0}
end
for _, p in ipairs(pending) do
  local entry = redis.call('XRANGE', KEYS[1], p[1], p[1])
  if #entry == 1 then
    local fields = entry[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == 'session' then
        redis.call('XADD', KEYS[1], '*', 'session', fields[i + 1])
      end
    end
  end
  redis.call('XACK', KEYS[1], ARGV[1], p[1])
  redis.call('XDEL', KEYS[1], p[1])
end
if #pending < tonumber(ARGV[3]) then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
  return {'done', #pending}
end
return {'more', #pending}
",
    )
});
