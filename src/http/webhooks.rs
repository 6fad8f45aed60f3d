//! `POST /webhooks/woocommerce/{store}`: signed order webhooks. Verify, dedupe,
//! store the order, enqueue what follows, answer at once (WooCommerce
//! disables a webhook after 5 failed deliveries and never retries one).
//!
//! What each request gets:
//! - unauthenticated or malformed: a 4xx with a JSON error naming what is
//!   wrong, and nothing enqueued. The body is read only when a signature is
//!   there to check it against, under the limits of [`crate::http::limits`].
//! - a signed order we cannot store (a total out of range, a reference
//!   collision, ...): 200 `{"rejected": {...}}`, recorded in
//!   `rejected_orders`. Never a 5xx for bad data: a 5xx would only make
//!   WooCommerce count a failure and, repeated, switch the webhook off.
//! - a signed order older than the ledger's copy: 200 `{"stale": true}`,
//!   nothing changed (latest wins).
//! - a redelivery of a change already received: 200 `{"duplicate": true}`.
//! - otherwise 202 with the jobs enqueued. A 503 only when our own ledger or
//!   queue is unreachable (the periodic import catches up).
//!
//! `POST /webhooks/courier/{account}[/{token}]`: see [`courier`].
//!
//! `POST /webhooks/sms/twilio`: see [`twilio_status`].

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::payment::{cancels_invoice, is_payable};
use crate::domain::{JobKind, Source};
use crate::http::limits::{self, BodyRules};
use crate::http::{AppState, Refusal};
use crate::ledger::rejected::RejectionSource;
use crate::providers::woocommerce::WooOrder;
use crate::queue::NewJob;

/// Largest webhook body accepted by default (an order JSON is a few KiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;
/// WooCommerce's ping is `webhook_id=<id>`.
const PING_BODY_LIMIT: usize = 1024;
/// A courier event is a reference, a status and a tracking number.
const COURIER_BODY_LIMIT: usize = 16 * 1024;
/// Default courier webhook events per account per second (one second's
/// window, shared by every api replica through Redis). A batch dispatch
/// changes many orders at once; past this the courier is asked to retry and
/// the periodic refresh catches up.
pub const DEFAULT_COURIER_RATE: u32 = 50;
/// Events about one order within this window enqueue one poll: the poll
/// reads the current status, whichever event came first.
pub const COURIER_DEDUPE_WINDOW_SECS: u64 = 15;
/// The header a courier can send its secret in, instead of the path.
pub const COURIER_TOKEN_HEADER: &str = "x-ordersync-token";

/// A Twilio status callback is a few dozen form fields.
const TWILIO_BODY_LIMIT: usize = 16 * 1024;

/// Topics that carry an order.
const ORDER_TOPICS: [&str; 2] = ["order.created", "order.updated"];

fn bad(status: StatusCode, message: impl Into<String>) -> Refusal {
    Refusal::new(status, message)
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, Json(body)).into_response()
}

/// Our own ledger or queue failed: not the sender's fault.
fn unavailable(what: &str, error: impl std::fmt::Display) -> Refusal {
    tracing::error!(error = %error, "webhook: {what} failed");
    Refusal::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("{what} is unavailable; the periodic import will catch up"),
    )
    .retry_after(30)
}

/// Whether `signature` (base64) is the HMAC-SHA256 of `body` under `secret`,
/// compared in constant time.
pub fn signature_matches(secret: &[u8], body: &[u8], signature: &str) -> bool {
    let Ok(expected) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn rules(state: &AppState, limit: usize) -> BodyRules {
    BodyRules {
        limit,
        timeout: state.limits.body_timeout,
        budget: state.limits.body_budget.clone(),
    }
}

/// `POST /webhooks/sms/twilio`: Twilio's `StatusCallback` for a text we
/// sent. Twilio signs it (`X-Twilio-Signature`, see
/// [`crate::providers::twilio::signature`]) over the URL it called, which is
/// our configured `status_callback_url`, and the form fields. A missing or
/// wrong signature is 401 and records nothing; a good one records
/// `MessageStatus` and `ErrorCode` on the text's row and answers 200
/// (`recorded: false` for a message id that is not ours).
pub async fn twilio_status(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let config = &state.config;
    let url = match (
        config.sms_provider,
        config.sms.status_callback_url.as_deref(),
    ) {
        (crate::domain::Provider::Twilio, Some(url)) => url,
        _ => {
            return Err(bad(
                StatusCode::NOT_FOUND,
                "no Twilio SMS account with a status_callback_url is configured",
            ))
        }
    };
    let Some(signature) = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return Err(bad(
            StatusCode::UNAUTHORIZED,
            "missing X-Twilio-Signature header",
        ));
    };
    if limits::media_type(&headers).as_deref() != Some("application/x-www-form-urlencoded") {
        return Err(bad(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "expected Content-Type application/x-www-form-urlencoded, got '{}'",
                limits::content_type_text(&headers)
            ),
        ));
    }
    let body = limits::read_body(body, &headers, &rules(&state, TWILIO_BODY_LIMIT)).await?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(&body.bytes)
        .into_owned()
        .collect();
    if !crate::providers::twilio::signature_matches(
        url,
        &params,
        config.sms_key.expose_secret(),
        signature,
    ) {
        return Err(bad(
            StatusCode::UNAUTHORIZED,
            "X-Twilio-Signature does not match the URL and fields",
        ));
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(sid), Some(status)) = (field("MessageSid"), field("MessageStatus")) else {
        return Err(bad(
            StatusCode::BAD_REQUEST,
            "a status callback names MessageSid and MessageStatus",
        ));
    };
    let error_code = field("ErrorCode").and_then(|c| c.trim().parse::<i32>().ok());
    let recorded = crate::ledger::sms::record_receipt(&state.deps.db, sid, status, error_code)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "twilio status callback: the ledger failed");
            Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the ledger is unavailable; the receipt was not recorded",
            )
            .retry_after(30)
        })?;
    Ok(answer(
        StatusCode::OK,
        json!({ "recorded": recorded, "message_sid": sid, "status": status }),
    ))
}

/// The webhook endpoint.
pub async fn woocommerce(
    State(state): State<AppState>,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let Some(secret) = state.webhook_secrets.get(&store) else {
        return Err(bad(
            StatusCode::NOT_FOUND,
            format!("unknown store '{}'", store.escape_debug()),
        ));
    };
    // Too large is too large, signed or not: say so before anything else.
    if limits::content_length(&headers).is_some_and(|n| n > state.webhook_body_limit as u64) {
        return Err(bad(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than {} bytes", state.webhook_body_limit),
        ));
    }
    let media = limits::media_type(&headers);
    let signature = headers
        .get("x-wc-webhook-signature")
        .and_then(|v| v.to_str().ok());
    // WooCommerce pings a new webhook with an unsigned form body and expects 200.
    if signature.is_none() && media.as_deref() == Some("application/x-www-form-urlencoded") {
        let body = limits::read_body(body, &headers, &rules(&state, PING_BODY_LIMIT)).await?;
        if body.bytes.starts_with(b"webhook_id=") {
            return Ok(answer(StatusCode::OK, json!({ "ping": true })));
        }
        return Err(bad(
            StatusCode::UNAUTHORIZED,
            "missing X-WC-Webhook-Signature header",
        ));
    }
    if media.as_deref() != Some("application/json") {
        return Err(bad(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "expected Content-Type application/json, got '{}'",
                limits::content_type_text(&headers)
            ),
        ));
    }
    let Some(secret) = secret else {
        return Err(bad(
            StatusCode::UNAUTHORIZED,
            format!("store '{store}' has no webhook secret configured"),
        ));
    };
    let Some(signature) = signature else {
        return Err(bad(
            StatusCode::UNAUTHORIZED,
            "missing X-WC-Webhook-Signature header",
        ));
    };
    // Only now is the body read: there is a signature to check it against.
    let body = limits::read_body(body, &headers, &rules(&state, state.webhook_body_limit)).await?;
    if !signature_matches(secret.expose_secret().as_bytes(), &body.bytes, signature) {
        return Err(bad(
            StatusCode::UNAUTHORIZED,
            "X-WC-Webhook-Signature does not match the body",
        ));
    }
    let topic = headers
        .get("x-wc-webhook-topic")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("order.updated");
    let json: serde_json::Value = serde_json::from_slice(&body.bytes)
        .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    if !ORDER_TOPICS.contains(&topic) {
        return Ok(answer(StatusCode::OK, json!({ "ignored_topic": topic })));
    }
    let order: WooOrder = serde_json::from_value(json)
        .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("order: {e}")))?;
    let modified_text = order
        .date_modified_gmt
        .clone()
        .or_else(|| order.date_modified.clone())
        .ok_or_else(|| {
            bad(
                StatusCode::BAD_REQUEST,
                "order: missing field `date_modified_gmt`",
            )
        })?;
    let db = &state.deps.db;
    // Dedupe on the instant, not its spelling. An unreadable time cannot be
    // deduplicated; the order is then refused below, naming the field.
    let modified = crate::intake::parse_woo_date(&crate::intake::strip_nul(&modified_text));
    if let Some(modified) = modified {
        let first = crate::ledger::webhooks::first_delivery(db, &store, order.id, modified, topic)
            .await
            .map_err(|e| unavailable("the ledger", e))?;
        if !first {
            return Ok(answer(StatusCode::OK, json!({ "duplicate": true })));
        }
    }
    let shop_order_id = order.id;
    match accept(&state, &store, order).await {
        Ok(response) => Ok(response),
        Err(refused) => {
            if let Some(modified) = modified {
                // Let a redelivery of this change be processed.
                let _ = crate::ledger::webhooks::forget(db, &store, shop_order_id, modified).await;
            }
            Err(refused)
        }
    }
}

/// Store the order (or refuse it, or find it stale) and enqueue what follows.
async fn accept(state: &AppState, store: &str, order: WooOrder) -> Result<Response, Refusal> {
    let db = &state.deps.db;
    let intake = crate::intake::store_orders(
        db,
        store,
        std::slice::from_ref(&order),
        &[],
        RejectionSource::Webhook,
        None,
    )
    .await
    .map_err(|e| unavailable("the ledger", e))?;
    if let Some(rejection) = intake.rejected.first() {
        return Ok(answer(
            StatusCode::OK,
            json!({ "rejected": rejection, "error": rejection.to_string() }),
        ));
    }
    let Some(reference) = intake.applied.first() else {
        return Ok(answer(
            StatusCode::OK,
            json!({ "stale": true, "order": order.id }),
        ));
    };
    let row = crate::ledger::orders::by_reference(db, reference)
        .await
        .map_err(|e| unavailable("the ledger", e))?;
    let mut jobs = Vec::new();
    let shop_status = row
        .as_ref()
        .map(|r| r.shop_status.as_str())
        .unwrap_or_default();
    if is_payable(shop_status) {
        jobs.push(NewJob::for_order(JobKind::CreateInvoice, store, reference));
    }
    if cancels_invoice(shop_status) {
        // Even with no invoice yet: the job makes sure none will be made.
        jobs.push(NewJob::for_order(JobKind::CancelInvoice, store, reference));
    }
    // Known at the courier: by its id (Maystro) or tracking number (Yalidine).
    if row
        .as_ref()
        .is_some_and(|r| r.courier_order_id.is_some() || r.tracking_number.is_some())
    {
        jobs.push(NewJob::for_order(JobKind::RefreshStatus, store, reference));
    }
    let (envelopes, _) = state
        .deps
        .enqueuer
        .enqueue(Source::Webhook, jobs)
        .await
        .map_err(|e| unavailable("the queue", format!("{e:#}")))?;
    let jobs: Vec<serde_json::Value> = envelopes
        .iter()
        .map(|e| json!({ "kind": e.kind, "job_id": e.job_id }))
        .collect();
    Ok(answer(StatusCode::ACCEPTED, json!({ "enqueued": jobs })))
}

/// `POST /webhooks/courier/{account}`: a Maystro status change enqueues
/// `refresh_status` for the matching order, which then asks the courier
/// with the store's own key (so a forged call can only cause a poll). The
/// body is `{"event":"OrderStatusChanged","payload":{"external_order_id",
/// "status","display_id_order"}}`, plain or base64-encoded (once or twice,
/// as reported; UNCONFIRMED).
///
/// Maystro signs nothing, so an account can have a secret
/// (`webhook_secret_env`) that the courier presents in the URL path
/// (`/webhooks/courier/{account}/{secret}`) or in `X-Ordersync-Token`.
/// Each account may send [`DEFAULT_COURIER_RATE`] events a second (429
/// past it); events about one order within [`COURIER_DEDUPE_WINDOW_SECS`]
/// enqueue one poll. Every accepted event is answered alike, 202
/// `{"accepted": true}`, whether the reference is ours, unknown, or a
/// duplicate: the answer (and its timing: the look-up runs after it) tells
/// nothing about which references exist.
pub async fn courier(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let token = headers
        .get(COURIER_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    courier_event(state, account, token, headers, body).await
}

/// `POST /webhooks/courier/{account}/{token}`: [`courier`], with the
/// account's secret in the path (for couriers that only take a URL).
pub async fn courier_with_token(
    State(state): State<AppState>,
    Path((account, token)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    courier_event(state, account, Some(token), headers, body).await
}

async fn courier_event(
    state: AppState,
    account: String,
    token: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Refusal> {
    let (Some(stores), Some(secret)) = (
        state.courier_accounts.get(&account),
        state.courier_webhook_secrets.get(&account),
    ) else {
        return Err(bad(
            StatusCode::NOT_FOUND,
            format!("unknown courier account '{}'", account.escape_debug()),
        ));
    };
    if let Some(secret) = secret {
        let presented = token.unwrap_or_default();
        if !bool::from(
            presented
                .as_bytes()
                .ct_eq(secret.expose_secret().as_bytes()),
        ) {
            return Err(bad(
                StatusCode::UNAUTHORIZED,
                "missing or wrong courier webhook token",
            ));
        }
    }
    if let Some(media) = limits::media_type(&headers) {
        if media != "application/json" && media != "text/plain" {
            return Err(bad(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "expected Content-Type application/json, got '{}'",
                    limits::content_type_text(&headers)
                ),
            ));
        }
    }
    let mut redis = state.deps.enqueuer.connection();
    let namespace = state.deps.enqueuer.namespace().to_owned();
    if !within_rate(&mut redis, &namespace, &account, state.courier_webhook_rate)
        .await
        .map_err(|e| unavailable("the queue", e))?
    {
        return Err(bad(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "more than {} events a second for courier account '{account}'; retry later",
                state.courier_webhook_rate
            ),
        )
        .retry_after(1));
    }
    let body = limits::read_body(body, &headers, &rules(&state, COURIER_BODY_LIMIT)).await?;
    let event = decode_courier_event(&body.bytes).map_err(|e| bad(StatusCode::BAD_REQUEST, e))?;
    let reference = event
        .pointer("/payload/external_order_id")
        .and_then(|v| {
            v.as_str()
                .map(crate::intake::strip_nul)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        })
        .filter(|r| !r.is_empty() && r.len() <= 200)
        .ok_or_else(|| {
            bad(
                StatusCode::BAD_REQUEST,
                "missing field `payload.external_order_id`",
            )
        })?;
    let first = first_event_in_window(&mut redis, &namespace, &account, &reference)
        .await
        .map_err(|e| unavailable("the queue", e))?;
    if first {
        let stores = stores.clone();
        tokio::spawn(async move {
            if let Err(e) = poll_matching_order(&state, &stores, &reference).await {
                tracing::warn!(account = %account, order = %reference, error = %e,
                    "courier webhook: enqueueing the status poll failed");
            }
        });
    }
    Ok(answer(StatusCode::ACCEPTED, json!({ "accepted": true })))
}

/// Enqueue `refresh_status` for the order with `reference`, if it belongs
/// to one of `stores`.
async fn poll_matching_order(
    state: &AppState,
    stores: &[String],
    reference: &str,
) -> anyhow::Result<()> {
    let order = crate::ledger::orders::by_reference(&state.deps.db, reference).await?;
    let Some(order) = order.filter(|o| stores.contains(&o.store)) else {
        tracing::debug!(order = %reference, "courier webhook: no such order of this account");
        return Ok(());
    };
    let job = NewJob::for_order(JobKind::RefreshStatus, &order.store, &order.reference);
    state
        .deps
        .enqueuer
        .enqueue(Source::Webhook, vec![job])
        .await?;
    Ok(())
}

/// Count one event of `account` in this second's window; false past `rate`.
async fn within_rate(
    redis: &mut redis::aio::ConnectionManager,
    namespace: &str,
    account: &str,
    rate: u32,
) -> redis::RedisResult<bool> {
    let second = chrono::Utc::now().timestamp();
    let key = format!("{namespace}:courier-webhook:rate:{account}:{second}");
    let (count,): (u64,) = redis::pipe()
        .atomic()
        .incr(&key, 1)
        .expire(&key, 2)
        .ignore()
        .query_async(redis)
        .await?;
    Ok(count <= u64::from(rate))
}

/// Whether this is the first event about `reference` of `account` within
/// the dedupe window (`SET NX EX`: one winner across replicas).
async fn first_event_in_window(
    redis: &mut redis::aio::ConnectionManager,
    namespace: &str,
    account: &str,
    reference: &str,
) -> redis::RedisResult<bool> {
    let key = format!("{namespace}:courier-webhook:seen:{account}:{reference}");
    let set: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(COURIER_DEDUPE_WINDOW_SECS)
        .query_async(redis)
        .await?;
    Ok(set.is_some())
}

/// A courier event: JSON, or JSON base64-encoded once or twice.
pub fn decode_courier_event(body: &[u8]) -> Result<serde_json::Value, String> {
    let mut bytes = body.to_vec();
    for _ in 0..3 {
        if let Ok(value @ serde_json::Value::Object(_)) =
            serde_json::from_slice::<serde_json::Value>(&bytes)
        {
            return Ok(value);
        }
        let text = String::from_utf8_lossy(&bytes)
            .trim()
            .trim_matches('"')
            .to_owned();
        match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
            Ok(decoded) => bytes = decoded,
            Err(_) => break,
        }
    }
    Err("body is neither a JSON object nor base64 of one".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn courier_events_decode_plain_or_base64_once_or_twice() {
        let event = br#"{"event":"OrderStatusChanged","payload":{"external_order_id":"ALPH-1001","status":41}}"#;
        let once = base64::engine::general_purpose::STANDARD.encode(event);
        let twice = base64::engine::general_purpose::STANDARD.encode(&once);
        for body in [event.to_vec(), once.into_bytes(), twice.into_bytes()] {
            let v = decode_courier_event(&body).unwrap();
            assert_eq!(v["payload"]["external_order_id"], "ALPH-1001");
        }
        assert!(decode_courier_event(b"%%%").is_err());
    }

    proptest::proptest! {
        #[test]
        fn courier_bodies_never_panic_the_decoder(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            let _ = decode_courier_event(&body);
        }

        #[test]
        fn only_the_real_signature_matches(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256), guess in "[A-Za-z0-9+/=]{0,64}") {
            let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
            mac.update(&body);
            let real = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
            proptest::prop_assert!(signature_matches(b"s3cret", &body, &real));
            proptest::prop_assert_eq!(signature_matches(b"s3cret", &body, &guess), guess.trim() == real);
        }
    }

    #[test]
    fn signatures_are_base64_hmac_sha256_of_the_raw_body() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{\"id\":1}");
        let good = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert!(signature_matches(b"s3cret", b"{\"id\":1}", &good));
        assert!(!signature_matches(b"other", b"{\"id\":1}", &good));
        assert!(!signature_matches(b"s3cret", b"{\"id\":2}", &good));
        assert!(!signature_matches(b"s3cret", b"{\"id\":1}", "not base64!"));
    }
}
