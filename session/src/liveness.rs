//! Harness replica liveness: one beat per replica instead of one renewal per session.
//!
//! A replica registers under an id `<pod>-<epoch>` (16 random hex digits, never reused) and beats every
//! [`BEAT_EVERY`] ([`beat`], on a connection and thread of its own). Its session leases point at it and never
//! expire ([`crate::SessionLog::acquire_for_replica`]). A replica that has not beaten for [`STALE_AFTER`] is a
//! suspect, which every live replica's beat returns; the first to call [`Replicas::reap`] removes it from the
//! registry for good (its next beat answers [`Beat::Dead`]), takes each of its sessions over (a new fencing token,
//! so nothing the old holder still sends is appended, and a fresh wake-up) and hands its pending wake-ups back.
//!
//! Dead means reaped, not silent: a replica whose beats stop during a Redis outage is revived by its next beat as
//! long as nobody reaped it, and a live replica reaps others only after beating without a gap for a while
//! ([`REAP_AFTER_GOOD_BEATS`]), so the replicas of a Redis that comes back have time to beat again first. A
//! suspect is reaped only once the reaper saw its last beat unchanged for [`STALE_AFTER`] of its own monotonic
//! clock ([`SuspectWatch`]), so a forward step of the Redis clock, which makes every replica a suspect at once,
//! reaps nobody who keeps beating.
//!
//! A reap leaves tombstones ([`REAP_TOMBSTONE`]): one in the namespace's slot, so the reaped replica's beat
//! answers [`Beat::Dead`] while a replica that lost its registration with Redis's data ([`Beat::Unregistered`])
//! may register again, and one per wake-up shard, so an `ACQUIRE` of the reaped replica that lands late takes
//! nothing ([`crate::ReplicaAcquire::Dead`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;

use crate::{
    Error, Result, Store,
    keys::{Tenant, WAKEUP_GROUP, WAKEUP_SHARDS, replica_scripts as scripts},
};

/// How often a replica beats.
pub const BEAT_EVERY: Duration = Duration::from_millis(200);
/// How long a replica's liveness key lives after a beat.
pub const LIVENESS_TTL: Duration = Duration::from_millis(800);
/// How long after its last beat a replica may be reaped (by the Redis clock), and how long a reaper must have seen
/// that last beat unchanged (by its own clock, [`SuspectWatch`]).
pub const STALE_AFTER: Duration = Duration::from_millis(800);
/// How long after its last beat beats report a replica as a suspect: zero, so every beat reports the other
/// replicas' last beats (the oldest [`SUSPECTS_PER_BEAT`]) and a reaper's [`SuspectWatch`] starts its own clock on
/// a dead replica within one beat of its last one: it ripens 0.8–1 s after that last beat, as if the registry's
/// clock were trusted, yet no step of that clock ripens a replica that still beats.
pub const SUSPECT_AFTER: Duration = Duration::ZERO;
/// How long a replica stops working (no model call, no tool, no new lease) after its last successful beat: a
/// beat's liveness key outlives it by [`LIVENESS_TTL`] − this, so a replica has stopped before anyone may reap it.
pub const SELF_FENCE_AFTER: Duration = Duration::from_millis(600);
/// How long a replica beats without a gap before it reaps others.
pub const REAP_AFTER_GOOD_BEATS: Duration = Duration::from_secs(2);
/// How long a reaper's lock lasts; a reap left unfinished by a crashed reaper is taken over after it.
pub const REAP_LOCK: Duration = Duration::from_secs(5);
/// How long a reap's tombstones last. They must outlive every command the reaped replica sent before it was
/// reaped: such a command can only land while the TCP connection that carries it lives, and a connection whose
/// bytes go unacknowledged is given up by the kernel after at most about 15 minutes (Linux's default
/// `tcp_retries2` = 15, ≈ 924 s), so an hour leaves a wide margin. The cost is 17 small keys per reaped replica for
/// an hour. A replica stops on its own once it has not beaten for [`REREGISTER_WITHIN`], far less than this, so
/// one reaped long ago never takes a missing tombstone for lost data.
pub const REAP_TOMBSTONE: Duration = Duration::from_secs(3600);
/// How recent a replica's last good beat must be for it to register again when its registration vanished without a
/// reap (Redis lost its data); past it the replica stops instead, as if reaped.
pub const REREGISTER_WITHIN: Duration = Duration::from_secs(600);
/// How many suspects one beat returns at most (the replicas silent longest come first).
pub const SUSPECTS_PER_BEAT: usize = 16;
/// Sessions reclaimed per pipelined round trip.
const RECLAIM_BATCH: usize = 500;

/// A new replica id for pod `pod`: `<pod>-<16 random hex digits>`.
pub fn new_replica_id(pod: &str) -> String {
    // The 80 random bits of a ULID; the low 64 are plenty for ids that only one pod's restarts share.
    let random = ulid::Ulid::new().random() as u64;
    format!("{pod}-{random:016x}")
}

/// A replica that a beat reported as a candidate for reaping.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Suspect {
    /// The replica.
    pub replica: String,
    /// Its last beat as the registry held it (Unix ms, the Redis clock); `None` for a reap left unfinished.
    pub last_beat_ms: Option<u64>,
}

/// What a beat found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Beat {
    /// The replica is alive; these replicas are suspects to reap (through a [`SuspectWatch`]).
    Alive {
        /// Replicas silent past [`SUSPECT_AFTER`], and reaps left unfinished.
        suspects: Vec<Suspect>,
    },
    /// The replica was reaped: its leases are gone and it must not write again.
    Dead,
    /// The replica is not registered, yet nobody reaped it: Redis lost its data (a wipe, or a failover to a replica
    /// that had not received the registration). It may [`register`] again under the same id, unless its last good
    /// beat is older than [`REREGISTER_WITHIN`].
    Unregistered,
}

/// What one [`Replicas::reap`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reaped {
    /// Whether this call reaped the replica (false: it was alive, gone, or another reaper has it).
    pub reaped: bool,
    /// Sessions taken over from it.
    pub sessions: u64,
    /// Pending wake-ups handed back.
    pub handed_back: u64,
    /// The replica's last beat (Unix ms, the Redis clock), when it was still registered.
    pub last_beat_ms: Option<u64>,
    /// When the reap began (Unix ms, the Redis clock).
    pub began_ms: u64,
}

/// One namespace's replica registry.
#[derive(Clone, Debug)]
pub struct Replicas {
    store: Store,
    tenant: Tenant,
}

/// Registers `replica` of `namespace` again on `conn` (its epoch is the id's random tail), after a beat answered
/// [`Beat::Unregistered`]. Returns false, registering nothing, when it was reaped meanwhile: it must stop.
pub async fn register(conn: &mut impl ConnectionLike, namespace: &str, replica: &str) -> Result<bool> {
    check_id(replica)?;
    let now: i64 = register_call(namespace, replica).invoke_async(conn).await?;
    Ok(now >= 0)
}

fn register_call(namespace: &str, replica: &str) -> redis::ScriptInvocation<'static> {
    let tenant = Tenant::new(namespace);
    let mut invocation = scripts::REGISTER.key(tenant.replica(replica));
    invocation
        .key(tenant.replicas())
        .key(tenant.replica_reaped(replica))
        .arg(replica)
        .arg(epoch_of(replica))
        .arg(millis(LIVENESS_TTL));
    invocation
}

/// One beat of `replica` of `namespace` on `conn`.
pub async fn beat(conn: &mut impl ConnectionLike, namespace: &str, replica: &str) -> Result<Beat> {
    let tenant = Tenant::new(namespace);
    let mut invocation = scripts::BEAT.key(tenant.replica(replica));
    invocation
        .key(tenant.replicas())
        .key(tenant.reaping())
        .key(tenant.replica_reaped(replica))
        .arg(replica)
        .arg(epoch_of(replica))
        .arg(millis(LIVENESS_TTL))
        .arg(millis(SUSPECT_AFTER))
        .arg(SUSPECTS_PER_BEAT);
    let reply: Vec<String> = invocation.invoke_async(conn).await?;
    match reply.split_first() {
        Some((status, suspects)) if status == "ok" && suspects.len() % 2 == 0 => Ok(Beat::Alive {
            suspects: suspects
                .chunks_exact(2)
                .filter(|pair| pair[0] != replica)
                .map(|pair| Suspect {
                    replica: pair[0].clone(),
                    last_beat_ms: pair[1].parse::<f64>().ok().map(|ms| ms as u64),
                })
                .collect(),
        }),
        Some((status, _)) if status == "dead" => Ok(Beat::Dead),
        Some((status, _)) if status == "unregistered" => Ok(Beat::Unregistered),
        _ => Err(unexpected("beat", &reply)),
    }
}

/// Decides which suspects to reap: only one whose last beat this reaper saw unchanged for at least
/// [`STALE_AFTER`] of its own monotonic clock. The registry's scores are the Redis clock's, which may step forward
/// (an NTP correction, a failover to a host whose clock is ahead) and make every replica look silent at once; a
/// replica that is alive beats again within [`BEAT_EVERY`], changing its score, so it never ripens.
#[derive(Debug, Default)]
pub struct SuspectWatch {
    seen: HashMap<String, (Option<u64>, Instant)>,
}

impl SuspectWatch {
    /// Records the suspects of one beat, taken at `now`, and returns those ripe for [`Replicas::reap`]. Suspects
    /// missing from `suspects` are forgotten.
    pub fn observe(&mut self, suspects: Vec<Suspect>, now: Instant) -> Vec<Suspect> {
        let mut seen = HashMap::with_capacity(suspects.len());
        let mut ripe = Vec::new();
        for suspect in suspects {
            let since = match self.seen.remove(&suspect.replica) {
                Some((last, since)) if last == suspect.last_beat_ms => since,
                _ => now,
            };
            if now.saturating_duration_since(since) >= STALE_AFTER {
                ripe.push(suspect.clone());
            }
            seen.insert(suspect.replica, (suspect.last_beat_ms, since));
        }
        self.seen = seen;
        ripe
    }
}

impl Replicas {
    pub(crate) fn new(store: Store, namespace: &str) -> Self {
        Self {
            store,
            tenant: Tenant::new(namespace),
        }
    }

    /// Registers `replica` (on the shared connection).
    pub async fn register(&self, replica: &str) -> Result<()> {
        check_id(replica)?;
        let invocation = register_call(self.tenant.namespace(), replica);
        let mut conn = self.store.connection();
        let now: i64 = self
            .store
            .run("register replica", invocation.invoke_async(&mut conn))
            .await?;
        if now < 0 {
            return Err(Error::InvalidArgument(format!(
                "replica {replica} was reaped: a reaped replica id is never registered again"
            )));
        }
        Ok(())
    }

    /// Whether `replica` is registered (not reaped) and its liveness key is there.
    pub async fn is_live(&self, replica: &str) -> Result<bool> {
        let mut conn = self.store.connection();
        let mut pipe = redis::pipe();
        pipe.cmd("EXISTS")
            .arg(self.tenant.replica(replica))
            .cmd("ZSCORE")
            .arg(self.tenant.replicas())
            .arg(replica);
        let (exists, score): (bool, Option<f64>) = self
            .store
            .run("read replica liveness", async move {
                pipe.query_async(&mut conn).await
            })
            .await?;
        Ok(exists && score.is_some())
    }

    /// Reaps `suspect` if it is still stale and its last beat is still the one observed (see [`SuspectWatch`]):
    /// removes it from the registry, takes every session it holds over and hands its pending wake-ups back.
    /// Idempotent and safe to run from several replicas at once: one reaps, the others find it busy or gone; a
    /// reap cut short by a crash is finished by another replica after [`REAP_LOCK`].
    pub async fn reap(&self, suspect: &Suspect) -> Result<Reaped> {
        let observed = suspect.last_beat_ms.map(|ms| ms.to_string()).unwrap_or_default();
        self.reap_with(&suspect.replica, false, &observed).await
    }

    /// Reaps `replica` at once, alive or not: a replica reaping itself on shutdown, or the pod of a replica that
    /// was deleted.
    pub async fn reap_now(&self, replica: &str) -> Result<Reaped> {
        self.reap_with(replica, true, "").await
    }

    async fn reap_with(&self, replica: &str, force: bool, observed: &str) -> Result<Reaped> {
        check_id(replica)?;
        let mut conn = self.store.connection();
        let mut begin = scripts::REAP_BEGIN.key(self.tenant.replica(replica));
        begin
            .key(self.tenant.replicas())
            .key(self.tenant.reaping())
            .key(self.tenant.replica_reaped(replica))
            .arg(replica)
            .arg(millis(STALE_AFTER))
            .arg(millis(REAP_LOCK))
            .arg(if force { "1" } else { "0" })
            .arg(observed)
            .arg(millis(REAP_TOMBSTONE));
        let reply: Vec<String> = self
            .store
            .run("begin a reap", begin.invoke_async(&mut conn))
            .await?;
        let (last_beat_ms, began_ms) = match reply.as_slice() {
            [status, last, now] if status == "ok" => (
                last.parse::<f64>().ok().map(|v| v as u64),
                now.parse().unwrap_or(0),
            ),
            [status] if matches!(status.as_str(), "alive" | "busy" | "gone") => return Ok(Reaped::default()),
            _ => return Err(unexpected("begin a reap", &reply)),
        };
        let mut reaped = Reaped {
            reaped: true,
            last_beat_ms,
            began_ms,
            ..Reaped::default()
        };
        for shard in 0..WAKEUP_SHARDS {
            reaped.sessions += self.reclaim_shard(replica, shard).await?;
            reaped.handed_back += self.hand_back_shard(replica, shard).await?;
        }
        let mut end = scripts::REAP_END.key(self.tenant.reaping());
        end.arg(replica);
        let _: i64 = self.store.run("end a reap", end.invoke_async(&mut conn)).await?;
        Ok(reaped)
    }

    /// Takes over every session `replica` holds in `shard`, [`RECLAIM_BATCH`] per round trip, after writing its
    /// tombstone in the shard: from then on its `ACQUIRE`s there take nothing, so the set read next holds all its
    /// leases of the shard.
    async fn reclaim_shard(&self, replica: &str, shard: u16) -> Result<u64> {
        let set = self.tenant.replica_sessions(replica, shard);
        let mut conn = self.store.connection();
        let tombstone = redis::cmd("SET")
            .arg(self.tenant.replica_reaped_in_shard(replica, shard))
            .arg(1)
            .arg("PX")
            .arg(millis(REAP_TOMBSTONE))
            .to_owned();
        let _: () = self
            .store
            .run("write a reaped replica's tombstone", {
                let mut conn = conn.clone();
                async move { tombstone.query_async(&mut conn).await }
            })
            .await?;
        let mut taken = 0;
        let mut loaded = false;
        loop {
            let members: Vec<String> = self
                .store
                .run("read a reaped replica's sessions", {
                    let mut conn = conn.clone();
                    let cmd = redis::cmd("SRANDMEMBER").arg(&set).arg(RECLAIM_BATCH).to_owned();
                    async move { cmd.query_async(&mut conn).await }
                })
                .await?;
            if members.is_empty() {
                return Ok(taken);
            }
            if !loaded {
                let _: String = self
                    .store
                    .run(
                        "load the reclaim script",
                        scripts::RECLAIM.prepare_invoke().load_async(&mut conn),
                    )
                    .await?;
                loaded = true;
            }
            let mut pipe = redis::pipe();
            for session in &members {
                let keys = self.tenant.session(session);
                let mut invocation = scripts::RECLAIM.key(keys.lease());
                invocation
                    .key(keys.fence())
                    .key(keys.wakeups())
                    .key(&set)
                    .arg(replica)
                    .arg(session);
                pipe.invoke_script(&invocation);
            }
            let mut pipe_conn = conn.clone();
            let results: Vec<u64> = self
                .store
                .run("reclaim sessions", async move {
                    pipe.query_async(&mut pipe_conn).await
                })
                .await?;
            taken += results.iter().sum::<u64>();
        }
    }

    /// Takes session `session` over if a replica-mode lease holds it for a replica that is neither registered nor
    /// being reaped (a backstop for a lease that no reaper will find, whatever put it there). Returns the holder
    /// whose lease was taken over. Two round trips, three when it takes over: for the operator's sweeper, which
    /// asks only about sessions with an unanswered event and no wake-up.
    pub async fn reclaim_orphaned(&self, session: &str) -> Result<Option<String>> {
        let keys = crate::keys::SessionKeys::new(self.tenant.namespace(), session);
        let mut conn = self.store.connection();
        let read = redis::cmd("HMGET")
            .arg(keys.lease())
            .arg("holder")
            .arg("mode")
            .to_owned();
        let (holder, mode): (Option<String>, Option<String>) = self
            .store
            .run("read a session's lease", {
                let mut conn = conn.clone();
                async move { read.query_async(&mut conn).await }
            })
            .await?;
        let (Some(holder), Some("r")) = (holder, mode.as_deref()) else {
            return Ok(None);
        };
        if check_id(&holder).is_err() {
            return Ok(None);
        }
        let mut pipe = redis::pipe();
        pipe.cmd("ZSCORE")
            .arg(self.tenant.replicas())
            .arg(&holder)
            .cmd("ZSCORE")
            .arg(self.tenant.reaping())
            .arg(&holder);
        let (registered, reaping): (Option<f64>, Option<f64>) = self
            .store
            .run("read a lease holder's registration", {
                let mut conn = conn.clone();
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        if registered.is_some() || reaping.is_some() {
            return Ok(None);
        }
        let mut invocation = scripts::RECLAIM.key(keys.lease());
        invocation
            .key(keys.fence())
            .key(keys.wakeups())
            .key(self.tenant.replica_sessions(&holder, keys.shard()))
            .arg(&holder)
            .arg(session);
        let taken: u64 = self
            .store
            .run("reclaim an orphaned lease", invocation.invoke_async(&mut conn))
            .await?;
        Ok((taken == 1).then_some(holder))
    }

    /// Hands `replica`'s pending wake-ups of `shard` back and deletes it as a consumer.
    async fn hand_back_shard(&self, replica: &str, shard: u16) -> Result<u64> {
        let mut conn = self.store.connection();
        let mut total = 0;
        loop {
            let mut invocation = scripts::HANDBACK.key(self.tenant.wakeups(shard));
            invocation.arg(WAKEUP_GROUP).arg(replica).arg(RECLAIM_BATCH);
            let (status, count): (String, u64) = self
                .store
                .run(
                    "hand a reaped replica's wake-ups back",
                    invocation.invoke_async(&mut conn),
                )
                .await?;
            total += count;
            if status != "more" {
                return Ok(total);
            }
        }
    }
}

impl Store {
    /// The replica registry of `namespace`'s harness pool.
    pub fn replicas(&self, namespace: &str) -> Replicas {
        Replicas::new(self.clone(), namespace)
    }
}

fn check_id(replica: &str) -> Result<()> {
    if replica.is_empty() || replica.contains(['{', '}', ':']) {
        return Err(Error::InvalidArgument(format!("invalid replica id {replica:?}")));
    }
    Ok(())
}

/// The epoch part of a replica id (its random tail), kept in its liveness key.
fn epoch_of(replica: &str) -> &str {
    replica.rsplit_once('-').map_or(replica, |(_, epoch)| epoch)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unexpected(operation: &str, reply: &[String]) -> Error {
    Error::Corrupt {
        cursor: String::new(),
        reason: format!("unexpected reply to {operation}: {reply:?}"),
    }
}
