//! Retry policy: exponential backoff with full jitter, per job kind.
//!
//! A policy of our own rather than the `backoff` crate (unmaintained,
//! RUSTSEC-2025-0012): we only need the delay for attempt N, because the wait
//! itself lives in Redis as a delayed task, never in a sleeping worker.

use std::time::Duration;

use rand::Rng;

/// How a job kind retries transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay ceiling before jitter for the first retry.
    pub base: Duration,
    /// No delay exceeds this, Retry-After included.
    pub cap: Duration,
}

impl RetryPolicy {
    /// The ceiling of the delay before attempt `attempt + 1` after attempt
    /// `attempt` failed: `min(cap, base * 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Full jitter: uniform in `[0, ceiling]`, which spreads a burst of
    /// failures (one revoked key, one outage) best. A provider's Retry-After
    /// raises the delay to at least what it asked for, within the cap.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jittered = Duration::from_micros(
            rand::rng().random_range(0..=u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX)),
        );
        jittered.max(retry_after.unwrap_or_default()).min(self.cap)
    }

    /// Whether another attempt is allowed after `attempt` failed.
    pub fn allows_retry_after(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 6,
        base: Duration::from_millis(100),
        cap: Duration::from_secs(2),
    };

    #[test]
    fn ceilings_double_until_the_cap() {
        let ceilings: Vec<u128> = (1..=6).map(|a| POLICY.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1600, 2000]);
    }

    #[test]
    fn delays_stay_within_the_jitter_bounds() {
        for attempt in 1..=6 {
            let ceiling = POLICY.ceiling(attempt);
            for _ in 0..200 {
                let d = POLICY.delay(attempt, None);
                assert!(d <= ceiling, "attempt {attempt}: {d:?}");
            }
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let distinct: std::collections::HashSet<Duration> =
            (0..50).map(|_| POLICY.delay(4, None)).collect();
        assert!(distinct.len() > 10, "{distinct:?}");
    }

    #[test]
    fn retry_after_raises_the_delay_but_not_past_the_cap() {
        assert_eq!(
            POLICY.delay(1, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
        assert_eq!(POLICY.delay(1, Some(Duration::from_secs(60))), POLICY.cap);
    }

    #[test]
    fn attempts_stop_at_the_budget() {
        assert!(POLICY.allows_retry_after(5));
        assert!(!POLICY.allows_retry_after(6));
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        assert_eq!(POLICY.ceiling(u32::MAX), POLICY.cap);
    }
}
