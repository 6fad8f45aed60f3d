//! Fault injection in front of every provider route: request counting, latency,
//! queued `fail_next` statuses, random 5xx / 429 / hangs.
//!
//! Faults live here, in one middleware, so each service's handlers stay plain
//! and every service fails the same way; only the error *bodies* come from the
//! service modules, because clients classify on those shapes. Revoked keys are
//! checked by each service's auth, since their 401 is part of its auth shape.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{courier, erp, lock, shop, sms, Knobs, Service, Sim};

/// Salt so fault draws do not mirror the data generator's sequence.
const FAULT_SEED_SALT: u64 = 0x5eed_fa17;

/// One queued deterministic failure.
#[derive(Clone, Copy, Debug)]
struct Queued {
    status: StatusCode,
    retry_after: Option<u64>,
}

/// What happens to one request.
#[derive(Debug)]
enum Decision {
    Pass,
    Fail(StatusCode, Option<u64>),
    Hang,
}

/// Per-service knobs, failure queues and request counters.
pub(super) struct Faults {
    knobs: [Mutex<Knobs>; 4],
    queued: [Mutex<VecDeque<Queued>>; 4],
    requests: [AtomicU64; 4],
    rng: Mutex<StdRng>,
}

impl Faults {
    pub(super) fn new(seed: u64) -> Faults {
        Faults {
            knobs: Default::default(),
            queued: Default::default(),
            requests: Default::default(),
            rng: Mutex::new(StdRng::seed_from_u64(seed ^ FAULT_SEED_SALT)),
        }
    }

    pub(super) fn set_knobs(&self, service: Service, knobs: Knobs) {
        *lock(&self.knobs[service.index()]) = knobs;
    }

    pub(super) fn knobs(&self, service: Service) -> Knobs {
        lock(&self.knobs[service.index()]).clone()
    }

    pub(super) fn fail_next(
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

    pub(super) fn requests(&self, service: Service) -> u64 {
        self.requests[service.index()].load(Ordering::Relaxed)
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

/// The middleware: `State` carries the service so one function serves all four.
pub(super) async fn inject(
    State((sim, service)): State<(Arc<Sim>, Service)>,
    req: Request,
    next: Next,
) -> Response {
    sim.faults.requests[service.index()].fetch_add(1, Ordering::Relaxed);
    let knobs = sim.faults.knobs(service);
    let decision = sim.faults.decide(service, &knobs);
    sim.pause(knobs.latency).await;
    match decision {
        Decision::Pass => next.run(req).await,
        Decision::Hang => {
            tracing::debug!(%service, hang_ms = knobs.hang.as_millis(), "injecting hang");
            sim.pause(knobs.hang).await;
            next.run(req).await
        }
        Decision::Fail(status, retry_after) => {
            tracing::debug!(%service, %status, "injecting failure");
            let retry_after = retry_after.or_else(|| {
                (status == StatusCode::TOO_MANY_REQUESTS).then_some(knobs.retry_after_secs)
            });
            fault_response(service, status, retry_after)
        }
    }
}

/// An injected failure in the service's own error shape, with `Retry-After`
/// when one applies.
fn fault_response(service: Service, status: StatusCode, retry_after: Option<u64>) -> Response {
    let mut res = match service {
        Service::Courier => courier::fault_response(status, retry_after),
        Service::Shop => shop::fault_response(status),
        Service::Erp => erp::fault_response(status, retry_after),
        Service::Sms => sms::fault_response(status),
    };
    if let Some(secs) = retry_after {
        res.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// Plain `(status, body)` helper for the service modules.
pub(super) fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}
