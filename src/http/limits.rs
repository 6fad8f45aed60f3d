//! Request-level limits of `ordersync api`: how unauthenticated bodies are
//! read, the media-type check, and the flags that set every limit.
//!
//! A webhook body is unauthenticated until its signature is checked, and the
//! signature covers the whole body, so it must be read first. Reading is
//! therefore bounded four ways:
//! - **size**: more than the limit is a 413, decided from `Content-Length`
//!   before a byte is read, or as soon as a chunked body passes it;
//! - **time**: the whole body must arrive within the body timeout (408), and
//!   tower-http's `RequestBodyTimeoutLayer` also ends a body that stalls;
//! - **memory**: a body that declares at most [`SMALL_BODY`] bytes (every
//!   real order webhook: a few KiB) is bounded by the connection cap times
//!   that size (32 MiB at the defaults) and needs nothing else, so no
//!   attacker can starve real webhooks of memory. Every byte of a larger or
//!   undeclared (chunked) body is taken from one [`BodyBudget`] shared by all
//!   of them; when it is spent the request is answered 503 with
//!   `Retry-After` instead of buffering more, so stalled or slow senders of
//!   large bodies cannot hold more than the budget between them;
//! - **what is read at all**: requests that cannot be authenticated (no
//!   signature, an unknown store or account) are answered before the body.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::Refusal;

/// A body declaring at most this many bytes is read without the budget: the
/// connection cap bounds how many there can be.
pub const SMALL_BODY: u64 = 64 * 1024;
/// Default budget shared by the large unauthenticated bodies being read.
pub const DEFAULT_BODY_BUDGET: usize = 32 * 1024 * 1024;
/// Default time for a whole unauthenticated body to arrive.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(15);
/// Default time an unauthenticated request (webhook, login) may take in all.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client is told to wait when the body budget is spent.
const BUSY_RETRY_AFTER_SECS: u64 = 5;

/// Bytes of unauthenticated request bodies that may be held at once.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> Self {
        let bytes = bytes.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(bytes)),
            total: bytes,
        }
    }

    /// Bytes not held by any body now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    /// The whole budget.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// A body read under the budget; its bytes return to the budget when this
/// is dropped (after the handler is done with it).
#[derive(Debug)]
pub struct BudgetedBody {
    /// The body.
    pub bytes: Bytes,
    _held: Option<OwnedSemaphorePermit>,
}

/// How one unauthenticated body is read.
#[derive(Debug, Clone)]
pub struct BodyRules {
    /// Largest body accepted (413 past it).
    pub limit: usize,
    /// The whole body must arrive within this (408 after it).
    pub timeout: Duration,
    /// The shared budget.
    pub budget: BodyBudget,
}

/// Read `body` under `rules`.
///
/// # Errors
/// 413 when `Content-Length` or the bytes received pass the limit; 408 when
/// the body does not arrive in time; 503 (with `Retry-After`) when the
/// shared budget is spent; 400 when the client broke the body off.
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    rules: &BodyRules,
) -> Result<BudgetedBody, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than {} bytes", rules.limit),
        )
    };
    let declared = content_length(headers);
    if declared.is_some_and(|n| n > rules.limit as u64) {
        return Err(too_large());
    }
    // hyper never delivers more than a declared length.
    let budgeted = declared.is_none_or(|n| n > SMALL_BODY);
    let read = async {
        let mut body = body;
        let mut held: Option<OwnedSemaphorePermit> = None;
        // A small declared body is allocated once; a large one grows exactly
        // (never to twice what the budget counted).
        let mut bytes = Vec::with_capacity(if budgeted {
            0
        } else {
            declared.unwrap_or(0) as usize
        });
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                let inner = e.into_inner();
                if inner.is::<tower_http::timeout::TimeoutError>() {
                    // The body stalled (the inactivity layer noticed first).
                    body_timed_out(rules.timeout)
                } else {
                    Refusal::new(
                        StatusCode::BAD_REQUEST,
                        format!("the request body could not be read: {inner}"),
                    )
                }
            })?;
            let Ok(chunk) = frame.into_data() else {
                continue;
            };
            if bytes.len() + chunk.len() > rules.limit {
                return Err(too_large());
            }
            let need = u32::try_from(chunk.len()).map_err(|_| too_large())?;
            if need == 0 || !budgeted {
                bytes.extend_from_slice(&chunk);
                continue;
            }
            let permit = rules
                .budget
                .bytes
                .clone()
                .try_acquire_many_owned(need)
                .map_err(|_| busy())?;
            match &mut held {
                Some(h) => h.merge(permit),
                None => held = Some(permit),
            }
            bytes.reserve_exact(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        Ok(BudgetedBody {
            bytes: Bytes::from(bytes),
            _held: held,
        })
    };
    tokio::time::timeout(rules.timeout, read)
        .await
        .map_err(|_| body_timed_out(rules.timeout))?
}

fn body_timed_out(timeout: Duration) -> Refusal {
    Refusal::new(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "the request body did not arrive within {}",
            humantime::format_duration(timeout)
        ),
    )
}

fn busy() -> Refusal {
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "too many request bodies are being received at once; retry in {BUSY_RETRY_AFTER_SECS} s"
        ),
    )
    .retry_after(BUSY_RETRY_AFTER_SECS)
}

/// The declared `Content-Length`, if any and readable.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The request's media type (`type/subtype`, lower case, parameters
/// dropped), parsed as RFC 9110 says: `application/jsonp` is not
/// `application/json`, `Application/JSON; charset=utf-8` is.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let parsed: mime::Mime = value.trim().parse().ok()?;
    Some(parsed.essence_str().to_ascii_lowercase())
}

/// The `Content-Type` as sent, for error messages (never more than 100 chars).
pub fn content_type_text(headers: &HeaderMap) -> String {
    let text = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    text.chars().take(100).collect()
}

/// `ordersync api` flags for the limits of the HTTP side.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Open connections at most; more wait in the listen backlog.
    #[arg(long, env = "ORDERSYNC_MAX_CONNECTIONS",
          default_value_t = crate::http::server::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// A request head must arrive within this; idle keep-alive connections
    /// are closed after it too.
    #[arg(long, env = "ORDERSYNC_HEADER_TIMEOUT", default_value = "10s",
          value_parser = parse_timeout)]
    pub header_timeout: Duration,
    /// A webhook body must arrive whole within this, and no body may stall
    /// for longer.
    #[arg(long, env = "ORDERSYNC_BODY_TIMEOUT", default_value = "15s",
          value_parser = parse_timeout)]
    pub body_timeout: Duration,
    /// A webhook or login request may take this long in all.
    #[arg(long, env = "ORDERSYNC_REQUEST_TIMEOUT", default_value = "30s",
          value_parser = parse_timeout)]
    pub request_timeout: Duration,
    /// Bytes of unauthenticated bodies (webhooks) held at once, in MiB.
    #[arg(long, env = "ORDERSYNC_BODY_BUDGET_MB", default_value_t = 32,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub body_budget_mb: u32,
    /// Take the client address for login and bearer throttling from the last
    /// `X-Forwarded-For` entry. Set it only behind a proxy that appends the
    /// address it saw (any ingress does); without a proxy a client could
    /// choose its own address.
    #[arg(long, env = "ORDERSYNC_TRUST_FORWARDED_FOR",
          value_parser = clap::builder::BoolishValueParser::new(), default_value_t = false)]
    pub trust_forwarded_for: bool,
    /// Courier webhook events one courier account may send per second (all
    /// api replicas together); past it they are answered 429.
    #[arg(long, env = "ORDERSYNC_COURIER_WEBHOOK_RATE",
          default_value_t = crate::http::webhooks::DEFAULT_COURIER_RATE,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub courier_webhook_rate: u32,
}

/// The limits every part of the HTTP side reads.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Connection-level limits.
    pub server: crate::http::server::ServerLimits,
    /// A body must arrive within this.
    pub body_timeout: Duration,
    /// An unauthenticated request must be answered within this.
    pub request_timeout: Duration,
    /// Shared by unauthenticated bodies.
    pub body_budget: BodyBudget,
    /// Whether `X-Forwarded-For` names the client.
    pub trust_forwarded_for: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            server: crate::http::server::ServerLimits::default(),
            body_timeout: DEFAULT_BODY_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            body_budget: BodyBudget::new(DEFAULT_BODY_BUDGET),
            trust_forwarded_for: false,
        }
    }
}

impl LimitArgs {
    /// The limits these flags ask for.
    pub fn limits(&self) -> Limits {
        Limits {
            server: crate::http::server::ServerLimits {
                max_connections: self.max_connections.max(1),
                header_timeout: self.header_timeout,
                ..Default::default()
            },
            body_timeout: self.body_timeout,
            request_timeout: self.request_timeout,
            body_budget: BodyBudget::new(self.body_budget_mb as usize * 1024 * 1024),
            trust_forwarded_for: self.trust_forwarded_for,
        }
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration like 10s or 1m: {e}"))?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(format!("'{text}' is out of range: between 100ms and 1h"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn media_types_are_parsed_not_prefix_matched() {
        let mt = |v: &str| media_type(&headers(&[("content-type", v)]));
        assert_eq!(mt("application/json").as_deref(), Some("application/json"));
        assert_eq!(
            mt("Application/JSON; charset=UTF-8").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            mt("application/jsonp").as_deref(),
            Some("application/jsonp")
        );
        assert_eq!(
            mt("application/json-seq").as_deref(),
            Some("application/json-seq")
        );
        assert_eq!(mt("json"), None);
        assert_eq!(media_type(&HeaderMap::new()), None);
    }

    fn rules(limit: usize, budget: usize) -> BodyRules {
        BodyRules {
            limit,
            timeout: Duration::from_secs(5),
            budget: BodyBudget::new(budget),
        }
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let r = rules(10, 100);
        let err = read_body(
            Body::from("x".repeat(5)),
            &headers(&[("content-length", "11")]),
            &r,
        )
        .await
        .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(r.budget.available(), 100);
    }

    #[tokio::test]
    async fn an_undeclared_body_is_cut_off_at_the_limit() {
        let err = read_body(
            Body::from("x".repeat(11)),
            &HeaderMap::new(),
            &rules(10, 100),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn the_budget_is_held_while_the_body_is_and_returned_after() {
        let r = rules(100, 50);
        let body = read_body(Body::from("x".repeat(40)), &HeaderMap::new(), &r)
            .await
            .unwrap();
        assert_eq!(r.budget.available(), 10);
        let err = read_body(Body::from("y".repeat(20)), &HeaderMap::new(), &r)
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            r.budget.available(),
            10,
            "a refused body gives its bytes back"
        );
        drop(body);
        assert_eq!(r.budget.available(), 50);
    }

    #[tokio::test]
    async fn small_declared_bodies_do_not_wait_for_the_budget() {
        let r = rules(100_000, 10);
        let body = read_body(
            Body::from("x".repeat(50)),
            &headers(&[("content-length", "50")]),
            &r,
        )
        .await
        .unwrap();
        assert_eq!(body.bytes.len(), 50);
        let err = read_body(Body::from("x".repeat(50)), &HeaderMap::new(), &r)
            .await
            .unwrap_err();
        assert_eq!(
            err.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "undeclared bodies are budgeted"
        );
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_a_408() {
        let (_tx, stalled) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        let body = Body::from_stream(tokio_stream_of(stalled));
        let mut r = rules(100, 100);
        r.timeout = Duration::from_millis(50);
        let err = read_body(body, &HeaderMap::new(), &r).await.unwrap_err();
        assert_eq!(err.status, StatusCode::REQUEST_TIMEOUT);
    }

    fn tokio_stream_of(
        mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
