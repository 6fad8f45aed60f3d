//! WooCommerce REST v3 orders, one site per store under `/shop/{store}`.
//!
//! Auth is per store (Basic, or `consumer_key`/`consumer_secret` query params when
//! a host drops the header). Listing follows WordPress: `X-WP-Total`,
//! `X-WP-TotalPages` and a `Link` header, exclusive `modified_after`, site-local
//! dates unless `dates_are_gmt`. Errors are `{"code","message","data":{"status"}}`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{json, Value};

use crate::config::SimStore;
use crate::http::{json_response, origin, query_get, query_pairs, url_with_param};
use crate::sim::Sim;
use crate::state::{site_offset, ShopOrder};

/// WooCommerce's core order statuses.
const STATUSES: [&str; 9] = [
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
    "trash",
    "checkout-draft",
];
const DEFAULT_PER_PAGE: usize = 10;
const MAX_PER_PAGE: usize = 100;

/// The WooCommerce routes of every store (no faults: `server` puts them
/// behind the middleware).
pub(crate) fn routes(sim: &Arc<Sim>) -> Router {
    Router::new()
        .route("/shop/{store}/wp-json/wc/v3/orders", get(list))
        .route(
            "/shop/{store}/wp-json/wc/v3/orders/{id}",
            get(detail).put(update).patch(update).post(update),
        )
        .with_state(Arc::clone(sim))
}

fn wp_error(status: StatusCode, code: &str, message: &str) -> Response {
    json_response(
        status,
        json!({"code": code, "message": message, "data": {"status": status.as_u16()}}),
    )
}

fn invalid_param(param: &str, why: &str) -> Response {
    json_response(
        StatusCode::BAD_REQUEST,
        json!({
            "code": "rest_invalid_param",
            "message": format!("Invalid parameter(s): {param}"),
            "data": {"status": 400, "params": {param: why}},
        }),
    )
}

fn no_route() -> Response {
    wp_error(
        StatusCode::NOT_FOUND,
        "rest_no_route",
        "No route was found matching the URL and request method.",
    )
}

fn invalid_id(status: StatusCode) -> Response {
    wp_error(
        status,
        "woocommerce_rest_shop_order_invalid_id",
        "Invalid ID.",
    )
}

/// What the caller tried to do, for the wording of the 401.
#[derive(Clone, Copy)]
enum Access {
    List,
    View,
    Edit,
}

/// The store, if it exists and the request carries its live credentials.
fn authenticate<'a>(
    sim: &'a Sim,
    store: &str,
    headers: &HeaderMap,
    pairs: &[(String, String)],
    access: Access,
) -> Result<&'a SimStore, Response> {
    let Some(site) = sim.config.stores.iter().find(|s| s.code == store) else {
        return Err(no_route());
    };
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            pair.split_once(':')
                .map(|(k, s)| (k.to_string(), s.to_string()))
        });
    let query = || {
        Some((
            query_get(pairs, "consumer_key")?.to_string(),
            query_get(pairs, "consumer_secret")?.to_string(),
        ))
    };
    let ok = basic.or_else(query).is_some_and(|(key, secret)| {
        key == site.shop_consumer_key
            && secret == site.shop_consumer_secret
            && !sim.is_revoked(&key)
            && !sim.is_revoked(&secret)
    });
    if ok {
        return Ok(site);
    }
    let (code, message) = match access {
        Access::List => (
            "woocommerce_rest_cannot_view",
            "Sorry, you cannot list resources.",
        ),
        Access::View => (
            "woocommerce_rest_cannot_view",
            "Sorry, you cannot view this resource.",
        ),
        Access::Edit => (
            "woocommerce_rest_cannot_edit",
            "Sorry, you are not allowed to edit this resource.",
        ),
    };
    Err(wp_error(StatusCode::UNAUTHORIZED, code, message))
}

/// WordPress's RFC 3339 subset; no offset means site time, or UTC with
/// `dates_are_gmt`.
fn parse_wp_date(raw: &str, gmt: bool) -> Option<DateTime<Utc>> {
    let normal = if raw.len() > 10 && raw.as_bytes()[10] == b' ' {
        format!("{}T{}", &raw[..10], &raw[11..])
    } else {
        raw.to_string()
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(&normal) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(&normal, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    if gmt {
        Some(Utc.from_utc_datetime(&naive))
    } else {
        site_offset()
            .from_local_datetime(&naive)
            .single()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// Values of a list parameter given as `k=a,b`, `k[]=a&k[]=b` or both.
fn list_param(pairs: &[(String, String)], key: &str) -> Vec<String> {
    let bracket = format!("{key}[]");
    pairs
        .iter()
        .filter(|(k, _)| *k == key || *k == bracket)
        .flat_map(|(_, v)| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Parsed, validated query of `GET /orders`.
struct ListQuery {
    page: usize,
    per_page: usize,
    statuses: Vec<String>,
    include: Vec<i64>,
    search: Option<String>,
    after: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
    modified_after: Option<DateTime<Utc>>,
    modified_before: Option<DateTime<Utc>>,
    orderby: OrderBy,
    ascending: bool,
}

#[derive(Clone, Copy)]
enum OrderBy {
    Date,
    Id,
    Modified,
}

impl ListQuery {
    fn parse(pairs: &[(String, String)]) -> Result<ListQuery, Response> {
        let number = |key: &str, default: usize, max: usize| -> Result<usize, Response> {
            match query_get(pairs, key) {
                None => Ok(default),
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if (1..=max).contains(&n) => Ok(n),
                    _ if max == usize::MAX => Err(invalid_param(
                        key,
                        &format!("{key} must be greater than or equal to 1"),
                    )),
                    _ => Err(invalid_param(
                        key,
                        &format!("{key} must be between 1 (inclusive) and {max} (inclusive)"),
                    )),
                },
            }
        };
        let gmt = matches!(query_get(pairs, "dates_are_gmt"), Some("true" | "1"));
        let date = |key: &str| -> Result<Option<DateTime<Utc>>, Response> {
            query_get(pairs, key)
                .map(|v| parse_wp_date(v, gmt).ok_or_else(|| invalid_param(key, "Invalid date.")))
                .transpose()
        };
        let statuses = list_param(pairs, "status");
        if let Some(bad) = statuses
            .iter()
            .find(|s| *s != "any" && !STATUSES.contains(&s.as_str()))
        {
            return Err(invalid_param(
                "status",
                &format!("{bad} is not one of any, {}.", STATUSES.join(", ")),
            ));
        }
        let include = list_param(pairs, "include")
            .iter()
            .map(|v| v.parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| invalid_param("include", "include[0] is not of type integer."))?;
        let orderby = match query_get(pairs, "orderby").unwrap_or("date") {
            "date" => OrderBy::Date,
            "id" | "include" | "title" | "slug" => OrderBy::Id,
            "modified" => OrderBy::Modified,
            _ => {
                return Err(invalid_param(
                    "orderby",
                    "orderby is not one of date, id, include, title, slug, and modified.",
                ))
            }
        };
        let ascending = match query_get(pairs, "order").unwrap_or("desc") {
            "asc" => true,
            "desc" => false,
            _ => return Err(invalid_param("order", "order is not one of asc and desc.")),
        };
        Ok(ListQuery {
            page: number("page", 1, usize::MAX)?,
            per_page: number("per_page", DEFAULT_PER_PAGE, MAX_PER_PAGE)?,
            statuses,
            include,
            search: query_get(pairs, "search")
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            after: date("after")?,
            before: date("before")?,
            modified_after: date("modified_after")?,
            modified_before: date("modified_before")?,
            orderby,
            ascending,
        })
    }

    fn keeps(&self, o: &ShopOrder) -> bool {
        let status_ok = if self.statuses.is_empty() || self.statuses.iter().any(|s| s == "any") {
            o.status != "trash"
        } else {
            self.statuses.contains(&o.status)
        };
        status_ok
            && (self.include.is_empty() || self.include.contains(&o.id))
            && self.search.as_deref().is_none_or(|s| o.matches_search(s))
            && self.after.is_none_or(|t| o.created > t)
            && self.before.is_none_or(|t| o.created < t)
            && self.modified_after.is_none_or(|t| o.modified > t)
            && self.modified_before.is_none_or(|t| o.modified < t)
    }
}

/// `GET /orders`.
async fn list(
    State(sim): State<Arc<Sim>>,
    Path(store): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let pairs = query_pairs(uri.query());
    if let Err(res) = authenticate(&sim, &store, &headers, &pairs, Access::List) {
        return res;
    }
    let q = match ListQuery::parse(&pairs) {
        Ok(q) => q,
        Err(res) => return res,
    };
    let (total, body) = {
        let st = sim.state();
        let Some(shop) = st.shops.get(&store) else {
            return no_route();
        };
        let mut hits: Vec<&ShopOrder> = shop.orders.values().filter(|o| q.keeps(o)).collect();
        match q.orderby {
            OrderBy::Date => hits.sort_by_key(|o| (o.created, o.id)),
            OrderBy::Id => hits.sort_by_key(|o| o.id),
            OrderBy::Modified => hits.sort_by_key(|o| (o.modified, o.id)),
        }
        if !q.ascending {
            hits.reverse();
        }
        let body: Vec<Value> = hits
            .iter()
            .skip((q.page - 1).saturating_mul(q.per_page))
            .take(q.per_page)
            .map(|o| o.to_json())
            .collect();
        (hits.len(), body)
    };
    let pages = total.div_ceil(q.per_page);
    let here = format!("{}{}", origin(&headers, &sim.base_url), uri.path());
    let mut links = Vec::new();
    if q.page > 1 {
        let prev = (q.page - 1).min(pages.max(1));
        links.push(format!(
            "<{}>; rel=\"prev\"",
            url_with_param(&here, &pairs, "page", Some(&prev.to_string()))
        ));
    }
    if q.page < pages {
        links.push(format!(
            "<{}>; rel=\"next\"",
            url_with_param(&here, &pairs, "page", Some(&(q.page + 1).to_string()))
        ));
    }
    let mut res = axum::Json(body).into_response();
    let h = res.headers_mut();
    h.insert("x-wp-total", HeaderValue::from(total));
    h.insert("x-wp-totalpages", HeaderValue::from(pages));
    if !links.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
            h.insert(header::LINK, v);
        }
    }
    res
}

/// `GET /orders/{id}`.
async fn detail(
    State(sim): State<Arc<Sim>>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let pairs = query_pairs(uri.query());
    if let Err(res) = authenticate(&sim, &store, &headers, &pairs, Access::View) {
        return res;
    }
    let st = sim.state();
    let order = id
        .parse::<i64>()
        .ok()
        .and_then(|id| st.shops.get(&store)?.orders.get(&id));
    match order {
        Some(o) => axum::Json(o.to_json()).into_response(),
        None => invalid_id(StatusCode::NOT_FOUND),
    }
}

/// `PUT /orders/{id}`: `status` and `meta_data` (upsert by key); every save
/// moves `date_modified`, as WooCommerce does.
async fn update(
    State(sim): State<Arc<Sim>>,
    Path((store, id)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: axum::body::Bytes,
) -> Response {
    let pairs = query_pairs(uri.query());
    if let Err(res) = authenticate(&sim, &store, &headers, &pairs, Access::Edit) {
        return res;
    }
    let patch: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return wp_error(
                    StatusCode::BAD_REQUEST,
                    "rest_invalid_json",
                    "Invalid JSON body passed.",
                )
            }
        }
    };
    let status = match patch.get("status") {
        None => None,
        Some(Value::String(s)) if STATUSES.contains(&s.as_str()) => Some(s.clone()),
        Some(_) => {
            return invalid_param(
                "status",
                &format!("status is not one of {}.", STATUSES.join(", ")),
            )
        }
    };
    let mut st = sim.state();
    let Some(order) = id
        .parse::<i64>()
        .ok()
        .and_then(|id| st.shops.get_mut(&store)?.orders.get_mut(&id))
    else {
        return invalid_id(StatusCode::BAD_REQUEST);
    };
    if let Some(Value::Array(meta)) = patch.get("meta_data") {
        for m in meta {
            if let Some(key) = m.get("key").and_then(Value::as_str) {
                order.upsert_meta(key, m.get("value").cloned().unwrap_or(Value::Null));
            }
        }
    }
    match &status {
        Some(s) => order.set_status(s),
        None => {
            order.touch();
        }
    }
    let json = order.to_json();
    if let (Some(s), Ok(id)) = (status, id.parse::<i64>()) {
        st.shop_status_writes.push((store, id, s));
    }
    axum::Json(json).into_response()
}

/// Injected failures: WordPress's JSON for 4xx and PHP fatals (500), the
/// hosting layer's HTML page for 502/503/504.
pub(crate) fn fault_response(status: StatusCode) -> Response {
    match status.as_u16() {
        401 => wp_error(
            status,
            "woocommerce_rest_cannot_view",
            "Sorry, you cannot list resources.",
        ),
        404 => no_route(),
        429 => wp_error(status, "too_many_requests", "Too Many Requests"),
        500 => json_response(
            status,
            json!({
                "code": "internal_server_error",
                "message": "<p>There has been a critical error on this website.</p>",
                "data": {"status": 500},
                "additional_errors": [],
            }),
        ),
        s if s >= 500 => {
            let title = format!("{s} {}", status.canonical_reason().unwrap_or("Error"));
            (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                format!("<!DOCTYPE html><html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"),
            )
                .into_response()
        }
        _ => wp_error(
            status,
            "rest_error",
            status.canonical_reason().unwrap_or("Error"),
        ),
    }
}
