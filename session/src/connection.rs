//! The shared connection to Redis: a [`ConnectionManager`] (one multiplexed connection that reconnects by itself)
//! that also sends a read-only command again, once, when it failed because the connection had dropped.
//!
//! Why: a `ConnectionManager` learns that its connection died (Redis restarted, or a proxy cut it) only from the
//! next command, which it fails while it reconnects in the background. Without the retry, the first request after a
//! Redis restart was a 503. A read is safe to send twice; a write is not (it may have run before the connection
//! dropped), so writes still fail and the caller decides (the gateway answers 503, which clients retry).

use redis::{
    Cmd, ErrorKind, Pipeline, RedisFuture, RedisResult, Value,
    aio::{ConnectionLike, ConnectionManager},
};

/// Commands that change nothing: the ones this library and its users send to read.
const READ_ONLY: &[&str] = &[
    "EXISTS",
    "GET",
    "HGET",
    "HGETALL",
    "HMGET",
    "HLEN",
    "INFO",
    "MGET",
    "PING",
    "PTTL",
    "SCAN",
    "SCARD",
    "SISMEMBER",
    "SMEMBERS",
    "TIME",
    "TTL",
    "TYPE",
    "XINFO",
    "XLEN",
    "XPENDING",
    "XRANGE",
    "XREVRANGE",
    "ZCARD",
    "ZCOUNT",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZREVRANGE",
    "ZSCORE",
];

/// The shared connection (see the module's documentation). Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Connection(ConnectionManager);

impl Connection {
    pub(crate) fn new(manager: ConnectionManager) -> Self {
        Self(manager)
    }
}

/// Whether `cmd` only reads (`XREAD` only without `BLOCK`, which would hold the shared connection).
fn read_only(cmd: &Cmd) -> bool {
    let mut args = cmd.args_iter().map(|a| match a {
        redis::Arg::Simple(bytes) => bytes,
        _ => b"".as_slice(),
    });
    let Some(name) = args.next() else {
        return false;
    };
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    READ_ONLY.contains(&name.as_str()) || (name == "XREAD" && !args.any(|a| a.eq_ignore_ascii_case(b"BLOCK")))
}

/// Whether the command failed because the connection had dropped (the manager is reconnecting).
fn dropped<T>(result: &RedisResult<T>) -> bool {
    result
        .as_ref()
        .is_err_and(|e| e.is_connection_dropped() || e.kind() == ErrorKind::Io)
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = self.0.send_packed_command(cmd).await;
            if dropped(&result) && read_only(cmd) {
                return self.0.send_packed_command(cmd).await;
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = self.0.send_packed_commands(pipeline, offset, count).await;
            if dropped(&result) && pipeline.cmd_iter().all(read_only) {
                return self.0.send_packed_commands(pipeline, offset, count).await;
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_are_sent_again() {
        assert!(read_only(redis::cmd("XRANGE").arg("k").arg("-").arg("+")));
        assert!(read_only(redis::cmd("xrevrange").arg("k")));
        assert!(read_only(redis::cmd("XREAD").arg("STREAMS").arg("k").arg("0")));
        assert!(!read_only(
            redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(10)
                .arg("STREAMS")
                .arg("k")
                .arg("0")
        ));
        assert!(!read_only(redis::cmd("XADD").arg("k").arg("*").arg("f").arg("v")));
        assert!(!read_only(redis::cmd("EVALSHA").arg("abc").arg(0)));
        assert!(!read_only(redis::cmd("SET").arg("k").arg("v")));
        assert!(!read_only(&redis::Cmd::new()));
    }
}
