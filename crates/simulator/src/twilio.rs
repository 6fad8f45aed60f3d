//! Twilio Messages: `POST` and `GET /2010-04-01/Accounts/{sid}/Messages.json`
//! with Basic auth (`AccountSid:AuthToken`), Twilio's error bodies
//! (`{code, message, more_info, status}`), and `GET .../Accounts/{sid}.json`.
//!
//! Accepted texts go to the same log as mNotify's (`SimHandle::sms_messages_to`,
//! recipient as sent: E.164). Twilio's status callbacks are not sent by the
//! simulator (it has no HTTP client); [`status_callback`] builds one, signed
//! as Twilio signs it, for a test or the demo to post.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha1::Sha1;

use crate::http::{json_response, query_get, query_pairs};
use crate::sim::Sim;
use crate::state::SmsRecord;

/// The Twilio routes (no faults: `server` puts them behind the middleware).
pub(crate) fn routes(sim: &Arc<Sim>) -> Router {
    Router::new()
        .route(
            "/twilio/2010-04-01/Accounts/{sid}/Messages.json",
            get(list).post(create),
        )
        .route("/twilio/2010-04-01/Accounts/{account}", get(account))
        .with_state(Arc::clone(sim))
}

/// A Twilio error body with its `code`.
fn error(status: StatusCode, code: u32, message: &str) -> Response {
    json_response(
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        }),
    )
}

/// Basic `AccountSid:AuthToken` for the account `sid` of the path, or 401 (20003).
fn authenticate(sim: &Sim, headers: &HeaderMap, sid: &str) -> Result<(), Response> {
    let refused = || error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
    let encoded = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .ok_or_else(refused)?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(refused)?;
    let (user, token) = decoded.split_once(':').ok_or_else(refused)?;
    let config = &sim.config;
    let known = !config.twilio_account_sid.is_empty()
        && user == config.twilio_account_sid
        && sid == config.twilio_account_sid
        && token == config.twilio_auth_token
        && !sim.is_revoked(token);
    if known {
        Ok(())
    } else {
        Err(refused())
    }
}

/// Whether `to` is an E.164 number (`+` and 8 to 15 digits).
fn is_e164(to: &str) -> bool {
    to.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit())
    })
}

fn message_json(m: &SmsRecord, status: &str) -> Value {
    json!({
        "sid": m.message_id,
        "status": status,
        "to": m.recipient,
        "from": m.sender,
        "body": m.message,
        "date_created": m.sent_at,
        "date_sent": m.sent_at,
        "error_code": null,
        "error_message": null,
        "num_segments": "1",
    })
}

/// `POST .../Messages.json`: `To`, `From`, `Body` (form). 21211 for a `To`
/// that is not E.164, 21602 for an empty body; otherwise 201 `queued`, after
/// the reply delay if one is set (the text is recorded first, as a gateway
/// whose answer is lost still sends).
async fn create(
    State(sim): State<Arc<Sim>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(res) = authenticate(&sim, &headers, &sid) {
        return res;
    }
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let (to, from, text) = (field("To"), field("From"), field("Body"));
    if !is_e164(&to) {
        return error(
            StatusCode::BAD_REQUEST,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    if text.is_empty() {
        return error(StatusCode::BAD_REQUEST, 21602, "Message body is required.");
    }
    let record = {
        let mut st = sim.state();
        let record = SmsRecord {
            recipient: to,
            sender: from,
            message: text,
            message_id: format!("SM{}", st.random_id()),
            sent_at: Utc::now().to_rfc2822(),
        };
        st.sms.push(record.clone());
        record
    };
    sim.pause(sim.twilio_reply_delay()).await;
    json_response(StatusCode::CREATED, message_json(&record, "queued"))
}

/// `GET .../Messages.json?To=&PageSize=`: texts, newest first.
async fn list(
    State(sim): State<Arc<Sim>>,
    Path(sid): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(res) = authenticate(&sim, &headers, &sid) {
        return res;
    }
    let pairs = query_pairs(uri.query());
    let to = query_get(&pairs, "To");
    let size = query_get(&pairs, "PageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 1000);
    let messages: Vec<Value> = sim
        .state()
        .sms
        .iter()
        .rev()
        .filter(|m| m.message_id.starts_with("SM"))
        .filter(|m| to.is_none_or(|t| m.recipient == t))
        .take(size)
        .map(|m| message_json(m, "sent"))
        .collect();
    axum::Json(json!({"messages": messages, "page": 0, "page_size": size, "next_page_uri": null}))
        .into_response()
}

/// `GET .../Accounts/{sid}.json`: the account and its status.
async fn account(
    State(sim): State<Arc<Sim>>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(sid) = account.strip_suffix(".json") else {
        return error(
            StatusCode::NOT_FOUND,
            20404,
            "The requested resource was not found",
        );
    };
    if let Err(res) = authenticate(&sim, &headers, sid) {
        return res;
    }
    axum::Json(json!({"sid": sid, "status": "active", "type": "Full"})).into_response()
}

/// A status callback for message `sid` reaching `status`, as Twilio would
/// post it to `url`: its form fields and `X-Twilio-Signature` (base64 of the
/// HMAC-SHA1, keyed with the auth token, of the URL followed by the fields
/// sorted by name, each name then value).
pub(crate) fn status_callback(
    sim: &Sim,
    url: &str,
    sid: &str,
    status: &str,
) -> (Vec<(String, String)>, String) {
    let config = &sim.config;
    let mut fields: Vec<(String, String)> = vec![
        ("AccountSid".into(), config.twilio_account_sid.clone()),
        ("ApiVersion".into(), "2010-04-01".into()),
        ("MessageSid".into(), sid.into()),
        ("SmsSid".into(), sid.into()),
        ("MessageStatus".into(), status.into()),
        ("SmsStatus".into(), status.into()),
    ];
    if let Some(m) = sim.state().sms.iter().find(|m| m.message_id == sid) {
        fields.push(("To".into(), m.recipient.clone()));
        fields.push(("From".into(), m.sender.clone()));
    }
    if status == "undelivered" || status == "failed" {
        fields.push(("ErrorCode".into(), "30003".into()));
    }
    let mut signed = url.to_owned();
    let mut sorted = fields.clone();
    sorted.sort();
    for (name, value) in &sorted {
        signed.push_str(name);
        signed.push_str(value);
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(config.twilio_auth_token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(signed.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (fields, signature)
}

/// Injected failures in Twilio's error shape: 20429 for 429, 20500 for 5xx.
pub(crate) fn fault_response(status: StatusCode, _retry_after: Option<u64>) -> Response {
    let (code, message) = match status.as_u16() {
        429 => (20429, "Too Many Requests"),
        401 => (20003, "Authenticate"),
        404 => (20404, "The requested resource was not found"),
        s if s >= 500 => (20500, "Internal Server Error"),
        _ => (21602, "Bad request"),
    };
    error(status, code, message)
}
