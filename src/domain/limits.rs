//! Per-account request limits: how fast, how bursty and how concurrent one
//! provider credential may be used, by every worker process together
//! (enforced in Redis by `crate::queue::ratelimit`), and how the limit backs
//! off when the provider says "slow down".
//!
//! Configured per account under `[limits.<role>.<account>]`, where the role
//! is `courier` (a courier account's name), `shop` (a store code: each store
//! has its own shop credential), `erp` or `sms` (their configured names).
//! An account without a table has no rate or in-flight limit, and the
//! default circuit breaker ([`BreakerSettings::DEFAULT`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::Provider;

/// One account's limits as written in the file. Signed and floating types,
/// so a negative or zero value reaches [`LimitsFile::validate`] and is
/// refused with the account's name rather than as a bare type error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Sustained requests per second (may be fractional: 0.5 is one every
    /// 2 s); default: no rate limit.
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Requests allowed at once above the sustained rate; default: one
    /// second's worth (`rate_per_s`, at least 1).
    #[serde(default)]
    pub burst: Option<i64>,
    /// At most this many requests in flight at once, across processes;
    /// default: unlimited.
    #[serde(default)]
    pub max_in_flight: Option<i64>,
    /// Consecutive transient failures (timeouts, connection errors, 5xx)
    /// that open the account's breaker; default 10.
    #[serde(default)]
    pub breaker_failures: Option<i64>,
    /// How long an open breaker parks the account's jobs before one probe
    /// tests it, in seconds; default 30.
    #[serde(default)]
    pub breaker_open_secs: Option<f64>,
}

/// The `[limits]` table: role -> account name -> limits.
pub type LimitsFile = BTreeMap<String, BTreeMap<String, LimitConfig>>;

/// One account's validated limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccountLimit {
    /// Sustained requests per second (> 0), if limited.
    pub rate_per_s: Option<f64>,
    /// Burst (>= 1).
    pub burst: u32,
    /// In-flight cap (>= 1), if any.
    pub max_in_flight: Option<u32>,
    /// The account's circuit breaker.
    pub breaker: BreakerSettings,
}

impl AccountLimit {
    /// No rate or in-flight limit, the default breaker.
    pub const UNLIMITED: AccountLimit = AccountLimit {
        rate_per_s: None,
        burst: 1,
        max_in_flight: None,
        breaker: BreakerSettings::DEFAULT,
    };

    /// The spacing of requests at the sustained rate.
    pub fn interval(&self) -> Option<Duration> {
        self.rate_per_s.map(|r| Duration::from_secs_f64(1.0 / r))
    }
}

/// When an account's circuit breaker opens, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive transient failures that open it.
    pub failures: u32,
    /// How long it stays open before one probe request tests the account.
    pub open_for: Duration,
}

impl BreakerSettings {
    /// Ten failures in a row open it for 30 seconds: a provider failing one
    /// request in ten at random gets there once in 10^10 requests, an
    /// outage within its first ten.
    pub const DEFAULT: BreakerSettings = BreakerSettings {
        failures: 10,
        open_for: Duration::from_secs(30),
    };
    /// Longest open period accepted: longer, and a recovered provider
    /// waits needlessly (the probe decides; the period only spaces probes).
    pub const MAX_OPEN: Duration = Duration::from_secs(3600);
}

/// The provider a `[limits.<role>]` table is about, for roles with one
/// provider; a courier account's own provider (Maystro or Yalidine) is
/// decided by its `provider` setting, so `courier` answers Maystro here (and
/// `sms` mNotify, the SMS account's `provider` deciding likewise).
///
/// # Errors
/// An unknown role, named with the roles that exist.
pub fn provider_of_role(role: &str) -> Result<Provider, String> {
    match role {
        "courier" => Ok(Provider::Maystro),
        "shop" => Ok(Provider::Woocommerce),
        "erp" => Ok(Provider::Erpnext),
        "sms" => Ok(Provider::Mnotify),
        other => Err(format!(
            "[limits.{other}]: unknown role '{other}'; use courier, shop, erp or sms"
        )),
    }
}

/// The role name of `provider` in `[limits]`.
pub fn role_of(provider: Provider) -> &'static str {
    match provider {
        Provider::Maystro => "courier",
        Provider::Woocommerce => "shop",
        Provider::Erpnext => "erp",
        Provider::Mnotify => "sms",
        Provider::Yalidine => "courier",
        Provider::Twilio => "sms",
        // A status source stands in for a store's courier.
        Provider::Datamart => "courier",
    }
}

/// Validate one account's limits, naming `[limits.<role>.<account>]` in
/// every complaint.
///
/// # Errors
/// A rate that is not a positive number, a burst or in-flight cap below 1.
pub fn validate(role: &str, account: &str, c: &LimitConfig) -> Result<AccountLimit, String> {
    let at = format!("[limits.{role}.{account}]");
    if let Some(rate) = c.rate_per_s.filter(|r| !r.is_finite() || *r <= 0.0) {
        return Err(format!(
            "{at}: rate_per_s must be a number above 0 (got {rate}); leave it out for no rate limit"
        ));
    }
    let burst = match c.burst {
        None => (c.rate_per_s.unwrap_or(1.0).ceil() as u32).max(1),
        Some(b) if (1..=i64::from(u32::MAX)).contains(&b) => b as u32,
        Some(b) => return Err(format!("{at}: burst must be at least 1 (got {b})")),
    };
    let max_in_flight = match c.max_in_flight {
        None => None,
        Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => Some(n as u32),
        Some(n) => {
            return Err(format!(
                "{at}: max_in_flight must be at least 1 (got {n}); remove it for no cap"
            ))
        }
    };
    let failures = match c.breaker_failures {
        None => BreakerSettings::DEFAULT.failures,
        Some(n) if (1..=100_000).contains(&n) => n as u32,
        Some(n) => {
            return Err(format!(
                "{at}: breaker_failures must be between 1 and 100000 (got {n})"
            ))
        }
    };
    let open_for = match c.breaker_open_secs {
        None => BreakerSettings::DEFAULT.open_for,
        Some(secs)
            if secs.is_finite()
                && secs >= 1.0
                && secs <= BreakerSettings::MAX_OPEN.as_secs_f64() =>
        {
            Duration::from_secs_f64(secs)
        }
        Some(secs) => {
            return Err(format!(
                "{at}: breaker_open_secs must be between 1 and {} (got {secs}): shorter cannot spare the provider, longer keeps a recovered one waiting",
                BreakerSettings::MAX_OPEN.as_secs()
            ))
        }
    };
    Ok(AccountLimit {
        rate_per_s: c.rate_per_s,
        burst,
        max_in_flight,
        breaker: BreakerSettings { failures, open_for },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate: f64, burst: Option<i64>, max_in_flight: Option<i64>) -> LimitConfig {
        LimitConfig {
            rate_per_s: Some(rate),
            burst,
            max_in_flight,
            breaker_failures: None,
            breaker_open_secs: None,
        }
    }

    #[test]
    fn the_burst_defaults_to_one_seconds_worth() {
        let l = validate("courier", "primary", &limit(50.0, None, None)).unwrap();
        assert_eq!(l.burst, 50);
        assert_eq!(l.max_in_flight, None);
        let slow = validate("erp", "erpnext", &limit(0.5, None, Some(2))).unwrap();
        assert_eq!(slow.burst, 1);
        assert_eq!(slow.interval(), Some(Duration::from_secs(2)));
        assert_eq!(slow.breaker, BreakerSettings::DEFAULT);
    }

    #[test]
    fn a_breaker_that_cannot_work_is_refused_naming_the_account() {
        let breaker = |failures: Option<i64>, open: Option<f64>| LimitConfig {
            rate_per_s: None,
            burst: None,
            max_in_flight: None,
            breaker_failures: failures,
            breaker_open_secs: open,
        };
        let ok = validate("erp", "erpnext", &breaker(Some(3), Some(10.0))).unwrap();
        assert_eq!(ok.rate_per_s, None);
        assert_eq!(ok.breaker.failures, 3);
        assert_eq!(ok.breaker.open_for, Duration::from_secs(10));
        for (c, what) in [
            (
                breaker(Some(0), None),
                "breaker_failures must be between 1 and 100000 (got 0)",
            ),
            (
                breaker(None, Some(0.0)),
                "breaker_open_secs must be between 1 and 3600 (got 0)",
            ),
            (
                breaker(None, Some(-1.0)),
                "breaker_open_secs must be between 1 and 3600 (got -1)",
            ),
            (
                breaker(None, Some(86_400.0)),
                "breaker_open_secs must be between 1 and 3600 (got 86400)",
            ),
        ] {
            let err = validate("erp", "erpnext", &c).unwrap_err();
            assert!(err.starts_with("[limits.erp.erpnext]: "), "{err}");
            assert!(err.contains(what), "{err}");
        }
    }

    #[test]
    fn zero_or_negative_values_are_refused_naming_the_account() {
        for (c, what) in [
            (
                limit(0.0, None, None),
                "rate_per_s must be a number above 0 (got 0)",
            ),
            (
                limit(-5.0, None, None),
                "rate_per_s must be a number above 0 (got -5)",
            ),
            (
                limit(f64::NAN, None, None),
                "rate_per_s must be a number above 0",
            ),
            (
                limit(5.0, Some(0), None),
                "burst must be at least 1 (got 0)",
            ),
            (
                limit(5.0, Some(-2), None),
                "burst must be at least 1 (got -2)",
            ),
            (
                limit(5.0, None, Some(0)),
                "max_in_flight must be at least 1 (got 0)",
            ),
        ] {
            let err = validate("courier", "primary", &c).unwrap_err();
            assert!(err.starts_with("[limits.courier.primary]: "), "{err}");
            assert!(err.contains(what), "{err}");
        }
    }

    #[test]
    fn roles_map_to_providers_and_back() {
        for p in Provider::ALL {
            let role = role_of(p);
            assert_eq!(provider_of_role(role).map(role_of), Ok(role));
        }
        assert_eq!(role_of(Provider::Yalidine), "courier");
        assert!(provider_of_role("bank")
            .unwrap_err()
            .contains("unknown role 'bank'"));
    }
}
