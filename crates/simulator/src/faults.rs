//! Fault injection in front of every provider route: request counting, latency,
//! queued `fail_next` statuses, random 5xx / 429 / hangs.
//!
//! Faults live here, in one middleware, so each service's handlers stay plain
//! and every service fails the same way. The middleware knows no provider: the
//! error *bodies* come from each provider module as a [`FaultBody`] (clients
//! classify on those shapes), paired with its routes by `server`, and the
//! decisions come from the [`FaultPlan`](crate::fault_plan::FaultPlan). Revoked
//! keys are checked by each service's auth, since their 401 is part of its auth
//! shape.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::Response;
use axum::Router;

use crate::fault_plan::Decision;
use crate::service::Service;
use crate::sim::Sim;

/// A service's answer to an injected failure: the status and, for a 429, the
/// `Retry-After` seconds (the header itself is added here).
pub(crate) type FaultBody = fn(StatusCode, Option<u64>) -> Response;

/// What the middleware needs for one service's routes.
#[derive(Clone)]
struct Injector {
    sim: Arc<Sim>,
    service: Service,
    body: FaultBody,
}

/// `routes` with faults injected in front of each of them (requests that match
/// no route are neither faulted nor counted).
pub(crate) fn with_faults(
    routes: Router,
    sim: &Arc<Sim>,
    service: Service,
    body: FaultBody,
) -> Router {
    let injector = Injector {
        sim: Arc::clone(sim),
        service,
        body,
    };
    routes.route_layer(from_fn_with_state(injector, inject))
}

/// The middleware: counts the request, waits the latency, then serves it,
/// hangs first, or answers the injected failure.
async fn inject(State(injector): State<Injector>, req: Request, next: Next) -> Response {
    let Injector { sim, service, body } = injector;
    sim.rates.count(service, &req);
    let (knobs, decision) = sim.faults.admit(service);
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
            let mut res = body(status, retry_after);
            if let Some(secs) = retry_after {
                res.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            res
        }
    }
}
