//! The single-writer lease of a session and its fencing token.

use std::time::Duration;

use crate::{Error, Result, SessionLog, keys};

/// A fencing token: increases every time the session's lease changes hands. Appends carry it, and Redis refuses
/// them once a newer token exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FencingToken(pub u64);

impl std::fmt::Display for FencingToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A held lease on one session's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Who holds it (unique per process: a pod name plus a random suffix).
    pub holder: String,
    /// The fencing token to append with.
    pub token: FencingToken,
    /// How long it lasts without renewal; zero for a replica-mode lease, which lasts as long as its replica lives
    /// (see [`crate::liveness`]).
    pub ttl: Duration,
}

/// What [`SessionLog::acquire_for_replica`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaAcquire {
    /// The lease is this replica's now, and the wake-up was acknowledged.
    Taken(Lease),
    /// A replica holds the session (this one included): it was marked to be woken again when its holder lets go,
    /// and the wake-up was acknowledged. Nothing more to do.
    Marked {
        /// The holding replica.
        holder: String,
    },
    /// An expiring lease (a local harness's, or one of a replica of an older release) holds the session; the
    /// wake-up stays pending: give it back once the lease may have expired.
    Expiring {
        /// The holder.
        holder: String,
        /// Time left on its lease.
        expires_in: Duration,
    },
    /// This replica was reaped (its `ACQUIRE` landed after the reap began): nothing was taken or acknowledged, and
    /// the replica must stop.
    Dead,
}

/// What [`SessionLog::release_for_replica`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaRelease {
    /// Released.
    Released,
    /// Released, and the session woken again (asked for, or a wake-up came while it was held).
    Requeued,
    /// The lease was no longer this token's (the replica was reaped and the session taken over).
    Lost,
}

impl SessionLog {
    /// Takes the session's lease for `holder` for `ttl`, or extends it if `holder` has it already. Fails with
    /// [`Error::LeaseHeld`] while another holder has it. A lease taken from nobody or from an expired holder gets a
    /// new fencing token, which fences every earlier writer.
    ///
    /// `holder` must be unique per process incarnation: a restarted process that reused its holder id would share
    /// its former self's token.
    pub async fn acquire_lease(&self, holder: &str, ttl: Duration) -> Result<Lease> {
        let ttl_ms = ttl_millis(ttl)?;
        if holder.is_empty() {
            return Err(Error::InvalidArgument("lease holder must not be empty".into()));
        }
        let mut invocation = keys::scripts::ACQUIRE.key(self.keys.lease());
        invocation.key(self.keys.fence()).arg(holder).arg(ttl_ms);
        let mut conn = self.store.connection();
        let reply: Vec<String> = self
            .store
            .run("acquire lease", invocation.invoke_async(&mut conn))
            .await?;
        match reply.as_slice() {
            [status, token] if status == "ok" => Ok(Lease {
                holder: holder.to_owned(),
                token: FencingToken(parse_token(token)?),
                ttl,
            }),
            [status, other, pttl] if status == "held" => Err(Error::LeaseHeld {
                holder: other.clone(),
                expires_in: Duration::from_millis(pttl.parse().unwrap_or(0)),
            }),
            _ => Err(unexpected(&reply)),
        }
    }

    /// Extends `lease` by its ttl. Fails with [`Error::LeaseLost`] when another holder took the session over:
    /// the caller must stop writing.
    pub async fn renew(&self, lease: &Lease) -> Result<()> {
        let mut invocation = keys::scripts::RENEW.key(self.keys.lease());
        invocation
            .key(self.keys.fence())
            .arg(&lease.holder)
            .arg(lease.token.0)
            .arg(ttl_millis(lease.ttl)?);
        let mut conn = self.store.connection();
        let reply: String = self
            .store
            .run("renew lease", invocation.invoke_async(&mut conn))
            .await?;
        match reply.as_str() {
            "ok" => Ok(()),
            _ => Err(Error::LeaseLost { token: lease.token.0 }),
        }
    }

    /// Gives `lease` up so another writer can take the session at once. Releasing a lease that was already lost
    /// is not an error.
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        let mut invocation = keys::scripts::RELEASE.key(self.keys.lease());
        invocation.arg(lease.token.0);
        let mut conn = self.store.connection();
        let _: i64 = self
            .store
            .run("release lease", invocation.invoke_async(&mut conn))
            .await?;
        Ok(())
    }
}

impl SessionLog {
    /// Takes the session's lease for harness replica `replica` (see [`crate::liveness`]): no expiry, no renewal;
    /// it lasts until released or until the replica is reaped. `wakeup` is the queue entry that brought the
    /// session (from this replica's [`crate::WakeConsumer`]), acknowledged in the same step unless the lease is
    /// held by an expiring lease.
    pub async fn acquire_for_replica(&self, replica: &str, wakeup: Option<&str>) -> Result<ReplicaAcquire> {
        if replica.is_empty() {
            return Err(Error::InvalidArgument("lease holder must not be empty".into()));
        }
        let mut invocation = keys::replica_scripts::ACQUIRE_FOR_REPLICA.key(self.keys.lease());
        invocation
            .key(self.keys.fence())
            .key(self.keys.wakeups())
            .key(self.keys.tenant().replica_sessions(replica, self.keys.shard()))
            .key(
                self.keys
                    .tenant()
                    .replica_reaped_in_shard(replica, self.keys.shard()),
            )
            .arg(replica)
            .arg(&self.session)
            .arg(wakeup.unwrap_or(""))
            .arg(keys::WAKEUP_GROUP);
        let mut conn = self.store.connection();
        let reply: Vec<String> = self
            .store
            .run("acquire lease", invocation.invoke_async(&mut conn))
            .await?;
        match reply.as_slice() {
            [status, token] if status == "ok" => Ok(ReplicaAcquire::Taken(Lease {
                holder: replica.to_owned(),
                token: FencingToken(parse_token(token)?),
                ttl: Duration::ZERO,
            })),
            [status] if status == "dead" => Ok(ReplicaAcquire::Dead),
            [status, holder, pttl] if status == "held" => match pttl.parse::<u64>() {
                Ok(ms) => Ok(ReplicaAcquire::Expiring {
                    holder: holder.clone(),
                    expires_in: Duration::from_millis(ms),
                }),
                Err(_) => Ok(ReplicaAcquire::Marked {
                    holder: holder.clone(),
                }),
            },
            _ => Err(unexpected(&reply)),
        }
    }

    /// Releases a lease of [`SessionLog::acquire_for_replica`]; with `requeue`, the session is woken again in the
    /// same step (a hand-back), as it is anyway when a wake-up came while it was held.
    pub async fn release_for_replica(&self, lease: &Lease, requeue: bool) -> Result<ReplicaRelease> {
        let mut invocation = keys::replica_scripts::RELEASE_FOR_REPLICA.key(self.keys.lease());
        invocation
            .key(self.keys.wakeups())
            .key(
                self.keys
                    .tenant()
                    .replica_sessions(&lease.holder, self.keys.shard()),
            )
            .arg(lease.token.0)
            .arg(&self.session)
            .arg(if requeue { "1" } else { "0" });
        let mut conn = self.store.connection();
        let reply: String = self
            .store
            .run("release lease", invocation.invoke_async(&mut conn))
            .await?;
        match reply.as_str() {
            "released" => Ok(ReplicaRelease::Released),
            "requeued" => Ok(ReplicaRelease::Requeued),
            "lost" => Ok(ReplicaRelease::Lost),
            _ => Err(unexpected(&[reply])),
        }
    }
}

fn ttl_millis(ttl: Duration) -> Result<u64> {
    match u64::try_from(ttl.as_millis()) {
        Ok(ms) if ms > 0 => Ok(ms),
        _ => Err(Error::InvalidArgument(format!(
            "lease ttl {ttl:?} must be at least 1ms"
        ))),
    }
}

fn parse_token(token: &str) -> Result<u64> {
    token.parse().map_err(|_| Error::Corrupt {
        cursor: String::new(),
        reason: format!("fencing token {token:?} is not a number"),
    })
}

fn unexpected(reply: &[String]) -> Error {
    Error::Corrupt {
        cursor: String::new(),
        reason: format!("unexpected lease reply {reply:?}"),
    }
}
