//! `/admin/api/orders`: one order's trace and the stuck orders, as JSON (the
//! same data as `ordersync orders trace|stuck --json`). Mounted by
//! [`crate::http::admin::routes`], behind the bearer token.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::http::{ApiError, AppState};
use crate::trace::{self, OrderTrace, StuckOrders};

/// `GET /orders/{reference}`: the order's [`OrderTrace`]; 404 with
/// `{"error": "no order with reference 'X'", "hints": [...]}` when unknown.
pub async fn trace_order(
    State(state): State<AppState>,
    Path(reference): Path<String>,
) -> Result<Response, ApiError> {
    trace::validate_reference(&reference).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let db = &state.deps.db;
    match trace::trace_order(db, &reference).await? {
        Some(found) => Ok(Json::<OrderTrace>(found).into_response()),
        None => {
            let hints = trace::unknown_reference_hints(db, &reference).await?;
            Ok((
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({
                    "error": format!("no order with reference '{reference}'"),
                    "hints": hints,
                })),
            )
                .into_response())
        }
    }
}

/// `GET /orders/stuck` query.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StuckQuery {
    /// Whole days in one status (default [`trace::DEFAULT_STUCK_DAYS`]).
    pub days: Option<String>,
    /// Only this store.
    pub store: Option<String>,
    /// At most this many orders listed (default [`trace::DEFAULT_STUCK_LIMIT`]).
    pub limit: Option<String>,
}

/// `GET /orders/stuck?days=N&store=S&limit=N`: [`StuckOrders`].
pub async fn stuck_orders(
    State(state): State<AppState>,
    query: Result<Query<StuckQuery>, QueryRejection>,
) -> Result<Json<StuckOrders>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
    let days = match q.days.as_deref() {
        None => trace::DEFAULT_STUCK_DAYS,
        Some(d) => d
            .parse::<u32>()
            .ok()
            .filter(|d| *d <= trace::MAX_STUCK_DAYS)
            .ok_or_else(|| {
                bad(format!(
                    "days '{d}' is not a whole number of days from 0 to {}",
                    trace::MAX_STUCK_DAYS
                ))
            })?,
    };
    let limit = match q.limit.as_deref() {
        None => trace::DEFAULT_STUCK_LIMIT,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=trace::MAX_STUCK_LIMIT).contains(l))
            .ok_or_else(|| {
                bad(format!(
                    "limit '{l}' is not a number from 1 to {}",
                    trace::MAX_STUCK_LIMIT
                ))
            })?,
    };
    let db = &state.deps.db;
    if let Some(store) = q.store.as_deref() {
        if let Some(message) = trace::unknown_store(db, store).await? {
            return Err(ApiError(StatusCode::NOT_FOUND, message));
        }
    }
    Ok(Json(
        trace::stuck_orders(db, days, q.store.as_deref(), limit).await?,
    ))
}

/// `GET /orders?store=&shop_status=&courier_status=&invoice_state=&q=&cursor=&limit=`:
/// one [`OrderPage`](crate::ops::orders_view::OrderPage), newest first; 400
/// naming the parameter when one is wrong.
pub async fn list_orders(
    State(state): State<AppState>,
    query: Result<Query<crate::ops::orders_view::ListParams>, QueryRejection>,
) -> Result<Json<crate::ops::orders_view::OrderPage>, ApiError> {
    let Query(params) = query.map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.body_text()))?;
    let stores: Vec<String> = state.config.stores.iter().map(|s| s.code.clone()).collect();
    let request = params
        .check(&stores)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    Ok(Json(
        crate::ops::orders_view::page(&state.deps.db, &request).await?,
    ))
}

/// `GET /orders/stats`: [`OrderStats`](crate::ledger::orders_view::OrderStats),
/// in total and per store, with each store's last import and tracking fetch.
pub async fn order_stats(
    State(state): State<AppState>,
) -> Result<Json<crate::ledger::orders_view::OrderStats>, ApiError> {
    Ok(Json(
        crate::ledger::orders_view::stats(&state.deps.db).await?,
    ))
}
