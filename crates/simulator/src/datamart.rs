//! Datamart's developer API: `GET /order-status/{reference}` with
//! `X-API-Key`, `{"status":"success","data":{...}}`, 404 `{"message":"Order
//! not found"}`.
//!
//! A Datamart account's orders are the simulator's courier orders of that
//! account (same seeded timelines, pins and faults), each step shown as the
//! Datamart status of the same meaning. Its key is the store's `courier_key`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::SecondsFormat;
use serde_json::json;

use crate::config::CourierApi;
use crate::http::json_response;
use crate::sim::Sim;
use crate::state::CourierOrder;

/// The Datamart routes (no faults: `server` puts them behind the middleware).
pub(crate) fn routes(sim: &Arc<Sim>) -> Router {
    Router::new()
        .route(
            "/datamart/api/developer/order-status/{reference}",
            get(order_status),
        )
        .with_state(Arc::clone(sim))
}

/// The Datamart status shown for a timeline's Maystro code.
pub(crate) fn status_of(code: i64) -> &'static str {
    match code {
        4 | 11 => "pending",
        5 | 6 | 8 | 12 => "waiting",
        41 => "completed",
        50 | 10 | 51 | 53 => "failed",
        52 => "refunded",
        _ => "processing",
    }
}

/// Datamart's id of an order.
pub(crate) fn order_id_of(order: &CourierOrder) -> String {
    format!("DM{}", order.display_id)
}

fn message(status: StatusCode, text: &str) -> Response {
    json_response(status, json!({ "message": text }))
}

async fn order_status(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(reference): Path<String>,
) -> Response {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .unwrap_or_default();
    let account = match sim.courier_account(key, CourierApi::Datamart) {
        Some(account) if !sim.is_revoked(key) => account.to_owned(),
        _ => return message(StatusCode::UNAUTHORIZED, "Invalid API key"),
    };
    let st = sim.state();
    let Some(order) = st
        .courier
        .by_ref(&reference)
        .filter(|c| c.account == account)
    else {
        return message(StatusCode::NOT_FOUND, "Order not found");
    };
    let (code, since) = order.status_at(Instant::now(), sim.config.status_step);
    let (_, phone) = order.customer();
    axum::Json(json!({"status": "success", "data": {
        "orderId": order_id_of(order),
        "reference": order.reference(),
        "phoneNumber": phone,
        "network": "MTN",
        "capacity": "5",
        "price": 23.5,
        "orderStatus": status_of(code),
        "createdAt": since.to_rfc3339_opts(SecondsFormat::Millis, true),
        "updatedAt": since.to_rfc3339_opts(SecondsFormat::Millis, true),
    }}))
    .into_response()
}

/// Injected failures: Datamart's `{"message"}` body.
pub(crate) fn fault_response(status: StatusCode, _retry_after: Option<u64>) -> Response {
    message(status, status.canonical_reason().unwrap_or("Error"))
}
