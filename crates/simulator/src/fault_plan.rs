//! What goes wrong, per service: the random fault [`Knobs`], the queue of
//! `fail_next` statuses, the request counters, and the one decision drawn for
//! each request.
//!
//! This is state and arithmetic only, no HTTP: the `faults` middleware acts on
//! a [`Decision`], the handle and the admin routes change the plan.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::lock::lock;
use crate::service::Service;

/// Default length of an injected hang: longer than any sane client timeout.
pub const DEFAULT_HANG: Duration = Duration::from_secs(30);

/// Salt so fault draws do not mirror the data generator's sequence.
const FAULT_SEED_SALT: u64 = 0x5eed_fa17;

/// Random fault injection for one service. `Default` injects nothing.
///
/// JSON form (all fields optional, unknown fields rejected so typos surface):
/// `{"latency_ms":0,"error_rate":0.0,"rate_limit_rate":0.0,"retry_after_secs":0,
/// "timeout_rate":0.0,"hang_ms":30000}`. One uniform draw per request decides:
/// below `error_rate` a 5xx, then up to `+rate_limit_rate` a 429, then up to
/// `+timeout_rate` a hang.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Added before every answer, faulted or not.
    #[serde(rename = "latency_ms", with = "crate::config::millis")]
    pub latency: Duration,
    /// Share of requests answered 503 or 500 (half each).
    pub error_rate: f64,
    /// Share of requests answered 429 with `Retry-After`.
    pub rate_limit_rate: f64,
    /// `Retry-After` seconds on injected 429s (0: retry at once).
    pub retry_after_secs: u64,
    /// Share of requests that hang for `hang` before answering normally.
    pub timeout_rate: f64,
    /// How long a hang lasts; longer than the client's timeout, so it sees one.
    #[serde(rename = "hang_ms", with = "crate::config::millis")]
    pub hang: Duration,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            latency: Duration::ZERO,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 0,
            timeout_rate: 0.0,
            hang: DEFAULT_HANG,
        }
    }
}

/// One queued deterministic failure.
#[derive(Clone, Copy, Debug)]
struct Queued {
    status: StatusCode,
    retry_after: Option<u64>,
}

/// What happens to one request.
#[derive(Debug)]
pub(crate) enum Decision {
    /// Served normally.
    Pass,
    /// Answered with this status (and `Retry-After` seconds, if queued with one)
    /// instead of being served.
    Fail(StatusCode, Option<u64>),
    /// Served normally after the knobs' `hang`.
    Hang,
}

/// Per-service knobs, failure queues and request counters.
pub(crate) struct FaultPlan {
    knobs: [Mutex<Knobs>; Service::ALL.len()],
    queued: [Mutex<VecDeque<Queued>>; Service::ALL.len()],
    requests: [AtomicU64; Service::ALL.len()],
    rng: Mutex<StdRng>,
}

impl FaultPlan {
    /// No faults anywhere; random draws seeded from the simulator's seed.
    pub(crate) fn new(seed: u64) -> FaultPlan {
        FaultPlan {
            knobs: Default::default(),
            queued: Default::default(),
            requests: Default::default(),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ FAULT_SEED_SALT)),
        }
    }

    pub(crate) fn set_knobs(&self, service: Service, knobs: Knobs) {
        *lock(&self.knobs[service.index()]) = knobs;
    }

    pub(crate) fn knobs(&self, service: Service) -> Knobs {
        lock(&self.knobs[service.index()]).clone()
    }

    /// Queues `count` failures with `status` (500 if it is not a valid code).
    pub(crate) fn fail_next(
        &self,
        service: Service,
        count: u32,
        status: u16,
        retry_after: Option<u64>,
    ) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut q = lock(&self.queued[service.index()]);
        q.extend((0..count).map(|_| Queued {
            status,
            retry_after,
        }));
    }

    /// Requests that reached `service`, faulted ones included.
    pub(crate) fn requests(&self, service: Service) -> u64 {
        self.requests[service.index()].load(Ordering::Relaxed)
    }

    /// Counts one request to `service` and decides its fate, under the knobs
    /// now in force (returned too: latency and hang length come from them).
    pub(crate) fn admit(&self, service: Service) -> (Knobs, Decision) {
        self.requests[service.index()].fetch_add(1, Ordering::Relaxed);
        let knobs = self.knobs(service);
        let decision = self.decide(service, &knobs);
        (knobs, decision)
    }

    /// Queued failures first, then one uniform draw split across the rates.
    fn decide(&self, service: Service, knobs: &Knobs) -> Decision {
        if let Some(q) = lock(&self.queued[service.index()]).pop_front() {
            return Decision::Fail(q.status, q.retry_after);
        }
        let total = knobs.error_rate + knobs.rate_limit_rate + knobs.timeout_rate;
        if total <= 0.0 {
            return Decision::Pass;
        }
        let mut rng = lock(&self.rng);
        let roll: f64 = rng.random();
        if roll < knobs.error_rate {
            let status = if rng.random::<bool>() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            Decision::Fail(status, None)
        } else if roll < knobs.error_rate + knobs.rate_limit_rate {
            Decision::Fail(StatusCode::TOO_MANY_REQUESTS, None)
        } else if roll < total {
            Decision::Hang
        } else {
            Decision::Pass
        }
    }
}
