//! mNotify BMS v2 quick SMS: `POST /api/sms/quick?key=...`.
//!
//! Every accepted text is recorded per recipient, so tests can assert that a
//! customer was texted exactly once per status change. Error shapes other than
//! the bad-key 401 are unconfirmed upstream; they use mNotify's success envelope
//! (`status`, `code`, `message`) with `status: "error"`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::http::{json_response, query_get, query_pairs};
use crate::sim::Sim;
use crate::state::SmsRecord;

/// mNotify sender ids are at most 11 characters.
const MAX_SENDER_LEN: usize = 11;
/// Characters per credit (one GSM-7 segment).
const SEGMENT_LEN: usize = 160;

/// The mNotify routes (no faults: `server` puts them behind the middleware).
pub(crate) fn routes(sim: &Arc<Sim>) -> Router {
    Router::new()
        .route("/mnotify/api/sms/quick", post(quick))
        .route("/mnotify/api/balance/sms", get(balance))
        .with_state(Arc::clone(sim))
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"status": "error", "code": code, "message": message}),
    )
}

fn bad_key() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        json!({"error": "invalid api key. Please check your key and try again"}),
    )
}

/// Recipients given as a list or, leniently, one string.
fn recipients(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|r| match r {
                Value::String(s) => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .collect(),
        Some(Value::String(s)) if !s.trim().is_empty() => vec![s.trim().to_string()],
        _ => Vec::new(),
    }
}

/// `GET /api/balance/sms?key=`: the credit left (the shape seven public
/// clients read; unconfirmed by mNotify's docs).
async fn balance(State(sim): State<Arc<Sim>>, uri: Uri) -> Response {
    let pairs = query_pairs(uri.query());
    let key = query_get(&pairs, "key").unwrap_or_default();
    if key.is_empty() || key != sim.config.sms_api_key || sim.is_revoked(key) {
        return bad_key();
    }
    let credit = sim.state().sms_credit;
    axum::Json(json!({"status": "success", "balance": credit})).into_response()
}

/// `POST /api/sms/quick?key=`.
async fn quick(State(sim): State<Arc<Sim>>, uri: Uri, body: axum::body::Bytes) -> Response {
    let pairs = query_pairs(uri.query());
    let key = query_get(&pairs, "key").unwrap_or_default();
    if key.is_empty() || key != sim.config.sms_api_key || sim.is_revoked(key) {
        return bad_key();
    }
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "4000",
            "The request body must be a JSON object.",
        );
    };
    let to = recipients(req.get("recipient"));
    if to.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "4001",
            "The recipient field is required: a non-empty list of phone numbers.",
        );
    }
    let message = req
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if message.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "4002",
            "The message field is required.",
        );
    }
    let sender = req
        .get("sender")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if sender.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "4003",
            "The sender field is required.",
        );
    }
    if sender.chars().count() > MAX_SENDER_LEN {
        return error(
            StatusCode::BAD_REQUEST,
            "4004",
            "The sender may not be greater than 11 characters.",
        );
    }
    let segments = message.chars().count().div_ceil(SEGMENT_LEN).max(1);
    let credit_used = i64::try_from(segments * to.len()).unwrap_or(i64::MAX);
    let sent_at = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut st = sim.state();
    let batch_id = st.random_id();
    let message_id = st.random_id();
    for recipient in &to {
        st.sms.push(SmsRecord {
            recipient: recipient.clone(),
            sender: sender.to_string(),
            message: message.to_string(),
            message_id: message_id.clone(),
            sent_at: sent_at.clone(),
        });
    }
    st.sms_credit = (st.sms_credit - credit_used).max(0);
    axum::Json(json!({
        "status": "success",
        "code": "2000",
        "message": "messages sent successfully",
        "summary": {
            "_id": batch_id,
            "message_id": message_id,
            "type": "API QUICK SMS",
            "total_sent": to.len(),
            "contacts": to.len(),
            "total_rejected": 0,
            "numbers_sent": to,
            "credit_used": credit_used,
            "credit_left": st.sms_credit,
        },
    }))
    .into_response()
}

/// Injected failures: the bad-key shape for 401, the error envelope otherwise.
pub(crate) fn fault_response(status: StatusCode) -> Response {
    if status == StatusCode::UNAUTHORIZED {
        return bad_key();
    }
    error(
        status,
        &status.as_u16().to_string(),
        status.canonical_reason().unwrap_or("Error"),
    )
}
