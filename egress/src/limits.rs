//! The proxy's limits, so that no sandbox can take it down for the others: open connections (in all, and per
//! sandbox), how long a client may take to send a request head, how long a connection may sit without a byte moving,
//! and how long connecting upstream may take.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// The limits (see docs/trust.md for the defaults and the chart values that set them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Client connections open at once, all sandboxes together; one more is answered `503` and closed.
    pub max_connections: usize,
    /// Client connections (and the tunnels they became) open at once per sandbox; one more request from it is
    /// answered `429`.
    pub max_connections_per_sandbox: usize,
    /// How long a client may take to send a request head, and how long an idle kept-alive connection stays open;
    /// then it is answered `408` and closed.
    pub header_read_timeout: Duration,
    /// How long a tunnel or a forwarded exchange may go without a byte in either direction; then it is closed
    /// (`504` when no response has started).
    pub idle_timeout: Duration,
    /// How long resolving and connecting to the destination may take; then the request is answered `504`.
    pub connect_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_sandbox: 256,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Counts open connections against the limits.
pub struct Connections {
    global: Arc<Semaphore>,
    per_sandbox: Arc<Mutex<HashMap<String, usize>>>,
    max_per_sandbox: usize,
    metrics: Metrics,
}

impl Connections {
    /// A counter for `limits`, reporting the number of open connections to `metrics`.
    pub fn new(limits: &Limits, metrics: Metrics) -> Self {
        Self {
            global: Arc::new(Semaphore::new(limits.max_connections)),
            per_sandbox: Arc::default(),
            max_per_sandbox: limits.max_connections_per_sandbox,
            metrics,
        }
    }

    /// A slot for a new client connection, `None` when the proxy is full.
    pub fn accept(&self) -> Option<Arc<Connection>> {
        let permit = self.global.clone().try_acquire_owned().ok()?;
        self.metrics.connection_opened();
        Some(Arc::new(Connection {
            _permit: permit,
            sandbox: Mutex::new(None),
            per_sandbox: self.per_sandbox.clone(),
            max_per_sandbox: self.max_per_sandbox,
            metrics: self.metrics.clone(),
        }))
    }
}

/// One open client connection; it counts until the last holder (the connection, or the tunnel it became) drops it.
pub struct Connection {
    _permit: OwnedSemaphorePermit,
    sandbox: Mutex<Option<SandboxSlot>>,
    per_sandbox: Arc<Mutex<HashMap<String, usize>>>,
    max_per_sandbox: usize,
    metrics: Metrics,
}

impl Connection {
    /// Counts this connection against sandbox `who` (once); `false` when `who` is at its limit.
    pub fn bind(&self, who: &str) -> bool {
        let Ok(mut bound) = self.sandbox.lock() else {
            return false;
        };
        if bound.as_ref().is_some_and(|s| s.who == who) {
            return true;
        }
        let Ok(mut counts) = self.per_sandbox.lock() else {
            return false;
        };
        let count = counts.entry(who.to_owned()).or_default();
        if *count >= self.max_per_sandbox {
            return false;
        }
        *count += 1;
        drop(counts);
        // A connection that changes identity stops counting for the first one.
        *bound = Some(SandboxSlot {
            who: who.to_owned(),
            counts: self.per_sandbox.clone(),
        });
        true
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

struct SandboxSlot {
    who: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for SandboxSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock()
            && let Some(count) = counts.get_mut(&self.who)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.who);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_count_in_all_and_per_sandbox_until_dropped() {
        let limits = Limits {
            max_connections: 3,
            max_connections_per_sandbox: 2,
            ..Limits::default()
        };
        let connections = Connections::new(&limits, Metrics::default());
        let (a, b, c) = (
            connections.accept().unwrap(),
            connections.accept().unwrap(),
            connections.accept().unwrap(),
        );
        assert!(connections.accept().is_none(), "the proxy is full");
        assert!(
            a.bind("team/s1") && a.bind("team/s1"),
            "binding twice counts once"
        );
        assert!(b.bind("team/s1"));
        assert!(!c.bind("team/s1"), "s1 is at its limit");
        assert!(c.bind("team/s2"), "another sandbox is not");
        drop(a);
        assert!(connections.accept().is_some(), "a slot is free again");
        let d = connections.accept().unwrap();
        assert!(d.bind("team/s1"), "s1 has one connection left");
    }
}
