//! Per-key rate limiting, so one tenant cannot starve another: a token bucket per API key
//! (`governor`'s GCRA), refilled at the configured rate with a burst of one second's worth. Past it
//! a request answers 429 `rate_limited` with `Retry-After`.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct RateLimit {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl RateLimit {
    /// `None` when `per_second` is 0 (no limit).
    pub fn per_second(per_second: u32) -> Option<RateLimit> {
        let rate = NonZeroU32::new(per_second)?;
        Some(RateLimit {
            limiter: RateLimiter::keyed(Quota::per_second(rate)),
            clock: DefaultClock::default(),
        })
    }

    /// Takes one request from the key's bucket, or says how long until one is free.
    pub fn check(&self, key_id: &str) -> Result<(), Duration> {
        match self.limiter.check_key(&key_id.to_string()) {
            Ok(()) => Ok(()),
            Err(not_until) => Err(not_until.wait_time_from(self.clock.now())),
        }
    }

    /// Forgets buckets that are full again, bounding memory to the recently active keys.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
    }
}
