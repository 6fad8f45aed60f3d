//! Throttling of credential guesses: dashboard logins and bearer tokens.
//!
//! Each client (its IP address; an IPv6 client by its /64, which one host
//! usually holds whole) has a bucket of [`FAILURE_BURST`] failed attempts
//! that refills one every [`FAILURE_REFILL`]. While the bucket is empty
//! every attempt that presents a credential, right or wrong, is answered 429
//! with `Retry-After` *before* the credential is compared: otherwise a
//! guesser could keep going and simply watch for the one answer that is not
//! a 429. Successful attempts cost nothing, so scripts polling with the
//! right token are never throttled; only failures count. Expired dashboard
//! cookies do not count either (they are signed, not guessable).
//!
//! Hand-written rather than `governor`'s keyed limiter: that one can only
//! test a key by spending from it, and here the test (before comparing) and
//! the spending (after a failure) are separate steps.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::{AppState, Refusal};

/// Failed attempts a client may make in a burst.
pub const FAILURE_BURST: u32 = 10;
/// One more failed attempt is allowed per this much time.
pub const FAILURE_REFILL: Duration = Duration::from_secs(6);
/// Clients tracked at most; past it, clients whose bucket is full again are
/// forgotten first.
const MAX_CLIENTS: usize = 100_000;
/// The login form is a token and a few bytes of encoding.
pub const LOGIN_BODY_LIMIT: usize = 4 * 1024;

/// Failed-attempt buckets per client.
#[derive(Debug)]
pub struct Throttle {
    burst: f64,
    refill: Duration,
    clients: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures that may still be made, at `at`.
    allowance: f64,
    at: Instant,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(FAILURE_BURST, FAILURE_REFILL)
    }
}

impl Throttle {
    /// `burst` failures, then one per `refill`.
    pub fn new(burst: u32, refill: Duration) -> Self {
        Self {
            burst: f64::from(burst.max(1)),
            refill: refill.max(Duration::from_millis(1)),
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn allowance(&self, bucket: Bucket, now: Instant) -> f64 {
        let refilled =
            now.saturating_duration_since(bucket.at).as_secs_f64() / self.refill.as_secs_f64();
        (bucket.allowance + refilled).min(self.burst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        // A panic while holding the lock leaves counts, never broken state.
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` while `client` has no failed attempt left.
    ///
    /// # Errors
    /// How long until the client may try again.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let clients = self.lock();
        let Some(bucket) = clients.get(&key(client)) else {
            return Ok(());
        };
        let allowance = self.allowance(*bucket, now);
        if allowance >= 1.0 {
            Ok(())
        } else {
            Err(self.refill.mul_f64(1.0 - allowance))
        }
    }

    /// Count one failed attempt of `client`.
    pub fn record_failure(&self, client: IpAddr, now: Instant) {
        let mut clients = self.lock();
        if clients.len() >= MAX_CLIENTS {
            let burst = self.burst;
            clients.retain(|_, b| self.allowance(*b, now) < burst);
        }
        let allowance = clients
            .get(&key(client))
            .map_or(self.burst, |b| self.allowance(*b, now));
        clients.insert(
            key(client),
            Bucket {
                allowance: (allowance - 1.0).max(0.0),
                at: now,
            },
        );
    }
}

/// The throttling key of an address: IPv6 by /64.
fn key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V4(_) => client,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// The client's address: the connection's peer, or with
/// `trust_forwarded_for` the last `X-Forwarded-For` entry (the one the
/// proxy in front of us appended).
pub fn client_address(request: &Request, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        if let Some(forwarded) = last_forwarded_for(request.headers()) {
            return Some(forwarded);
        }
    }
    crate::http::server::peer_of(request).map(|addr| addr.ip())
}

fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?;
    last.to_str()
        .ok()?
        .rsplit(',')
        .next()
        .and_then(|entry| entry.trim().parse().ok())
}

fn is_login(request: &Request) -> bool {
    request.method() == Method::POST && request.uri().path() == "/dashboard/login"
}

/// Throttle requests that present a credential (an `Authorization` header,
/// or the dashboard's login form) by their client's failures, and cap the
/// login form's body at [`LOGIN_BODY_LIMIT`] before anything reads it.
pub async fn throttle_credentials(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let login = is_login(&request);
    if !login && !request.headers().contains_key(header::AUTHORIZATION) {
        return next.run(request).await;
    }
    let client = client_address(&request, state.limits.trust_forwarded_for);
    if let Some(client) = client {
        if let Err(wait) = state.throttle.check(client, Instant::now()) {
            let secs = wait.as_secs().max(1);
            tracing::warn!(%client, retry_after_secs = secs, "credential attempt refused: too many failures");
            let message =
                format!("too many failed attempts from your address; try again in {secs} s");
            return if login {
                let mut response = (StatusCode::TOO_MANY_REQUESTS, message).into_response();
                if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                    response.headers_mut().insert(header::RETRY_AFTER, value);
                }
                response
            } else {
                Refusal::new(StatusCode::TOO_MANY_REQUESTS, message)
                    .retry_after(secs)
                    .into_response()
            };
        }
    }
    let request = if login {
        match limit_login_body(request) {
            Ok(request) => request,
            Err(refused) => return refused.into_response(),
        }
    } else {
        request
    };
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        if let Some(client) = client {
            state.throttle.record_failure(client, Instant::now());
        }
    }
    response
}

fn limit_login_body(request: Request) -> Result<Request, Refusal> {
    if crate::http::limits::content_length(request.headers())
        .is_some_and(|n| n > LOGIN_BODY_LIMIT as u64)
    {
        return Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the login form is larger than {LOGIN_BODY_LIMIT} bytes"),
        ));
    }
    let (parts, body) = request.into_parts();
    // axum answers 413 when a body limited this way runs over.
    let body = axum::body::Body::new(http_body_util::Limited::new(body, LOGIN_BODY_LIMIT));
    Ok(Request::from_parts(parts, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_for_the_refill() {
        let throttle = Throttle::new(3, Duration::from_secs(6));
        let client: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(throttle.check(client, t0).is_ok());
            throttle.record_failure(client, t0);
        }
        let wait = throttle.check(client, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(6));
        assert!(throttle.check(other, t0).is_ok(), "clients are separate");
        assert!(throttle.check(client, t0 + Duration::from_secs(3)).is_err());
        assert!(throttle.check(client, t0 + Duration::from_secs(6)).is_ok());
        throttle.record_failure(client, t0 + Duration::from_secs(6));
        assert!(throttle.check(client, t0 + Duration::from_secs(7)).is_err());
    }

    #[test]
    fn an_ipv6_host_is_one_client_across_its_64() {
        let throttle = Throttle::new(1, Duration::from_secs(60));
        let now = Instant::now();
        throttle.record_failure("2001:db8:1:2::1".parse().unwrap(), now);
        assert!(throttle
            .check("2001:db8:1:2:ffff::9".parse().unwrap(), now)
            .is_err());
        assert!(throttle
            .check("2001:db8:1:3::1".parse().unwrap(), now)
            .is_ok());
    }

    #[test]
    fn the_proxy_appended_address_is_the_last_one() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "6.6.6.6, 10.1.1.1".parse().unwrap());
        assert_eq!(
            last_forwarded_for(&headers),
            Some("10.1.1.1".parse().unwrap())
        );
        headers.append("x-forwarded-for", "10.2.2.2".parse().unwrap());
        assert_eq!(
            last_forwarded_for(&headers),
            Some("10.2.2.2".parse().unwrap())
        );
    }
}
