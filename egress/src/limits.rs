//! The proxy's limits, so that no sandbox can take it down for the others: open connections (in all, and per
//! sandbox), how long a client may take to send a request head, how long a connection may sit without a byte moving,
//! and how long connecting upstream may take.

use std::{
    collections::HashMap,
    net::IpAddr,
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
    /// Client connections open at once per source address (a sandbox pod's IP), counted before any request, so
    /// connections that never send one cannot crowd the others out either; one more is answered `429` and closed.
    pub max_connections_per_source: usize,
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
            max_connections_per_source: 512,
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Open connections per key (a sandbox, a source address), each up to a maximum.
#[derive(Clone)]
struct Counts {
    open: Arc<Mutex<HashMap<String, usize>>>,
    max: usize,
}

impl Counts {
    fn new(max: usize) -> Self {
        Self {
            open: Arc::default(),
            max,
        }
    }

    /// One more for `key`, `None` when it is at the maximum.
    fn take(&self, key: &str) -> Option<Slot> {
        let mut open = self.open.lock().ok()?;
        let count = open.entry(key.to_owned()).or_default();
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            key: key.to_owned(),
            counts: self.clone(),
        })
    }
}

/// One counted connection of a key; dropping it frees the place.
struct Slot {
    key: String,
    counts: Counts,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.counts.open.lock()
            && let Some(count) = open.get_mut(&self.key)
        {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Why a new client connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtCap {
    /// The proxy as a whole is at `max_connections`.
    Proxy,
    /// The client's address is at `max_connections_per_source`.
    Source,
}

/// Counts open connections against the limits.
pub struct Connections {
    global: Arc<Semaphore>,
    per_source: Counts,
    per_sandbox: Counts,
    metrics: Metrics,
}

impl Connections {
    /// A counter for `limits`, reporting the number of open connections to `metrics`.
    pub fn new(limits: &Limits, metrics: Metrics) -> Self {
        Self {
            global: Arc::new(Semaphore::new(limits.max_connections)),
            per_source: Counts::new(limits.max_connections_per_source),
            per_sandbox: Counts::new(limits.max_connections_per_sandbox),
            metrics,
        }
    }

    /// A slot for a new client connection from `source`, or why there is none.
    pub fn accept(&self, source: IpAddr) -> Result<Arc<Connection>, AtCap> {
        let permit = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| AtCap::Proxy)?;
        let source = self.per_source.take(&source.to_string()).ok_or(AtCap::Source)?;
        self.metrics.connection_opened();
        Ok(Arc::new(Connection {
            _permit: permit,
            _source: source,
            sandbox: Mutex::new(None),
            per_sandbox: self.per_sandbox.clone(),
            metrics: self.metrics.clone(),
        }))
    }
}

/// One open client connection; it counts until the last holder (the connection, or the tunnel it became) drops it.
pub struct Connection {
    _permit: OwnedSemaphorePermit,
    _source: Slot,
    sandbox: Mutex<Option<(String, Slot)>>,
    per_sandbox: Counts,
    metrics: Metrics,
}

impl Connection {
    /// Counts this connection against sandbox `who` (once); `false` when `who` is at its limit.
    pub fn bind(&self, who: &str) -> bool {
        let Ok(mut bound) = self.sandbox.lock() else {
            return false;
        };
        if bound.as_ref().is_some_and(|(w, _)| w == who) {
            return true;
        }
        let Some(slot) = self.per_sandbox.take(who) else {
            return false;
        };
        // A connection that changes identity stops counting for the first one.
        *bound = Some((who.to_owned(), slot));
        true
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.metrics.connection_closed();
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
            max_connections_per_source: 2,
            ..Limits::default()
        };
        let connections = Connections::new(&limits, Metrics::default());
        let (one, two): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let (a, b) = (connections.accept(one).unwrap(), connections.accept(one).unwrap());
        assert_eq!(
            connections.accept(one).err(),
            Some(AtCap::Source),
            "10.0.0.1 is at its limit"
        );
        let c = connections.accept(two).unwrap();
        assert_eq!(
            connections.accept(two).err(),
            Some(AtCap::Proxy),
            "the proxy is full"
        );
        assert!(
            a.bind("team/s1") && a.bind("team/s1"),
            "binding twice counts once"
        );
        assert!(b.bind("team/s1"));
        assert!(!c.bind("team/s1"), "s1 is at its limit");
        assert!(c.bind("team/s2"), "another sandbox is not");
        drop(a);
        assert!(connections.accept(one).is_ok(), "a slot is free again");
        let d = connections.accept(one).unwrap();
        assert!(d.bind("team/s1"), "s1 has one connection left");
    }
}
