//! Per-key rate limits: a token bucket per API key (`governor`), refilled at a steady rate with a burst allowance.

use std::{num::NonZeroU32, sync::Arc};

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};

/// The limiter shared by every request.
#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Option<Arc<DefaultKeyedRateLimiter<String>>>,
}

impl Limiter {
    /// `per_second` requests per second per key, with bursts of up to `burst`. A zero rate disables limiting.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let inner = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)))
        });
        Self { inner }
    }

    /// Takes a token for `key`, or says how many whole seconds to wait (at least 1).
    pub fn check(&self, key: &str) -> Result<(), u64> {
        let Some(limiter) = &self.inner else {
            return Ok(());
        };
        limiter.check_key(&key.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.as_secs() == 0))
        })
    }

    /// Forgets keys whose buckets are full again (call periodically to bound memory).
    pub fn shrink(&self) {
        if let Some(limiter) = &self.inner {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
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
        let limiter = Limiter::new(0, 0);
        for _ in 0..1000 {
            assert!(limiter.check("a").is_ok());
        }
    }
}
