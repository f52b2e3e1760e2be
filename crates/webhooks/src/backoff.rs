//! When to try a failed delivery again.
//!
//! Goal: retry soon after a blip, back off from a receiver that is down, and keep trying for at
//! least 24 hours (SPEC section 8) without hammering anyone.
//! Method: a fixed schedule of about 5 s, 30 s, 2 min, 10 min and 1 h, then every 4 h, each
//! delay spread by ±10% random jitter so that many deliveries failing together do not retry
//! together. The schedule stops once its nominal total passes 26 h; even with every delay at
//! its shortest (-10%) the retries then span more than 24 h.

use std::time::Duration;

/// The first delays, in seconds; after them every delay is [`LATER_DELAY_SECS`].
const FIRST_DELAYS_SECS: [u64; 5] = [5, 30, 2 * 60, 10 * 60, 60 * 60];
const LATER_DELAY_SECS: u64 = 4 * 60 * 60;
/// The nominal total of the delays after which no retry is scheduled.
const GIVE_UP_AFTER_SECS: u64 = 26 * 60 * 60;
/// The jitter, in percent either way.
const JITTER_PERCENT: u64 = 10;

/// The number of attempts made at most (the first, and the retries): one more than the number
/// of delays it takes for the nominal schedule to pass 26 h (13).
pub const ATTEMPTS_MAX: u32 = attempts_max();

const fn attempts_max() -> u32 {
    let mut attempt = 1;
    let mut total = 0;
    while total < GIVE_UP_AFTER_SECS {
        total += nominal_secs(attempt);
        attempt += 1;
    }
    attempt
}

/// The nominal delay after failed attempt `attempt` (1-based), before jitter.
const fn nominal_secs(attempt: u32) -> u64 {
    let index = attempt.saturating_sub(1) as usize;
    if index < FIRST_DELAYS_SECS.len() {
        FIRST_DELAYS_SECS[index]
    } else {
        LATER_DELAY_SECS
    }
}

/// How long to wait after failed attempt `attempt` (1-based) before the next one, with jitter;
/// `None`: give up (attempt 0 is not an attempt).
pub fn retry_delay(attempt: u32) -> Option<Duration> {
    if attempt == 0 || attempt >= ATTEMPTS_MAX {
        return None;
    }
    let nominal_ms = nominal_secs(attempt) * 1000;
    let spread = nominal_ms * JITTER_PERCENT / 100;
    let low = nominal_ms - spread;
    Some(Duration::from_millis(rand::random_range(low..=nominal_ms + spread)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    #[test]
    fn attempts_max_is_13() {
        assert_eq!(ATTEMPTS_MAX, 13);
    }

    #[test]
    fn attempts_max_is_where_the_nominal_schedule_passes_26_hours() {
        let total = |upto: u32| (1..=upto).map(nominal_secs).sum::<u64>();
        assert!(total(ATTEMPTS_MAX - 1) >= GIVE_UP_AFTER_SECS);
        assert!(total(ATTEMPTS_MAX - 2) < GIVE_UP_AFTER_SECS);
        // Even with every delay at its shortest, the retries span at least 24 h.
        let shortest: u64 =
            (1..ATTEMPTS_MAX).map(|a| nominal_secs(a) * (100 - JITTER_PERCENT) / 100).sum();
        assert!(Duration::from_secs(shortest) >= DAY);
    }

    #[test]
    fn the_schedule_covers_a_day_and_starts_fast() {
        for _ in 0..200 {
            let delays: Vec<Duration> = (1..).map_while(retry_delay).collect();
            assert_eq!(delays.len(), ATTEMPTS_MAX as usize - 1);
            let total: Duration = delays.iter().sum();
            assert!(total >= DAY, "{total:?}");
            assert!(total <= Duration::from_secs(32 * 60 * 60), "{total:?}");
            assert!(delays[0] <= Duration::from_millis(5_500), "{:?}", delays[0]);
            assert!(delays[0] >= Duration::from_millis(4_500), "{:?}", delays[0]);
        }
    }

    #[test]
    fn delays_grow_then_stay_and_then_stop() {
        let expected = [5, 30, 120, 600, 3600, 14_400, 14_400];
        for (attempt, nominal) in (1..).zip(expected) {
            let delay = retry_delay(attempt).unwrap().as_secs_f64();
            let nominal = nominal as f64;
            assert!((nominal * 0.9..=nominal * 1.1).contains(&delay), "attempt {attempt}: {delay}");
        }
        assert_eq!(retry_delay(0), None);
        assert!(retry_delay(ATTEMPTS_MAX - 1).is_some());
        assert_eq!(retry_delay(ATTEMPTS_MAX), None);
        assert_eq!(retry_delay(u32::MAX), None);
    }
}
