//! How many uploads one gateway streams at once: each holds up to three 8 MiB parts in memory, so a bound on
//! uploads is a bound on memory. One namespace may not take every slot.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// Upload slots: a total for the gateway and a share per namespace.
#[derive(Debug, Clone)]
pub struct UploadSlots {
    total: usize,
    per_namespace: usize,
    in_use: Arc<Mutex<HashMap<String, usize>>>,
}

/// Why no slot was free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The namespace has `per_namespace` uploads in progress.
    Namespace(usize),
    /// The gateway has `total` uploads in progress.
    Gateway(usize),
}

/// A slot held for one upload; dropping it frees the slot.
#[derive(Debug)]
pub struct UploadSlot {
    namespace: String,
    in_use: Arc<Mutex<HashMap<String, usize>>>,
}

impl UploadSlots {
    /// At most `total` uploads at once, `per_namespace` of them from one namespace.
    pub fn new(total: usize, per_namespace: usize) -> Self {
        Self {
            total,
            per_namespace,
            in_use: Arc::default(),
        }
    }

    /// A slot for an upload from `namespace`, unless the namespace's share or the gateway's total is taken.
    pub fn acquire(&self, namespace: &str) -> Result<UploadSlot, Busy> {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        if in_use.get(namespace).copied().unwrap_or(0) >= self.per_namespace {
            return Err(Busy::Namespace(self.per_namespace));
        }
        if in_use.values().sum::<usize>() >= self.total {
            return Err(Busy::Gateway(self.total));
        }
        *in_use.entry(namespace.to_owned()).or_default() += 1;
        Ok(UploadSlot {
            namespace: namespace.to_owned(),
            in_use: self.in_use.clone(),
        })
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut in_use = self.in_use.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = in_use.get_mut(&self.namespace) {
            *n -= 1;
            if *n == 0 {
                in_use.remove(&self.namespace);
            }
        }
    }
}

/// The slowest an upload may send: at least `bytes_per_second` on average over each `window` of time spent waiting
/// for the client (time spent waiting for object storage is not the client's and is not counted). The idle timeout
/// alone would let a client that sends a byte just before each timeout hold a slot for ever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinRate {
    /// Bytes per second; 0 turns the check off.
    pub bytes_per_second: u64,
    /// How long the average is taken over.
    pub window: Duration,
}

/// An upload's progress against its [`MinRate`].
#[derive(Debug)]
pub struct Pace {
    min: MinRate,
    waited: Duration,
    bytes: u64,
}

impl Pace {
    /// A new upload's.
    pub fn new(min: MinRate) -> Self {
        Self {
            min,
            waited: Duration::ZERO,
            bytes: 0,
        }
    }

    /// The rate it is held to.
    pub fn min(&self) -> MinRate {
        self.min
    }

    /// How much longer the client may be waited for before the current window closes (None: no check).
    pub fn window_left(&self) -> Option<Duration> {
        (self.min.bytes_per_second > 0).then(|| self.min.window.saturating_sub(self.waited))
    }

    /// Counts `waited` more time waiting for the client and the `bytes` it brought; false when that closed a
    /// window under the rate (a closed window that kept up starts the next one).
    pub fn record(&mut self, waited: Duration, bytes: u64) -> bool {
        if self.min.bytes_per_second == 0 {
            return true;
        }
        self.waited += waited;
        self.bytes += bytes;
        if self.waited < self.min.window {
            return true;
        }
        let needed = self.min.bytes_per_second as f64 * self.waited.as_secs_f64();
        let kept_up = self.bytes as f64 >= needed;
        self.waited = Duration::ZERO;
        self.bytes = 0;
        kept_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_must_keep_its_average_over_each_window() {
        let min = MinRate {
            bytes_per_second: 100,
            window: Duration::from_secs(30),
        };
        let mut pace = Pace::new(min);
        assert_eq!(pace.window_left(), Some(Duration::from_secs(30)));
        // A burst, then silence: the window's average is what counts.
        assert!(pace.record(Duration::from_secs(1), 3000));
        assert_eq!(pace.window_left(), Some(Duration::from_secs(29)));
        assert!(
            pace.record(Duration::from_secs(29), 0),
            "3000 bytes in 30 s is 100 B/s"
        );
        // The next window starts afresh: a byte now and then is too slow however regular.
        for _ in 0..29 {
            assert!(pace.record(Duration::from_secs(1), 10));
        }
        assert!(
            !pace.record(Duration::from_secs(1), 10),
            "300 bytes in 30 s is 10 B/s"
        );
        let mut off = Pace::new(MinRate {
            bytes_per_second: 0,
            ..min
        });
        assert_eq!(off.window_left(), None);
        assert!(off.record(Duration::from_secs(3600), 0));
    }

    #[test]
    fn a_namespace_gets_its_share_and_the_gateway_its_total_and_dropping_frees_a_slot() {
        let slots = UploadSlots::new(3, 2);
        let a1 = slots.acquire("a").unwrap();
        let _a2 = slots.acquire("a").unwrap();
        assert_eq!(slots.acquire("a").unwrap_err(), Busy::Namespace(2));
        let _b1 = slots.acquire("b").unwrap();
        assert_eq!(slots.acquire("c").unwrap_err(), Busy::Gateway(3));
        drop(a1);
        let _c1 = slots.acquire("c").expect("a freed slot is free again");
        assert_eq!(slots.acquire("b").unwrap_err(), Busy::Gateway(3));
    }
}
