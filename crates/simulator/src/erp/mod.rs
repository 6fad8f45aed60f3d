//! ERPNext (Frappe) REST: Sales Invoice and Payment Entry create / list /
//! read / update (docstatus 0->1->2 only: 0->2 is a DocstatusTransitionError,
//! and an invoice a submitted payment links to cannot be cancelled), the
//! Mode of Payment list, and the `ping` / `get_logged_user` methods. Every
//! docstatus move is counted ([`crate::ErpCounts`]).
//!
//! Validation mirrors what bit the field report: an empty customer or item table
//! is a MandatoryError, a mode of payment outside the four configured names
//! (case-sensitive, so `cash` fails) is a LinkValidationError, all 417. Every
//! error body has Frappe's `exc_type` / `exception` / `exc` / `_server_messages`,
//! because clients must classify on `exc_type`, not only the status.

mod invoice;
mod list;
mod payment;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use chrono::Utc;
use serde_json::{json, Value};

use crate::http::json_response;
use crate::sim::Sim;
use crate::state::site_offset;

const SALES_INVOICE: &str = "Sales Invoice";
const PAYMENT_ENTRY: &str = "Payment Entry";
const MODE_OF_PAYMENT: &str = "Mode of Payment";
/// The modes of payment configured in the simulated ERP, exactly.
const MODES_OF_PAYMENT: [&str; 4] = ["Instapay", "Cash", "Kashier Card", "Kashier Wallet"];
/// Advertised in `X-RateLimit-Limit` on 429s.
const RATE_LIMIT: u64 = 300;

/// The Frappe routes (no faults: `server` puts them behind the middleware).
pub(crate) fn routes(sim: &Arc<Sim>) -> Router {
    Router::new()
        .route(
            "/erp/api/resource/{doctype}",
            get(list::list).post(invoice::create),
        )
        .route(
            "/erp/api/resource/{doctype}/{name}",
            get(invoice::read).put(invoice::update),
        )
        .route("/erp/api/method/{method}", get(method).post(method))
        .with_state(Arc::clone(sim))
}

/// A Frappe error: `exception` carries the Python repr, `_server_messages` the
/// user-facing text.
fn frappe_error(
    status: StatusCode,
    exc_type: &str,
    detail: &str,
    message: &str,
    title: &str,
) -> Response {
    let exception = if detail.is_empty() {
        format!("frappe.exceptions.{exc_type}")
    } else {
        format!("frappe.exceptions.{exc_type}: {detail}")
    };
    let traceback = format!(
        "Traceback (most recent call last):\n  File \"apps/frappe/frappe/app.py\", line 114, in application\n    response = frappe.api.handle(request)\n  File \"apps/frappe/frappe/api/__init__.py\", line 49, in handle\n    data = endpoint(**arguments)\n{exception}\n"
    );
    let mut body = json!({
        "exc_type": exc_type,
        "exception": exception,
        "exc": json!([traceback]).to_string(),
    });
    if !message.is_empty() {
        let msg =
            json!({"message": message, "title": title, "indicator": "red", "raise_exception": 1});
        body["_server_messages"] = json!([msg.to_string()]).to_string().into();
    }
    json_response(status, body)
}

fn validation(exc_type: &str, detail: &str, message: &str) -> Response {
    frappe_error(
        StatusCode::EXPECTATION_FAILED,
        exc_type,
        detail,
        message,
        "Message",
    )
}

fn not_found(what: &str) -> Response {
    frappe_error(
        StatusCode::NOT_FOUND,
        "DoesNotExistError",
        what,
        what,
        "Not Found",
    )
}

/// Checks `token key:secret` (or Basic `key:secret`). No header means Guest,
/// which Frappe refuses with 403; a wrong or revoked one is 401.
fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<(), Response> {
    let Some(raw) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return Err(frappe_error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            "",
            "Not permitted",
            "Not Permitted",
        ));
    };
    let pair = match raw.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("token") => {
            Some(rest.trim().to_string())
        }
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
            base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        }
        _ => None,
    };
    let ok = pair
        .as_deref()
        .and_then(|p| p.split_once(':'))
        .is_some_and(|(key, secret)| {
            key == sim.config.erp_api_key
                && secret == sim.config.erp_api_secret
                && !sim.is_revoked(key)
                && !sim.is_revoked(secret)
        });
    if ok {
        Ok(())
    } else {
        Err(frappe_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            "",
            "Invalid API key or secret",
            "Not Permitted",
        ))
    }
}

/// Frappe's timestamp format, site time.
fn frappe_now() -> String {
    Utc::now()
        .with_timezone(&site_offset())
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

fn frappe_today() -> String {
    Utc::now()
        .with_timezone(&site_offset())
        .format("%Y-%m-%d")
        .to_string()
}

fn modes_of_payment() -> Vec<Value> {
    MODES_OF_PAYMENT
        .iter()
        .map(|m| {
            let kind = if *m == "Cash" { "Cash" } else { "Bank" };
            json!({"name": m, "mode_of_payment": m, "type": kind, "enabled": 1, "doctype": MODE_OF_PAYMENT})
        })
        .collect()
}

/// `/api/method/ping` and `/api/method/frappe.auth.get_logged_user`, the
/// calls clients use as health and credential checks.
async fn method(
    State(sim): State<Arc<Sim>>,
    Path(method): Path<String>,
    headers: HeaderMap,
) -> Response {
    if method == "ping" {
        return axum::Json(json!({"message": "pong"})).into_response();
    }
    if let Err(res) = authenticate(&sim, &headers) {
        return res;
    }
    match method.as_str() {
        "frappe.auth.get_logged_user" => {
            axum::Json(json!({"message": "Administrator"})).into_response()
        }
        other => not_found(&format!("Failed to get method for command {other}")),
    }
}

fn timestamp_mismatch() -> Response {
    let msg = "Error: Document has been modified after you have opened it. Please refresh to get the latest document.";
    validation("TimestampMismatchError", msg, msg)
}

/// Injected failures in Frappe's shape; 429 also carries `X-RateLimit-*`.
pub(crate) fn fault_response(status: StatusCode, retry_after: Option<u64>) -> Response {
    match status.as_u16() {
        401 => frappe_error(
            status,
            "AuthenticationError",
            "",
            "Invalid API key or secret",
            "Not Permitted",
        ),
        403 => frappe_error(
            status,
            "PermissionError",
            "",
            "Not permitted",
            "Not Permitted",
        ),
        404 => not_found("Sales Invoice not found"),
        409 => {
            let msg = "Duplicate entry: document already exists";
            frappe_error(status, "DuplicateEntryError", msg, msg, "Message")
        }
        417 => timestamp_mismatch(),
        429 => {
            let msg =
                "You hit the rate limit because of too many requests. Please try after sometime.";
            let mut res = frappe_error(
                status,
                "TooManyRequestsError",
                msg,
                msg,
                "Rate Limit Exceeded",
            );
            let h = res.headers_mut();
            h.insert("x-ratelimit-limit", HeaderValue::from(RATE_LIMIT));
            h.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
            h.insert(
                "x-ratelimit-reset",
                HeaderValue::from(retry_after.unwrap_or(0)),
            );
            res
        }
        503 => frappe_error(
            status,
            "SessionStopped",
            "Session Stopped",
            "The site is under maintenance. Please try again later.",
            "Service Unavailable",
        ),
        s if s >= 500 => {
            let detail =
                "(1213, 'Deadlock found when trying to get lock; try restarting transaction')";
            frappe_error(
                status,
                "QueryDeadlockError",
                detail,
                "Internal Server Error",
                "Error",
            )
        }
        _ => {
            let msg = status.canonical_reason().unwrap_or("Error");
            frappe_error(status, "ValidationError", msg, msg, "Message")
        }
    }
}
