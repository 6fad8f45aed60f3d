//! Yalidine, as its API doc describes it: `X-API-ID` and `X-API-TOKEN`
//! headers, `{has_more, total_data, data, links}` pages (`page`,
//! `page_size` 1-1000, default 100), parcels filtered by `tracking` or
//! `order_id` (comma-separated lists), histories by `tracking`, per-account
//! quotas reported in `x-*-quota-left` headers, and 429 with `Retry-After`
//! over them.
//!
//! A Yalidine account's parcels are the simulator's courier orders of that
//! account (same seeded timelines, same `fail_next` and status pins), shown
//! with Yalidine's labels and `yal-` tracking numbers. Its `X-API-ID` is the
//! account name, its `X-API-TOKEN` the store's `courier_key`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, FixedOffset, Utc};
use serde_json::{json, Value};

use crate::config::CourierApi;
use crate::http::{json_response, origin, query_get, query_pairs, url_with_param};
use crate::rates::QuotaUse;
use crate::sim::Sim;
use crate::state::CourierOrder;

/// Parcels per page when `page_size` is not given.
const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest `page_size` Yalidine accepts.
const MAX_PAGE_SIZE: usize = 1000;
/// Yalidine writes times in Algerian time (UTC+1), without an offset.
const ALGERIA_UTC_OFFSET_SECS: i32 = 3600;
/// The reason a failed delivery attempt gives in the history.
pub(crate) const FAILED_ATTEMPT_REASON: &str = "Client absent";

/// The Yalidine routes (no faults: `server` puts them behind the middleware).
pub(crate) fn routes(sim: &Arc<Sim>) -> Router {
    Router::new()
        .route("/yalidine/v1/parcels/", get(parcels))
        .route("/yalidine/v1/parcels", get(parcels))
        .route("/yalidine/v1/histories/", get(histories))
        .route("/yalidine/v1/histories", get(histories))
        .with_state(Arc::clone(sim))
}

/// The Yalidine label the simulator shows for a courier timeline's Maystro
/// code (the timelines are Maystro's; each step is shown as the Yalidine
/// label of the same meaning). A code with no counterpart shows a label
/// Yalidine clients do not know, as a new label of theirs would.
pub(crate) fn label_of(code: i64) -> String {
    let label = match code {
        4 | 11 | 12 => "Pas encore expédié",
        5 | 6 | 15 | 22 => "En préparation",
        8 => "Centre",
        9 => "Expédié",
        31 => "Sorti en livraison",
        32 | 42 | 53 => "Tentative échouée",
        41 => "Livré",
        10 | 51 => "Echèc livraison",
        50 | 52 => "Retourné au vendeur",
        other => return format!("Statut {other}"),
    };
    label.to_owned()
}

/// The tracking number of a courier order.
pub(crate) fn tracking_of(order: &CourierOrder) -> String {
    format!("yal-{}", order.display_id)
}

fn yalidine_time(t: DateTime<Utc>) -> String {
    let tz = FixedOffset::east_opt(ALGERIA_UTC_OFFSET_SECS).expect("valid offset");
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()
}

fn error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        json!({"error": {"code": status.as_u16(), "message": message}}),
    )
}

/// The account behind `X-API-ID` and `X-API-TOKEN`, or Yalidine's 401.
fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<String, Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(id), Some(token)) = (header("x-api-id"), header("x-api-token")) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "X-API-ID and X-API-TOKEN headers are required",
        ));
    };
    match sim.courier_account(token.trim(), CourierApi::Yalidine) {
        Some(account) if account == id.trim() && !sim.is_revoked(token.trim()) => {
            Ok(account.to_owned())
        }
        _ => Err(error(StatusCode::UNAUTHORIZED, "Invalid API credentials")),
    }
}

/// `x-{second,minute,hour,day}-quota-left` and their values.
type QuotaHeaders = [(&'static str, u64); 4];

/// Meters the request against the account's quotas: the headers to send
/// with the answer, or the 429 to send instead.
fn meter(sim: &Sim, account: &str) -> Result<QuotaHeaders, Response> {
    let q = sim.config.yalidine_quota;
    match sim
        .quotas
        .take(account, [q.per_second, q.per_minute, q.per_hour, q.per_day])
    {
        QuotaUse::Served([second, minute, hour, day]) => Ok([
            ("x-second-quota-left", second),
            ("x-minute-quota-left", minute),
            ("x-hour-quota-left", hour),
            ("x-day-quota-left", day),
        ]),
        QuotaUse::Spent(wait) => {
            let mut res = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests: quota exceeded",
            );
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait.max(1)));
            Err(res)
        }
    }
}

/// Every endpoint's gate: the account behind the credentials, metered
/// against its quotas (the headers to send), or the 401 or 429 to answer.
fn admit(sim: &Sim, headers: &HeaderMap) -> Result<(String, QuotaHeaders), Response> {
    let account = authenticate(sim, headers)?;
    let quota = meter(sim, &account)?;
    Ok((account, quota))
}

/// Authenticates, meters, and answers `entries` (already filtered) as the
/// requested page, with the quota headers.
fn page_response(
    sim: &Sim,
    headers: &HeaderMap,
    uri: &Uri,
    pairs: &[(String, String)],
    quota: QuotaHeaders,
    entries: Vec<Value>,
) -> Response {
    let size = match query_get(pairs, "page_size").map(str::parse::<usize>) {
        None => DEFAULT_PAGE_SIZE,
        Some(Ok(n)) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "page_size must be a number from 1 to 1000",
            )
        }
    };
    let page = match query_get(pairs, "page").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return error(StatusCode::BAD_REQUEST, "page must be a number from 1"),
    };
    let total = entries.len();
    let has_more = page * size < total;
    let here = format!("{}{}", origin(headers, &sim.base_url), uri.path());
    let link = |p: usize| url_with_param(&here, pairs, "page", Some(&p.to_string()));
    let data: Vec<Value> = entries
        .into_iter()
        .skip((page - 1).saturating_mul(size))
        .take(size)
        .collect();
    let body = json!({
        "has_more": has_more,
        "total_data": total,
        "data": data,
        "links": {
            "self": link(page),
            "before": (page > 1).then(|| link(page - 1)),
            "next": has_more.then(|| link(page + 1)),
        },
    });
    let mut res = axum::Json(body).into_response();
    for (name, left) in quota {
        res.headers_mut().insert(name, HeaderValue::from(left));
    }
    res
}

/// The comma-separated values of query parameter `key`, if given.
fn list_param(pairs: &[(String, String)], key: &str) -> Option<Vec<String>> {
    query_get(pairs, key).map(|v| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

/// `GET /v1/parcels/`: the account's parcels, by ascending id, optionally
/// only those with the given `tracking` or `order_id` values.
async fn parcels(State(sim): State<Arc<Sim>>, headers: HeaderMap, uri: Uri) -> Response {
    let (account, quota) = match admit(&sim, &headers) {
        Ok(admitted) => admitted,
        Err(res) => return res,
    };
    let pairs = query_pairs(uri.query());
    let trackings = list_param(&pairs, "tracking");
    let order_ids = list_param(&pairs, "order_id");
    let now = Instant::now();
    let step = sim.config.status_step;
    let entries: Vec<Value> = {
        let st = sim.state();
        st.courier
            .of_account(&account)
            .filter(|c| {
                trackings
                    .as_ref()
                    .is_none_or(|t| t.contains(&tracking_of(c)))
            })
            .filter(|c| {
                order_ids
                    .as_ref()
                    .is_none_or(|o| o.iter().any(|r| r == c.reference()))
            })
            .map(|c| {
                let (code, since) = c.status_at(now, step);
                let (name, phone) = c.customer();
                let tracking = tracking_of(c);
                json!({
                    "tracking": tracking,
                    "order_id": c.reference(),
                    "firstname": name,
                    "contact_phone": phone,
                    "last_status": label_of(code),
                    "date_last_status": yalidine_time(since),
                    "payment_status": if code == 41 { "ready" } else { "not-ready" },
                    "label": format!("{}/yalidine/label/{tracking}.pdf", sim.base_url),
                })
            })
            .collect()
    };
    page_response(&sim, &headers, &uri, &pairs, quota, entries)
}

/// `GET /v1/histories/?tracking=a,b`: each parcel's status changes, oldest
/// first; a failed attempt gives its reason.
async fn histories(State(sim): State<Arc<Sim>>, headers: HeaderMap, uri: Uri) -> Response {
    let (account, quota) = match admit(&sim, &headers) {
        Ok(admitted) => admitted,
        Err(res) => return res,
    };
    let pairs = query_pairs(uri.query());
    let trackings = list_param(&pairs, "tracking");
    let now = Instant::now();
    let step = sim.config.status_step;
    let entries: Vec<Value> = {
        let st = sim.state();
        st.courier
            .of_account(&account)
            .filter(|c| {
                trackings
                    .as_ref()
                    .is_none_or(|t| t.contains(&tracking_of(c)))
            })
            .flat_map(|c| {
                let tracking = tracking_of(c);
                c.status_changes(now, step)
                    .into_iter()
                    .map(move |(code, at)| {
                        let label = label_of(code);
                        let reason = if label == "Tentative échouée" {
                            FAILED_ATTEMPT_REASON
                        } else {
                            ""
                        };
                        json!({
                            "date_status": yalidine_time(at),
                            "tracking": tracking,
                            "status": label,
                            "reason": reason,
                        })
                    })
            })
            .collect()
    };
    page_response(&sim, &headers, &uri, &pairs, quota, entries)
}

/// Injected failures: Yalidine's JSON error for 4xx, the nginx page in front
/// of it for 5xx.
pub(crate) fn fault_response(status: StatusCode, _retry_after: Option<u64>) -> Response {
    if status.is_server_error() {
        let title = format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        );
        return (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            format!("<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center><hr><center>nginx</center></body></html>"),
        )
            .into_response();
    }
    let message = match status.as_u16() {
        401 => "Invalid API credentials",
        429 => "Too many requests: quota exceeded",
        _ => status.canonical_reason().unwrap_or("Error"),
    };
    error(status, message)
}
