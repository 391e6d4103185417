//! The sandbox daemon tokens the operator keeps ([`keys::Tenant::sandbox_token`]): listing them, and deleting one
//! whose pod is gone without racing the operator that reads it again for a pod made anew.

use std::{collections::BTreeSet, time::Duration};

use redis::aio::ConnectionLike;

use crate::{
    Error, Result,
    keys::{self, SANDBOX_TOKENS_PATTERN, Tenant, parse_sandbox_token, scripts},
};

/// The (namespace, pod) of every stored sandbox daemon token, in `namespace` or in every namespace (`SCAN`, so
/// Redis is never blocked for long).
pub async fn stored(
    conn: &mut impl ConnectionLike,
    namespace: Option<&str>,
) -> Result<BTreeSet<(String, String)>> {
    let pattern = match namespace {
        Some(ns) => Tenant::new(ns).sandbox_token("*"),
        None => SANDBOX_TOKENS_PATTERN.to_owned(),
    };
    let mut found = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, names): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await?;
        found.extend(
            names
                .iter()
                .filter_map(|k| parse_sandbox_token(k))
                .map(|(ns, pod)| (ns.to_owned(), pod.to_owned())),
        );
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

/// Deletes the token of pod `pod` in `namespace` when nobody has read or written it for `idle`, in one atomic step
/// ([`scripts::DELETE_IF_IDLE`]); returns whether it did. An error when Redis keeps no idle times (an LFU
/// `maxmemory-policy`).
pub async fn delete_if_idle(
    conn: &mut impl ConnectionLike,
    namespace: &str,
    pod: &str,
    idle: Duration,
) -> Result<bool> {
    let outcome: i64 = scripts::DELETE_IF_IDLE
        .key(keys::Tenant::new(namespace).sandbox_token(pod))
        .arg(idle.as_secs())
        .invoke_async(conn)
        .await?;
    match outcome {
        1 => Ok(true),
        -1 => Err(Error::Redis(redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "Redis keeps no idle time under an LFU maxmemory-policy",
        )))),
        _ => Ok(false),
    }
}
