//! The gate every provider request passes: the account's shared budget
//! (rate limit, in-flight cap, the provider's own "slow down"), and what a
//! response tells it back.
//!
//! The gate itself lives outside this module (`crate::queue::ratelimit`
//! keeps the budget in Redis, shared by every process); a job's run installs
//! it with [`with_gate`] and every request of that run goes through it, so
//! the provider clients need no handle of their own. A request sent with no
//! gate installed (the CLI's `stores check`) is not limited.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;

use super::{parse_retry_after, Provider};

/// How long a request may wait for its account's budget inside a job. Past
/// this the job is parked as a delayed task instead (no attempt used), so a
/// throttled account does not hold worker slots.
pub const MAX_INLINE_WAIT: Duration = Duration::from_millis(250);

/// How long the account is left alone after a 429 that names no
/// `Retry-After`.
pub const DEFAULT_SLOW_DOWN: Duration = Duration::from_secs(1);

/// A boxed future, for the object-safe gate.
pub type GateFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the gate answers a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Go; hand the permit back when the response is read.
    Go(Permit),
    /// Not now: ask again in this long, and why (`rate`, `in_flight`,
    /// `backoff`, `breaker_open`, `breaker_half_open`).
    Wait(Duration, &'static str),
}

/// A request's place in its account's in-flight count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    /// The permit's id (`None`: admitted without the gate's state, e.g.
    /// while Redis was unreachable).
    pub id: Option<String>,
    /// This request is the one probe of a half-open breaker.
    pub probe: bool,
}

/// How a request went, as the account's circuit breaker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestOutcome {
    /// The provider answered (any status but a 5xx): it is up.
    Answered,
    /// A timeout, a connection failure or a 5xx: it may be down.
    Failed,
}

impl RequestOutcome {
    /// The breaker's reading of a transport result.
    pub fn of(result: &Result<StatusCode, super::ErrorClass>) -> Self {
        use super::ErrorClass;
        match result {
            Ok(status) if status.is_server_error() => Self::Failed,
            Ok(_) => Self::Answered,
            Err(ErrorClass::Timeout | ErrorClass::Connection | ErrorClass::ServerError) => {
                Self::Failed
            }
            Err(_) => Self::Answered,
        }
    }
}

/// A shared request budget per (provider, account).
pub trait RequestGate: Send + Sync + std::fmt::Debug {
    /// Ask for room for one request now.
    fn admit<'a>(&'a self, provider: Provider, account: &'a str) -> GateFuture<'a, Admission>;
    /// The request is over: free its place, and tell the breaker how it went.
    fn release<'a>(
        &'a self,
        provider: Provider,
        account: &'a str,
        permit: Permit,
        outcome: RequestOutcome,
    ) -> GateFuture<'a, ()>;
    /// The provider asked everyone using `account` to stop for `pause`, then
    /// go slower for a while.
    fn slow_down<'a>(
        &'a self,
        provider: Provider,
        account: &'a str,
        pause: Duration,
    ) -> GateFuture<'a, ()>;
}

tokio::task_local! {
    static GATE: Arc<dyn RequestGate>;
}

/// Run `future` (a job's run) with every provider request it makes going
/// through `gate`.
pub async fn with_gate<F: Future>(gate: Arc<dyn RequestGate>, future: F) -> F::Output {
    GATE.scope(gate, future).await
}

/// The gate installed for the current run, if any.
pub(crate) fn current() -> Option<Arc<dyn RequestGate>> {
    GATE.try_with(Arc::clone).ok()
}

/// How long a response asks the whole account to stop: a 429 (its
/// `Retry-After`, else [`DEFAULT_SLOW_DOWN`]), a 503 with `Retry-After`, or
/// quota headers saying a window's budget is spent (Yalidine's
/// `x-second-quota-left`, `x-minute-quota-left`, `x-hour-quota-left`,
/// `x-day-quota-left`: 0 left means wait for that window to pass). `None`:
/// carry on.
pub fn slow_down_for(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    let retry_after = parse_retry_after(headers);
    let mut pause = match status.as_u16() {
        429 => Some(retry_after.unwrap_or(DEFAULT_SLOW_DOWN)),
        503 => retry_after,
        _ => None,
    };
    for (header, window) in [
        ("x-second-quota-left", Duration::from_secs(1)),
        ("x-minute-quota-left", Duration::from_secs(60)),
        ("x-hour-quota-left", Duration::from_secs(3600)),
        ("x-day-quota-left", Duration::from_secs(86_400)),
    ] {
        let left = headers
            .get(header)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        if left.is_some_and(|n| n <= 0) {
            pause = Some(pause.map_or(window, |p| p.max(window)));
        }
    }
    pause
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_429_slows_the_account_for_its_retry_after_or_a_second() {
        let ok = StatusCode::OK;
        let too_many = StatusCode::TOO_MANY_REQUESTS;
        assert_eq!(
            slow_down_for(too_many, &headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            slow_down_for(too_many, &headers(&[])),
            Some(DEFAULT_SLOW_DOWN)
        );
        assert_eq!(slow_down_for(ok, &headers(&[("retry-after", "7")])), None);
        assert_eq!(
            slow_down_for(
                StatusCode::SERVICE_UNAVAILABLE,
                &headers(&[("retry-after", "30")])
            ),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            slow_down_for(StatusCode::SERVICE_UNAVAILABLE, &headers(&[])),
            None
        );
    }

    #[test]
    fn the_breaker_counts_outages_not_refusals() {
        use crate::domain::ErrorClass;
        let failed = [
            Ok(StatusCode::INTERNAL_SERVER_ERROR),
            Ok(StatusCode::BAD_GATEWAY),
            Err(ErrorClass::Timeout),
            Err(ErrorClass::Connection),
        ];
        for r in failed {
            assert_eq!(RequestOutcome::of(&r), RequestOutcome::Failed, "{r:?}");
        }
        let answered = [
            Ok(StatusCode::OK),
            Ok(StatusCode::NOT_FOUND),
            Ok(StatusCode::TOO_MANY_REQUESTS),
            Err(ErrorClass::Decode),
        ];
        for r in answered {
            assert_eq!(RequestOutcome::of(&r), RequestOutcome::Answered, "{r:?}");
        }
    }

    #[test]
    fn a_spent_quota_window_slows_the_account_until_it_passes() {
        let ok = StatusCode::OK;
        let left = headers(&[
            ("x-second-quota-left", "3"),
            ("x-minute-quota-left", "40"),
            ("x-hour-quota-left", "900"),
            ("x-day-quota-left", "9000"),
        ]);
        assert_eq!(slow_down_for(ok, &left), None);
        assert_eq!(
            slow_down_for(ok, &headers(&[("x-second-quota-left", "0")])),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            slow_down_for(
                ok,
                &headers(&[("x-second-quota-left", "0"), ("x-minute-quota-left", "0")])
            ),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            slow_down_for(ok, &headers(&[("x-minute-quota-left", "garbage")])),
            None
        );
    }
}
