//! Retry and deferral policies: exponential backoff with full jitter, per
//! job kind, and how long a deferred job waits.
//!
//! A policy of our own rather than the `backoff` crate (unmaintained,
//! RUSTSEC-2025-0012): we only need the delay for attempt N, because the wait
//! itself lives in Redis as a delayed task, never in a sleeping worker.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;

use super::JobKind;

/// How long a deferred job (payment pending) waits before it looks again.
pub const DEFAULT_DEFER_DELAY: Duration = Duration::from_secs(600);
/// A job deferred for longer than this since its enqueue fails.
pub const DEFAULT_DEFER_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

/// The default retry policy of `kind`, and why:
/// - imports and tracking syncs run periodically, so a few quick retries
///   suffice and the next run catches up;
/// - status polls are cheap and also periodic;
/// - invoices (and their cancellations and payments) must get to the ERP
///   eventually, so they retry longest;
/// - a shop write-back is cheap and the shop may move on: fewer, shorter;
/// - a text that arrives hours late is worse than none, so SMS give up soonest.
pub fn default_policy(kind: JobKind) -> RetryPolicy {
    let (max_attempts, base, cap) = match kind {
        JobKind::ImportOrders | JobKind::FetchTracking => (5, 2, 120),
        JobKind::RefreshStatus => (6, 1, 300),
        JobKind::CreateInvoice | JobKind::CancelInvoice | JobKind::RecordPayment => (8, 2, 900),
        JobKind::WriteBack => (6, 2, 300),
        JobKind::SendSms => (5, 1, 120),
        JobKind::Noop => (3, 1, 10),
    };
    RetryPolicy {
        max_attempts,
        base: Duration::from_secs(base),
        cap: Duration::from_secs(cap),
    }
}

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

/// Retry and deferral settings for every kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    retry: HashMap<JobKind, RetryPolicy>,
    /// How long a deferred job waits before it looks again.
    pub defer_delay: Duration,
    /// A job deferred for longer than this since its enqueue fails.
    pub defer_max_age: Duration,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            retry: JobKind::ALL
                .into_iter()
                .map(|k| (k, default_policy(k)))
                .collect(),
            defer_delay: DEFAULT_DEFER_DELAY,
            defer_max_age: DEFAULT_DEFER_MAX_AGE,
        }
    }
}

impl Policies {
    /// The retry policy of `kind`.
    pub fn get(&self, kind: JobKind) -> RetryPolicy {
        self.retry
            .get(&kind)
            .copied()
            .unwrap_or_else(|| default_policy(kind))
    }

    /// Replace `kind`'s retry policy.
    pub fn set(&mut self, kind: JobKind, policy: RetryPolicy) {
        self.retry.insert(kind, policy);
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
