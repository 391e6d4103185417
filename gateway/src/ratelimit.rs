//! Per-key and per-tenant limits, so that one tenant's load leaves others their share: a token bucket of requests
//! per API key (`governor`), token buckets of request-body bytes per key and per tenant (namespace: a tenant with
//! many keys gets no more), a cap on each key's open event streams, and token buckets of the bytes all of a key's
//! (and a tenant's) event streams send together (their fan-out: streams × event bytes), which slow the streams
//! rather than refusing anything. A stream's send waits its turn in arrival order ([`Pacer`]), so a large event
//! is never overtaken for ever by smaller ones that fit the refilled bucket first.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError},
};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, MonotonicClock},
    state::keyed::DefaultKeyedStateStore,
};

/// A keyed token bucket on the kernel's monotonic clock. (Governor's default clock reads the TSC through `quanta`,
/// calibrated once at start; on a loaded virtual machine that calibration can be off enough to refuse a client far
/// below its rate, and each refusal's `retry-after` asked the CPU for its features, a trap in a VM.)
type Bucket = RateLimiter<
    String,
    DefaultKeyedStateStore<String>,
    MonotonicClock,
    governor::middleware::NoOpMiddleware<std::time::Instant>,
>;

/// A bucket of `quota` for every key.
fn keyed(quota: Quota) -> Arc<Bucket> {
    Arc::new(RateLimiter::new(
        quota,
        DefaultKeyedStateStore::default(),
        MonotonicClock,
    ))
}

/// The limiter shared by every request.
#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Option<Arc<Bucket>>,
    /// Request-body KiB per key.
    bytes: Option<Arc<Bucket>>,
    /// Bytes per key that the key's event streams send, all together.
    streamed: Option<Arc<Pacer>>,
    /// Request-body KiB per tenant (namespace), all its keys together.
    tenant_bytes: Option<Arc<Bucket>>,
    /// Bytes per tenant that all its event streams send together.
    tenant_streamed: Option<Arc<Pacer>>,
    /// The most event streams a key may hold open (0: no cap), and how many each key holds.
    max_streams: usize,
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

/// One open event stream of a key; dropping it frees its place.
#[derive(Debug)]
pub struct StreamSlot {
    key: String,
    streams: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = streams.get_mut(&self.key) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                streams.remove(&self.key);
            }
        }
    }
}

impl Limiter {
    /// `per_second` requests per second per key, with bursts of up to `burst`. A zero rate disables limiting. No
    /// byte or stream limits: see [`Limiter::with_bytes`] and [`Limiter::with_streams`].
    pub fn new(per_second: u32, burst: u32) -> Self {
        let inner = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            inner,
            bytes: None,
            streamed: None,
            tenant_bytes: None,
            tenant_streamed: None,
            max_streams: 0,
            streams: Arc::default(),
        }
    }

    /// Also limits each key to `per_second` bytes of request bodies per second, in bursts of up to `burst` bytes
    /// (counted in KiB; a zero rate disables it). The key's event streams together may then send
    /// [`FANOUT`] times as much: a key that follows its own events on a few streams never waits, one that fans
    /// large events out to many streams gets them more slowly instead of taking the gateway's CPU from others.
    pub fn with_bytes(mut self, per_second: u64, burst: u64) -> Self {
        self.bytes = byte_bucket(per_second, burst);
        self.streamed = Pacer::new(per_second.saturating_mul(FANOUT), burst.saturating_mul(FANOUT));
        self
    }

    /// Also limits each tenant (namespace), all its keys together, to `per_second` bytes of request bodies per
    /// second in bursts of up to `burst` (a zero rate disables it), and its event streams together to [`FANOUT`]
    /// times as much.
    pub fn with_tenant_bytes(mut self, per_second: u64, burst: u64) -> Self {
        self.tenant_bytes = byte_bucket(per_second, burst);
        self.tenant_streamed = Pacer::new(per_second.saturating_mul(FANOUT), burst.saturating_mul(FANOUT));
        self
    }

    /// Also caps each key's open event streams at `max` (0: no cap).
    pub fn with_streams(mut self, max: usize) -> Self {
        self.max_streams = max;
        self
    }

    /// Takes a token for `key`, or says how many whole seconds to wait (at least 1).
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let Some(limiter) = &self.inner else {
            return Ok(());
        };
        limiter.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(MonotonicClock.now());
            whole_seconds(wait)
        })
    }

    /// Takes `bytes` of `key`'s byte budget and of its tenant's, or says how many whole seconds to wait (at least
    /// 1). A body larger than the whole burst waits as long as the rate needs to pay for it, and is then let through
    /// once. (A body the key may send but its tenant may not has still spent the key's share: a tenant at its cap
    /// is refused either way.)
    pub fn check_bytes(&self, key: &str, tenant: &str, bytes: usize) -> Result<(), u64> {
        take(self.bytes.as_deref(), key, bytes)?;
        take(self.tenant_bytes.as_deref(), tenant, bytes)
    }

    /// Waits until `key`'s event streams, and its tenant's, may send `bytes` more (at once when there is no byte
    /// limit), in the order the sends asked. A message larger than the whole burst waits as long as the rate needs
    /// to pay for it.
    pub async fn stream_send(&self, key: &str, tenant: &str, bytes: usize) {
        if let Some(pacer) = &self.streamed {
            pacer.wait(key, bytes).await;
        }
        if let Some(pacer) = &self.tenant_streamed {
            // Dropped while waiting for the tenant's turn, the send gives the key's bytes back too.
            let mut key_paid = self.streamed.as_deref().map(|streamed| Pending {
                pacer: streamed,
                id: key,
                bytes,
                sent: false,
            });
            pacer.wait(tenant, bytes).await;
            if let Some(paid) = key_paid.as_mut() {
                paid.sent = true;
            }
        }
    }

    /// A place for one more open event stream of `key`, or `None` when it holds the most it may (the cap).
    pub fn open_stream(&self, key: &str) -> Result<StreamSlot, usize> {
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let open = streams.entry(key.to_owned()).or_default();
        if self.max_streams > 0 && *open >= self.max_streams {
            return Err(self.max_streams);
        }
        *open += 1;
        Ok(StreamSlot {
            key: key.to_owned(),
            streams: self.streams.clone(),
        })
    }

    /// Forgets keys whose buckets are full again (call periodically to bound memory).
    pub fn shrink(&self) {
        let all = [&self.inner, &self.bytes, &self.tenant_bytes];
        for limiter in all.into_iter().flatten() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for pacer in [&self.streamed, &self.tenant_streamed].into_iter().flatten() {
            pacer.forget_idle();
        }
    }
}

/// How long the gateway waits before it answers a 429 for a key's request rate or byte budget.
pub const REFUSAL_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

/// Waits [`REFUSAL_DELAY`] before a refusal is answered, so that a client repeating refused requests at once on a
/// few connections sends a few a second instead of thousands (each a new connection, since the gateway closes one
/// whose body it did not read); a sleeping request costs the gateway nothing. A client that honours `retry-after`
/// (at least 1 s) waits longer than this anyway.
pub async fn slow_down() {
    tokio::time::sleep(REFUSAL_DELAY).await;
}

/// How many times its request-body byte budget a key's event streams may send together.
pub const FANOUT: u64 = 8;

/// A bucket of `per_second` bytes (counted in KiB) with bursts of `burst`; `None` for a zero rate.
fn byte_bucket(per_second: u64, burst: u64) -> Option<Arc<Bucket>> {
    let kib = |b: u64| NonZeroU32::new(u32::try_from(b.div_ceil(1024)).unwrap_or(u32::MAX));
    kib(per_second).map(|rate| {
        let burst = kib(burst).unwrap_or(rate).max(rate);
        keyed(Quota::per_second(rate).allow_burst(burst))
    })
}

/// Takes `bytes` from `id`'s bucket, or says how many whole seconds to wait. More than the whole burst is charged
/// the burst: it passes only with a full bucket.
fn take(limiter: Option<&Bucket>, id: &str, bytes: usize) -> Result<(), u64> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    let Some(cost) = NonZeroU32::new(u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX)) else {
        return Ok(());
    };
    let id = id.to_owned();
    let cost = match limiter.check_key_n(&id, cost) {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(not_until)) => {
            return Err(whole_seconds(not_until.wait_time_from(MonotonicClock.now())));
        }
        Err(governor::InsufficientCapacity(burst)) => NonZeroU32::new(burst).unwrap_or(cost),
    };
    match limiter.check_key_n(&id, cost) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(not_until)) => Err(whole_seconds(not_until.wait_time_from(MonotonicClock.now()))),
        Err(_) => Err(1),
    }
}

/// A token bucket of bytes per id whose waiters are served in the order they asked (a GCRA that charges each
/// send when it asks and lets it go once the bucket would have held it): a large send reserves its place, and the
/// small ones asking after it wait behind it instead of taking every token the bucket refills.
#[derive(Debug)]
struct Pacer {
    /// Bytes refilled a second.
    per_second: u64,
    /// How long a full bucket takes to refill (the burst).
    burst: std::time::Duration,
    /// Per id: when the bucket would be full again with everything reserved so far paid for.
    full_at: Mutex<HashMap<String, std::time::Instant>>,
}

impl Pacer {
    /// `per_second` bytes a second in bursts of up to `burst` (at least one second's worth); `None` for a zero rate.
    fn new(per_second: u64, burst: u64) -> Option<Arc<Self>> {
        if per_second == 0 {
            return None;
        }
        Some(Arc::new(Self {
            per_second,
            burst: refill_time(burst.max(per_second), per_second),
            full_at: Mutex::default(),
        }))
    }

    /// How long `bytes` take to refill.
    fn cost(&self, bytes: usize) -> std::time::Duration {
        refill_time(u64::try_from(bytes).unwrap_or(u64::MAX), self.per_second)
    }

    /// Reserves `bytes` of `id`'s bucket now and answers when they may go.
    fn reserve(&self, id: &str, bytes: usize) -> std::time::Instant {
        let now = std::time::Instant::now();
        let cost = self.cost(bytes);
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        let at = full_at.entry(id.to_owned()).or_insert(now);
        *at = (*at).max(now) + cost;
        at.checked_sub(self.burst).map_or(now, |go| go.max(now))
    }

    /// Gives back `bytes` reserved for a send that will not happen, so later sends of `id` need not pay for it.
    fn refund(&self, id: &str, bytes: usize) {
        let now = std::time::Instant::now();
        let cost = self.cost(bytes);
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = full_at.get_mut(id) {
            *at = at.checked_sub(cost).map_or(now, |back| back.max(now));
        }
    }

    /// Waits until `id`'s bucket may send `bytes`, after every send that asked before. Dropped before its turn (the
    /// stream went away), the send gives its bytes back.
    async fn wait(&self, id: &str, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let go = self.reserve(id, bytes);
        let mut pending = Pending {
            pacer: self,
            id,
            bytes,
            sent: false,
        };
        tokio::time::sleep_until(go.into()).await;
        pending.sent = true;
    }

    /// Forgets ids whose buckets are full again.
    fn forget_idle(&self) {
        let now = std::time::Instant::now();
        let mut full_at = self.full_at.lock().unwrap_or_else(PoisonError::into_inner);
        full_at.retain(|_, at| *at > now);
        full_at.shrink_to_fit();
    }
}

/// How long `bytes` take to refill at `per_second`, exact to the nanosecond at any rate (a per-byte duration would
/// round to zero past 1 GB/s).
fn refill_time(bytes: u64, per_second: u64) -> std::time::Duration {
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(per_second.max(1));
    std::time::Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// A reservation waiting for its turn; refunded when dropped unsent.
struct Pending<'a> {
    pacer: &'a Pacer,
    id: &'a str,
    bytes: usize,
    sent: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.sent {
            self.pacer.refund(self.id, self.bytes);
        }
    }
}

fn whole_seconds(wait: std::time::Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.as_secs() == 0))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_key_over_its_burst_must_wait_and_keys_are_independent() {
        let limiter = Limiter::new(1, 3);
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").unwrap_err();
        assert!(wait >= 1, "{wait}");
        assert!(limiter.check("b").is_ok());
    }

    #[test]
    fn zero_disables_the_limit() {
        let limiter = Limiter::new(0, 0).with_bytes(0, 0).with_tenant_bytes(0, 0);
        for _ in 0..1000 {
            assert!(limiter.check("a").is_ok());
            assert!(limiter.check_bytes("a", "t", 1 << 20).is_ok());
            std::mem::forget(limiter.open_stream("a").expect("no stream cap"));
        }
    }

    #[test]
    fn a_key_over_its_byte_budget_must_wait_and_keys_are_independent() {
        let limiter = Limiter::new(0, 0).with_bytes(1 << 20, 4 << 20);
        for _ in 0..4 {
            assert!(limiter.check_bytes("a", "t", 1 << 20).is_ok());
        }
        assert!(limiter.check_bytes("a", "t", 1 << 20).unwrap_err() >= 1);
        assert!(limiter.check_bytes("b", "t", 100).is_ok());
        // Larger than the burst: charged the whole burst, so it passes only with a full bucket.
        assert!(limiter.check_bytes("c", "t", 8 << 20).is_ok());
        assert!(limiter.check_bytes("c", "t", 1024).is_err());
    }

    #[tokio::test]
    async fn a_key_fanning_out_past_its_stream_budget_waits_and_keys_are_independent() {
        // 1 MiB/s of bodies: 8 MiB/s (bursts of 16 MiB) over the key's streams.
        let limiter = Limiter::new(0, 0).with_bytes(1 << 20, 2 << 20);
        let started = std::time::Instant::now();
        for _ in 0..16 {
            limiter.stream_send("a", "t", 1 << 20).await;
        }
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "the burst passes at once"
        );
        let started = std::time::Instant::now();
        limiter.stream_send("a", "t", 2 << 20).await;
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
        let started = std::time::Instant::now();
        limiter.stream_send("b", "t", 4 << 20).await;
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "another key has its own budget"
        );
        // No byte limit: nothing waits.
        let open = Limiter::new(0, 0);
        open.stream_send("a", "t", usize::MAX).await;
    }

    #[tokio::test]
    async fn a_large_stream_send_is_not_overtaken_for_ever_by_small_ones() {
        // 128 KiB/s of bodies: 1 MiB/s (bursts of 1 MiB) over the key's streams, spent at once.
        let limiter = Limiter::new(0, 0).with_bytes(128 << 10, 128 << 10);
        limiter.stream_send("a", "t", 1 << 20).await;
        let large = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                limiter.stream_send("a", "t", 1 << 20).await;
                started.elapsed()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Small sends asking all the time after it, each fitting what the bucket refills meanwhile.
        let small = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                loop {
                    limiter.stream_send("a", "t", 8 << 10).await;
                }
            })
        };
        let waited = tokio::time::timeout(Duration::from_secs(3), large)
            .await
            .expect("the large send goes in its turn")
            .unwrap();
        small.abort();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_millis(1500),
            "it waits for its own bytes, about a second: {waited:?}"
        );
    }

    #[test]
    fn refill_times_are_exact_at_any_rate() {
        assert_eq!(refill_time(1, 1 << 30).as_nanos(), 0, "under a nanosecond");
        assert_eq!(refill_time(4 << 30, 1 << 30), Duration::from_secs(4));
        assert_eq!(refill_time(3, 1_000_000_000 / 3), Duration::from_nanos(9));
        let pacer = Pacer::new(8 << 30, 8 << 30).unwrap();
        assert_eq!(pacer.cost(8 << 30), Duration::from_secs(1), "8 GiB/s still paces");
    }

    #[tokio::test]
    async fn a_send_dropped_before_its_tenants_turn_gives_the_keys_bytes_back_too() {
        // The key may send 1 MiB/s; the tenant too, and the tenant's budget is spent by another key.
        let limiter = Limiter::new(0, 0).with_bytes(128 << 10, 128 << 10);
        let limiter = limiter.with_tenant_bytes(128 << 10, 128 << 10);
        limiter.stream_send("other", "t", 1 << 20).await;
        let gone =
            tokio::time::timeout(Duration::from_millis(50), limiter.stream_send("a", "t", 1 << 20)).await;
        assert!(gone.is_err(), "it waited for the tenant");
        let key = limiter.streamed.as_ref().unwrap();
        let started = std::time::Instant::now();
        key.wait("a", 1 << 20).await;
        assert!(
            started.elapsed() < Duration::from_millis(300),
            "the key's bytes came back: {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_send_dropped_before_its_turn_gives_its_bytes_back() {
        // 1 MiB/s over the key's streams, bursts of 1 MiB, spent at once.
        let limiter = Limiter::new(0, 0).with_bytes(128 << 10, 128 << 10);
        limiter.stream_send("a", "t", 1 << 20).await;
        // A stream asks for 4 MiB and goes away before its turn.
        let gone =
            tokio::time::timeout(Duration::from_millis(50), limiter.stream_send("a", "t", 4 << 20)).await;
        assert!(gone.is_err(), "it had to wait");
        let started = std::time::Instant::now();
        limiter.stream_send("a", "t", 64 << 10).await;
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "the next send pays only for what was sent: {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn idle_stream_budgets_are_forgotten() {
        let limiter = Limiter::new(0, 0).with_bytes(1 << 20, 1 << 20);
        let pacer = limiter.streamed.clone().unwrap();
        pacer.reserve("a", 1024);
        std::thread::sleep(Duration::from_millis(5));
        limiter.shrink();
        assert!(pacer.full_at.lock().unwrap().is_empty());
    }

    #[test]
    fn a_tenant_over_its_byte_budget_must_wait_whatever_key_it_uses() {
        let limiter = Limiter::new(0, 0)
            .with_bytes(1 << 20, 4 << 20)
            .with_tenant_bytes(1 << 20, 6 << 20);
        for _ in 0..4 {
            assert!(limiter.check_bytes("a1", "t", 1 << 20).is_ok());
        }
        for _ in 0..2 {
            assert!(limiter.check_bytes("a2", "t", 1 << 20).is_ok());
        }
        assert!(
            limiter.check_bytes("a3", "t", 1 << 20).unwrap_err() >= 1,
            "a new key of the same tenant"
        );
        assert!(
            limiter.check_bytes("b1", "u", 1 << 20).is_ok(),
            "another tenant has its own budget"
        );
    }

    #[tokio::test]
    async fn a_tenant_fanning_out_past_its_budget_waits_whatever_key_it_uses() {
        // 1 MiB/s per tenant: 8 MiB/s (bursts of 8 MiB) over its streams.
        let limiter = Limiter::new(0, 0).with_tenant_bytes(1 << 20, 1 << 20);
        limiter.stream_send("a1", "t", 8 << 20).await;
        let started = std::time::Instant::now();
        limiter.stream_send("a2", "t", 2 << 20).await;
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "{:?}",
            started.elapsed()
        );
        let started = std::time::Instant::now();
        limiter.stream_send("b1", "u", 4 << 20).await;
        assert!(started.elapsed() < Duration::from_millis(100));
    }

    #[test]
    fn a_key_holds_at_most_its_cap_of_streams() {
        let limiter = Limiter::new(0, 0).with_streams(2);
        let first = limiter.open_stream("a").unwrap();
        let _second = limiter.open_stream("a").unwrap();
        assert_eq!(limiter.open_stream("a").unwrap_err(), 2);
        assert!(limiter.open_stream("b").is_ok());
        drop(first);
        assert!(
            limiter.open_stream("a").is_ok(),
            "a closed stream frees its place"
        );
    }
}
