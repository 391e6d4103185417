//! A bounded cache of sandbox daemon clients, keyed by session: at most [`CAPACITY`] entries (the least recently
//! used goes first), each trusted for [`TTL`] only. After that the session's status and token are read again, so a
//! pod IP reused by another sandbox never gets a token from a stale entry for long, and ended sessions leave no
//! entry behind.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The most sessions whose clients are kept.
pub const CAPACITY: usize = 4096;

/// How long a cached client is used before its endpoint and token are read again.
pub const TTL: Duration = Duration::from_secs(5 * 60);

/// A session's key: namespace and session name.
pub type Key = (String, String);

/// Entries by key, bounded in number and age.
#[derive(Debug)]
pub struct BoundedCache<V> {
    capacity: usize,
    ttl: Duration,
    entries: HashMap<Key, Entry<V>>,
}

#[derive(Debug)]
struct Entry<V> {
    value: V,
    inserted: Instant,
    used: Instant,
}

impl<V> Default for BoundedCache<V> {
    fn default() -> Self {
        Self::new(CAPACITY, TTL)
    }
}

impl<V> BoundedCache<V> {
    /// A cache of at most `capacity` entries, each valid for `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            ttl,
            entries: HashMap::new(),
        }
    }
}

impl<V: Clone> BoundedCache<V> {
    /// The entry of `key`, unless it is older than the TTL (then it is dropped).
    pub fn get(&mut self, key: &Key) -> Option<V> {
        let now = Instant::now();
        let entry = self.entries.get_mut(key)?;
        if now.duration_since(entry.inserted) > self.ttl {
            self.entries.remove(key);
            return None;
        }
        entry.used = now;
        Some(entry.value.clone())
    }

    /// Stores `value` under `key`, first dropping expired entries and, when full, the least recently used one.
    pub fn insert(&mut self, key: Key, value: V) {
        let now = Instant::now();
        if !self.entries.contains_key(&key) && self.entries.len() >= self.capacity {
            let ttl = self.ttl;
            self.entries.retain(|_, e| now.duration_since(e.inserted) <= ttl);
            if self.entries.len() >= self.capacity
                && let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            key,
            Entry {
                value,
                inserted: now,
                used: now,
            },
        );
    }

    /// Removes and returns the entry of `key` (expired or not).
    pub fn remove(&mut self, key: &Key) -> Option<V> {
        self.entries.remove(key).map(|e| e.value)
    }

    /// How many entries are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> Key {
        ("ns".to_owned(), format!("sesn_{i}"))
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity_and_drops_the_least_recently_used() {
        let mut cache = BoundedCache::new(3, Duration::from_secs(60));
        for i in 0..3 {
            cache.insert(key(i), i);
        }
        assert_eq!(cache.get(&key(0)), Some(0), "0 is used again");
        for i in 3..1000 {
            cache.insert(key(i), i);
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.get(&key(999)), Some(999));
        assert_eq!(cache.get(&key(1)), None);
    }

    #[test]
    fn an_entry_expires_after_the_ttl_and_can_be_removed() {
        let mut cache = BoundedCache::new(10, Duration::from_millis(20));
        cache.insert(key(1), "a");
        cache.insert(key(2), "b");
        assert_eq!(cache.get(&key(1)), Some("a"));
        assert_eq!(cache.remove(&key(2)), Some("b"));
        assert_eq!(cache.get(&key(2)), None);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(cache.get(&key(1)), None, "too old to trust");
        assert_eq!(cache.len(), 0);
    }
}
