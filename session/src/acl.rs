//! Redis ACL users per tenant: each namespace's harness connects as a user that reaches only the namespace's keys
//! and channels ([`keys::tenant_acl_keys`], [`keys::tenant_acl_channels`]) and may read the layout version, with
//! Redis's dangerous commands and every command that lists or reads key names across tenants removed.
//!
//! The operator creates the users with Corral's system user ([`ensure_tenant_user`]) and removes them with the
//! namespace's last Agent ([`delete_tenant_user`]); both persist the ACL to Redis's `aclfile` when it has one, so
//! the users survive a Redis restart.

use redis::aio::ConnectionLike;

use crate::{Error, Result, keys};

/// The Redis user of `namespace`'s harness: `tenant-<namespace>`.
pub fn tenant_user(namespace: &str) -> String {
    format!("tenant-{namespace}")
}

/// What `namespace`'s user may do, as `ACL SETUSER` rules after its password: its own keys and channels, read-only
/// access to the layout version, every command but the `@dangerous` ones (`KEYS`, `CONFIG`, `FLUSHALL`, `CLIENT
/// KILL`, `DEBUG`, `MONITOR`, …) and those that reveal or touch what is not its own: `SCAN` and `RANDOMKEY` (key
/// names of every tenant), `PUBSUB` (channel names of every tenant), `FUNCTION` (libraries shared by all) and
/// `SCRIPT FLUSH`. The harness needs `EVALSHA`/`SCRIPT LOAD`, the stream commands with `XREADGROUP` and
/// `XAUTOCLAIM`, `SPUBLISH` and plain reads and writes: all kept.
pub fn tenant_rules(namespace: &str) -> Vec<String> {
    vec![
        keys::tenant_acl_keys(namespace),
        keys::tenant_acl_channels(namespace),
        format!("%R~{}", keys::system::layout()),
        "+@all".into(),
        "-@dangerous".into(),
        "-scan".into(),
        "-randomkey".into(),
        "-pubsub".into(),
        "-function".into(),
        "-script|flush".into(),
    ]
}

/// Creates `namespace`'s user with `password`, or resets an existing one to exactly these rules and password.
/// Idempotent; connections already authenticated as the user stay open. Then saves the ACL file when Redis has one.
pub async fn ensure_tenant_user(
    conn: &mut impl ConnectionLike,
    namespace: &str,
    password: &str,
) -> Result<()> {
    let mut cmd = redis::cmd("ACL");
    cmd.arg("SETUSER")
        .arg(tenant_user(namespace))
        .arg("reset")
        .arg("on")
        .arg(format!(">{password}"))
        .arg(tenant_rules(namespace));
    let _: () = cmd.query_async(conn).await?;
    save(conn).await
}

/// Deletes `namespace`'s user (closing its connections). Idempotent.
pub async fn delete_tenant_user(conn: &mut impl ConnectionLike, namespace: &str) -> Result<()> {
    let _: i64 = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(tenant_user(namespace))
        .query_async(conn)
        .await?;
    save(conn).await
}

/// `ACL SAVE`, tolerating a Redis without an ACL file (its users then live until it restarts).
async fn save(conn: &mut impl ConnectionLike) -> Result<()> {
    match redis::cmd("ACL").arg("SAVE").query_async::<()>(conn).await {
        Ok(()) => Ok(()),
        Err(e) if e.to_string().contains("not configured to use an ACL file") => {
            tracing::debug!("Redis has no ACL file: tenant users are not persisted");
            Ok(())
        }
        Err(e) => Err(Error::from(e)),
    }
}

/// `url` with its user name and password replaced (scheme, host, port, database and TLS settings kept). The
/// password must be URL-safe (as Corral's generated ones are): it is not escaped.
pub fn with_credentials(url: &str, user: &str, password: &str) -> Result<String> {
    let invalid = || {
        Error::InvalidArgument("the Redis URL is not of the form redis[s]://[user[:password]@]host".into())
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    if !matches!(scheme, "redis" | "rediss") {
        return Err(invalid());
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() {
        return Err(invalid());
    }
    Ok(format!("{scheme}://{user}:{password}@{host}{tail}"))
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".into();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_replaced_and_the_rest_kept() {
        assert_eq!(
            with_credentials("redis://corral:sys@10.0.0.1:6379/0", "tenant-a", "pw").unwrap(),
            "redis://tenant-a:pw@10.0.0.1:6379/0"
        );
        assert_eq!(
            with_credentials("rediss://redis.example:6380", "tenant-a", "pw").unwrap(),
            "rediss://tenant-a:pw@redis.example:6380"
        );
        assert!(with_credentials("http://x", "u", "p").is_err());
        assert!(with_credentials("redis://u:p@/0", "u", "p").is_err());
    }

    #[test]
    fn redaction_hides_the_password_only() {
        assert_eq!(
            redact("redis://corral:s3cret@h:6379/0"),
            "redis://corral:***@h:6379/0"
        );
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
        assert!(!redact("rediss://:s3cret@h").contains("s3cret"));
    }

    #[test]
    fn a_tenants_rules_name_only_its_own_prefix() {
        let rules = tenant_rules("team-a");
        assert!(rules.contains(&"~corral:t:team-a:*".to_owned()));
        assert!(rules.contains(&"&corral:t:team-a:*".to_owned()));
        assert!(rules.iter().all(|r| !r.contains("team-b")));
        assert!(!rules.iter().any(|r| r == "~*" || r == "&*" || r == "allkeys"));
    }
}
