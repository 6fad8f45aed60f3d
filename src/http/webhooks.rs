//! `POST /webhooks/woocommerce/{store}`: signed order webhooks. Verify, dedupe,
//! upsert the order, enqueue what follows, answer at once (WooCommerce
//! disables a webhook after 5 failed deliveries). Bad input gets a JSON error
//! naming what is wrong and enqueues nothing.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;

use crate::domain::payment::is_payable;
use crate::domain::{JobKind, Source};
use crate::http::{ApiError, AppState};
use crate::providers::woocommerce::WooOrder;
use crate::queue::NewJob;

/// Largest webhook body accepted by default (an order JSON is a few KiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// Topics that carry an order.
const ORDER_TOPICS: [&str; 2] = ["order.created", "order.updated"];

fn bad(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError(status, message.into())
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

/// The body, refused with 413 past `limit` bytes.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        bad(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body is larger than {limit} bytes"),
        )
    })
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The webhook endpoint.
pub async fn woocommerce(
    State(state): State<AppState>,
    Path(store): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Some(secret) = state.webhook_secrets.get(&store) else {
        return Err(bad(
            StatusCode::NOT_FOUND,
            format!("unknown store '{store}'"),
        ));
    };
    let body = read_body(body, state.webhook_body_limit).await?;
    let content_type = content_type(&headers);
    let signature = headers
        .get("x-wc-webhook-signature")
        .and_then(|v| v.to_str().ok());
    // WooCommerce pings a new webhook with an unsigned form body and expects 200.
    if signature.is_none()
        && content_type.starts_with("application/x-www-form-urlencoded")
        && body.starts_with(b"webhook_id=")
    {
        return Ok((StatusCode::OK, Json(serde_json::json!({ "ping": true }))));
    }
    if !content_type.starts_with("application/json") {
        return Err(bad(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type application/json, got '{content_type}'"),
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
    if !signature_matches(secret.expose_secret().as_bytes(), &body, signature) {
        return Err(bad(
            StatusCode::UNAUTHORIZED,
            "X-WC-Webhook-Signature does not match the body",
        ));
    }
    let topic = headers
        .get("x-wc-webhook-topic")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("order.updated");
    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    if !ORDER_TOPICS.contains(&topic) {
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "ignored_topic": topic })),
        ));
    }
    let order: WooOrder = serde_json::from_value(json)
        .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("order: {e}")))?;
    let modified = order
        .date_modified_gmt
        .clone()
        .or_else(|| order.date_modified.clone())
        .ok_or_else(|| {
            bad(
                StatusCode::BAD_REQUEST,
                "order: missing field `date_modified_gmt`",
            )
        })?;
    let imported = crate::jobs::import_orders::to_imported(&store, &order)
        .map_err(|e| bad(StatusCode::BAD_REQUEST, e.to_string()))?;

    let db = &state.deps.db;
    if !crate::ledger::webhooks::first_delivery(db, &store, order.id, &modified, topic).await? {
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "duplicate": true })),
        ));
    }
    match accept(&state, &store, imported).await {
        Ok(jobs) => Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "enqueued": jobs })),
        )),
        Err(e) => {
            // Let WooCommerce's retry deliver it again.
            let _ = crate::ledger::webhooks::forget(db, &store, order.id, &modified).await;
            Err(e)
        }
    }
}

/// `POST /webhooks/courier/{account}`: a Maystro status change enqueues
/// `refresh_status` for the matching order, which then asks the courier
/// with the store's own key (so a forged call can only cause a poll). The
/// body is `{"event":"OrderStatusChanged","payload":{"external_order_id",
/// "status","display_id_order"}}`, plain or base64-encoded (once or twice,
/// as reported; UNCONFIRMED).
pub async fn courier(
    State(state): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Some(stores) = state.courier_accounts.get(&account) else {
        return Err(bad(
            StatusCode::NOT_FOUND,
            format!("unknown courier account '{account}'"),
        ));
    };
    let body = read_body(body, state.webhook_body_limit).await?;
    let content_type = content_type(&headers);
    if !content_type.is_empty()
        && !content_type.starts_with("application/json")
        && !content_type.starts_with("text/plain")
    {
        return Err(bad(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("expected Content-Type application/json, got '{content_type}'"),
        ));
    }
    let event = decode_courier_event(&body).map_err(|e| bad(StatusCode::BAD_REQUEST, e))?;
    let reference = event
        .pointer("/payload/external_order_id")
        .and_then(|v| {
            v.as_str()
                .map(str::to_owned)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
        })
        .ok_or_else(|| {
            bad(
                StatusCode::BAD_REQUEST,
                "missing field `payload.external_order_id`",
            )
        })?;
    let order = crate::ledger::orders::by_reference(&state.deps.db, &reference).await?;
    let Some(order) = order.filter(|o| stores.contains(&o.store)) else {
        return Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "matched": false, "order": reference })),
        ));
    };
    let job = NewJob::for_order(JobKind::RefreshStatus, &order.store, &order.reference);
    let (envelopes, _) = state
        .deps
        .enqueuer
        .enqueue(Source::Webhook, vec![job])
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "matched": true, "job_id": envelopes[0].job_id })),
    ))
}

/// A courier event: JSON, or JSON base64-encoded once or twice.
fn decode_courier_event(body: &[u8]) -> Result<serde_json::Value, String> {
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

/// Upsert the order and enqueue what follows it.
async fn accept(
    state: &AppState,
    store: &str,
    order: crate::ledger::orders::ImportedOrder,
) -> Result<Vec<serde_json::Value>, ApiError> {
    let db = &state.deps.db;
    crate::ledger::orders::upsert(db, store, std::slice::from_ref(&order)).await?;
    let row = crate::ledger::orders::by_reference(db, &order.reference).await?;
    let mut jobs = Vec::new();
    if is_payable(&order.shop_status) {
        jobs.push(NewJob::for_order(
            JobKind::CreateInvoice,
            store,
            &order.reference,
        ));
    }
    if row.is_some_and(|r| r.courier_order_id.is_some()) {
        jobs.push(NewJob::for_order(
            JobKind::RefreshStatus,
            store,
            &order.reference,
        ));
    }
    let (envelopes, _) = state.deps.enqueuer.enqueue(Source::Webhook, jobs).await?;
    Ok(envelopes
        .iter()
        .map(|e| serde_json::json!({ "kind": e.kind, "job_id": e.job_id }))
        .collect())
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
