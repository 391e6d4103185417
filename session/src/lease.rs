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
    /// How long it lasts without renewal.
    pub ttl: Duration,
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
