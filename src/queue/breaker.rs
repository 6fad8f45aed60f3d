//! Circuit breakers per provider account, as operators see them. The state
//! is written only by the account gate's script (`lua/account_gate.lua`,
//! driven by `crate::queue::ratelimit`): after `breaker_failures`
//! consecutive transient failures (timeouts, connection errors, 5xx) the
//! account's breaker opens; its jobs are parked without using attempts;
//! after `breaker_open_secs` one request is let through as a probe
//! (half-open); it closes when the probe is answered, and opens again when
//! the probe fails.

use chrono::{DateTime, TimeZone as _, Utc};
use redis::aio::ConnectionManager;

use crate::domain::Provider;

/// Breaker transitions by provider, account and new state (counted by the
/// process that saw the transition).
pub const BREAKER_TRANSITIONS: &str = "ordersync_breaker_transitions_total";

/// The Redis hash of one account's breaker.
pub fn key(namespace: &str, provider: Provider, account: &str) -> String {
    format!("{namespace}:breaker:{}:{account}", provider.as_str())
}

/// Count a transition (`opened`, `reopened`, `closed`) in this process's
/// metrics.
pub fn count_transition(provider: Provider, account: &str, transition: &str) {
    metrics::counter!(
        BREAKER_TRANSITIONS,
        "provider" => provider.as_str(),
        "account" => account.to_owned(),
        "to" => transition.to_owned()
    )
    .increment(1);
}

/// One account's breaker now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum BreakerState {
    /// Requests flow; `failures` transient failures in a row so far.
    Closed {
        /// Consecutive transient failures.
        failures: u32,
    },
    /// Requests are held back until `until`, then one probe goes.
    Open {
        /// When it opened.
        since: Option<DateTime<Utc>>,
        /// When the probe may go.
        until: DateTime<Utc>,
    },
    /// One probe request is testing the account.
    HalfOpen,
}

impl BreakerState {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BreakerState::Closed { .. } => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    /// The Prometheus gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(&self) -> f64 {
        match self {
            BreakerState::Closed { .. } => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open { .. } => 2.0,
        }
    }
}

impl std::fmt::Display for BreakerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BreakerState::Closed { failures: 0 } => f.write_str("closed"),
            BreakerState::Closed { failures } => {
                write!(f, "closed ({failures} failure(s) in a row)")
            }
            BreakerState::Open { until, .. } => write!(
                f,
                "OPEN until {} (jobs parked, no attempts used)",
                until.format("%H:%M:%S UTC")
            ),
            BreakerState::HalfOpen => f.write_str("half-open (one probe testing the account)"),
        }
    }
}

/// Read the breaker of `provider`/`account`.
///
/// # Errors
/// Redis failed.
pub async fn state(
    conn: &mut ConnectionManager,
    namespace: &str,
    provider: Provider,
    account: &str,
) -> redis::RedisResult<BreakerState> {
    let (state, failures, open_until, opened_at): (
        Option<String>,
        Option<u32>,
        Option<i64>,
        Option<i64>,
    ) = redis::cmd("HMGET")
        .arg(key(namespace, provider, account))
        .arg("state")
        .arg("failures")
        .arg("open_until")
        .arg("opened_at")
        .query_async(conn)
        .await?;
    let at = |ms: i64| Utc.timestamp_millis_opt(ms).single();
    Ok(match state.as_deref() {
        Some("open") => BreakerState::Open {
            since: opened_at.and_then(at),
            until: open_until.and_then(at).unwrap_or_else(Utc::now),
        },
        Some("half_open") => BreakerState::HalfOpen,
        _ => BreakerState::Closed {
            failures: failures.unwrap_or(0),
        },
    })
}
