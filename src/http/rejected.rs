//! `GET /admin/api/orders/rejected`: the shop orders we could not store (the
//! same data as `ordersync orders rejected --json`), and the admin API's
//! guard against control characters in paths and query strings.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::http::{ApiError, AppState};
use crate::ledger::rejected::{self, RejectedOrder};

/// Orders listed by default, and at most.
pub const DEFAULT_LIMIT: i64 = 200;
/// The most a request may ask for.
pub const MAX_LIMIT: i64 = 10_000;

/// `GET /orders/rejected` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectedQuery {
    /// Only this store.
    pub store: Option<String>,
    /// Include the ones a later version of the order resolved.
    #[serde(default)]
    pub resolved: bool,
    /// At most this many (default [`DEFAULT_LIMIT`]).
    pub limit: Option<i64>,
}

/// The reply: how many are open, and the list.
#[derive(Debug, serde::Serialize)]
pub struct RejectedReply {
    /// Open rejections per store.
    pub open: std::collections::BTreeMap<String, i64>,
    /// The rejections, most recently seen first.
    pub orders: Vec<RejectedOrder>,
}

/// `GET /orders/rejected?store=S&resolved=true&limit=N`.
pub async fn rejected_orders(
    State(state): State<AppState>,
    query: Result<Query<RejectedQuery>, QueryRejection>,
) -> Result<Json<RejectedReply>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("limit '{limit}' is not a number from 1 to {MAX_LIMIT}"),
        ));
    }
    let db = &state.deps.db;
    Ok(Json(RejectedReply {
        open: rejected::open_counts(db).await?.into_iter().collect(),
        orders: rejected::list(db, q.store.as_deref(), q.resolved, limit).await?,
    }))
}

/// The open rejections per store as a Prometheus gauge
/// (`ordersync_rejected_orders`), read from the ledger on each scrape like
/// the other shared-state gauges.
pub fn render_gauge(open: &[(String, i64)]) -> String {
    let mut text = String::from(
        "# HELP ordersync_rejected_orders Shop orders that could not be stored and are not resolved, by store.\n\
         # TYPE ordersync_rejected_orders gauge\n",
    );
    for (store, count) in open {
        text.push_str(&format!(
            "ordersync_rejected_orders{{store=\"{}\"}} {count}\n",
            store.replace('\\', "\\\\").replace('"', "\\\"")
        ));
    }
    text
}

/// 400 for a request whose path or query string holds a control character
/// (`%00` and friends), naming the parameter: no filter, reference or id
/// contains one, and Postgres cannot store or compare NUL.
pub async fn refuse_control_characters(request: Request, next: Next) -> Response {
    if let Err(message) = check_request(&request) {
        return ApiError(StatusCode::BAD_REQUEST, message).into_response();
    }
    next.run(request).await
}

fn check_request(request: &Request) -> Result<(), String> {
    let path = request.uri().path();
    let decoded = percent_decode(path);
    if decoded.chars().any(char::is_control) {
        return Err("the path contains a control character (%00 or the like)".into());
    }
    if let Some(query) = request.uri().query() {
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            crate::input::plain_text(&format!("parameter '{}'", name.escape_debug()), &name)?;
            crate::input::plain_text(&format!("parameter '{name}'"), &value)?;
        }
    }
    Ok(())
}

fn percent_decode(path: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", path.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(uri: &str) -> Result<(), String> {
        check_request(
            &Request::builder()
                .uri(uri)
                .body(axum::body::Body::empty())
                .unwrap(),
        )
    }

    #[test]
    fn control_characters_in_paths_and_parameters_are_named() {
        assert!(check("/admin/api/jobs/failed?store=ALPH&since=2h").is_ok());
        assert_eq!(
            check("/admin/api/jobs/failed?store=AL%00PH").unwrap_err(),
            "parameter 'store' contains the control character '\\0'; remove it"
        );
        assert!(check("/admin/api/orders/AL%00PH")
            .unwrap_err()
            .contains("path"));
        assert!(check("/admin/api/jobs/failed?gr%00ep=x")
            .unwrap_err()
            .starts_with("parameter 'gr\\0ep'"));
    }
}
