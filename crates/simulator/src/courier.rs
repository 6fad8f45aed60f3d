//! Maystro Delivery, as its public clients see it: DRF token auth, one account
//! per key, page-number pagination wrapped in `{"list": ...}`, DRF error bodies.
//!
//! A key sees only its own account's orders, like the real service: the wrong
//! store key yields "Not found.", the failure mode the field report describes.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::config::CourierApi;
use crate::http::{json_response, origin, query_get, query_pairs, url_with_param};
use crate::sim::Sim;
use crate::state::{CourierBook, CourierOrder};

const LIST: &str = "/maystro/api/stores/orders/";

/// The Maystro routes (no faults: `server` puts them behind the middleware).
pub(crate) fn routes(sim: &Arc<Sim>) -> Router {
    Router::new()
        .route(LIST, get(list))
        .route("/maystro/api/stores/orders", get(list))
        .route("/maystro/api/stores/orders/{id}/", get(detail))
        .route("/maystro/api/stores/orders/{id}", get(detail))
        .route("/maystro/api/stores/history_order/{id}/", get(history))
        .route("/maystro/api/stores/history_order/{id}", get(history))
        .with_state(Arc::clone(sim))
}

fn detail_error(status: StatusCode, detail: &str) -> Response {
    let mut res = json_response(status, json!({ "detail": detail }));
    if status == StatusCode::UNAUTHORIZED {
        // DRF's TokenAuthentication advertises its scheme on 401.
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
    }
    res
}

/// The account behind `Authorization: Token <key>`, or DRF's 401.
fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<String, Response> {
    let provided = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("token"));
    let Some((_, key)) = provided else {
        return Err(detail_error(
            StatusCode::UNAUTHORIZED,
            "Authentication credentials were not provided.",
        ));
    };
    let key = key.trim();
    match sim.courier_account(key, CourierApi::Maystro) {
        Some(account) if !sim.is_revoked(key) => Ok(account.to_string()),
        _ => Err(detail_error(StatusCode::UNAUTHORIZED, "Invalid token.")),
    }
}

/// `GET /stores/orders/?page=N`, ascending id, optional exact filters
/// `external_order_id` and `display_id` (clients use them; the real server's
/// support is unconfirmed).
async fn list(State(sim): State<Arc<Sim>>, headers: HeaderMap, uri: Uri) -> Response {
    let account = match authenticate(&sim, &headers) {
        Ok(a) => a,
        Err(res) => return res,
    };
    let pairs = query_pairs(uri.query());
    let reference = query_get(&pairs, "external_order_id");
    let display_id = query_get(&pairs, "display_id");
    let size = sim.config.courier_page_size;
    let now = Instant::now();
    let (count, page, results) = {
        let st = sim.state();
        let candidates: Box<dyn Iterator<Item = &CourierOrder>> = match reference {
            Some(r) => Box::new(
                st.courier
                    .by_ref(r)
                    .into_iter()
                    .filter(|c| c.account == account),
            ),
            None => Box::new(st.courier.of_account(&account)),
        };
        let matching: Vec<&CourierOrder> = candidates
            .filter(|c| display_id.is_none_or(|d| c.display_id == d))
            .collect();
        let count = matching.len();
        let pages = count.div_ceil(size).max(1);
        let page = match query_get(&pairs, "page") {
            None => 1,
            Some("last") => pages,
            Some(p) => match p.parse::<usize>() {
                Ok(n) if (1..=pages).contains(&n) => n,
                _ => return detail_error(StatusCode::NOT_FOUND, "Invalid page."),
            },
        };
        let results: Vec<Value> = matching
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(|c| c.to_json(now, sim.config.status_step))
            .collect();
        (count, page, results)
    };
    let here = format!("{}{}", origin(&headers, &sim.base_url), uri.path());
    let pages = count.div_ceil(size).max(1);
    let next = (page < pages)
        .then(|| url_with_param(&here, &pairs, "page", Some(&(page + 1).to_string())));
    // DRF drops `page` from the link to page 1.
    let previous = match page {
        1 => None,
        2 => Some(url_with_param(&here, &pairs, "page", None)),
        p => Some(url_with_param(
            &here,
            &pairs,
            "page",
            Some(&(p - 1).to_string()),
        )),
    };
    axum::Json(json!({"list": {
        "count": count,
        "next": next,
        "previous": previous,
        "results": results,
    }}))
    .into_response()
}

/// The order with courier id `id`, if this key's account owns it.
fn owned_order<'a>(orders: &'a CourierBook, account: &str, id: &str) -> Option<&'a CourierOrder> {
    let id = id.trim_end_matches('/').parse::<i64>().ok()?;
    orders.by_id(id).filter(|c| c.account == account)
}

/// `GET /stores/orders/{id}/`.
async fn detail(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let account = match authenticate(&sim, &headers) {
        Ok(a) => a,
        Err(res) => return res,
    };
    let st = sim.state();
    match owned_order(&st.courier, &account, &id) {
        Some(c) => axum::Json(c.to_json(Instant::now(), sim.config.status_step)).into_response(),
        None => detail_error(StatusCode::NOT_FOUND, "Not found."),
    }
}

/// `GET /stores/history_order/{id}`: `[{status, created_at, comment}]`
/// (shape unconfirmed upstream).
async fn history(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let account = match authenticate(&sim, &headers) {
        Ok(a) => a,
        Err(res) => return res,
    };
    let st = sim.state();
    match owned_order(&st.courier, &account, &id) {
        Some(c) => axum::Json(c.history(Instant::now(), sim.config.status_step)).into_response(),
        None => detail_error(StatusCode::NOT_FOUND, "Not found."),
    }
}

/// Injected failures: DRF JSON for 4xx, Django / nginx HTML pages for 5xx,
/// since that is what sits in front of the real API.
pub(crate) fn fault_response(status: StatusCode, retry_after: Option<u64>) -> Response {
    let detail = match status.as_u16() {
        401 => "Invalid token.".to_string(),
        403 => "You do not have permission to perform this action.".to_string(),
        404 => "Not found.".to_string(),
        429 => match retry_after {
            Some(secs) => format!("Request was throttled. Expected available in {secs} seconds."),
            None => "Request was throttled.".to_string(),
        },
        500 => return html(status, "<h1>Server Error (500)</h1>".to_string()),
        s if s >= 500 => {
            let title = format!("{} {}", s, status.canonical_reason().unwrap_or("Error"));
            return html(
                status,
                format!(
                    "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
                ),
            );
        }
        _ => status.canonical_reason().unwrap_or("Error").to_string(),
    };
    detail_error(status, &detail)
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}
