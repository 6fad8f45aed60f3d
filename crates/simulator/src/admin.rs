//! `/_sim/` admin routes: [`SimHandle`](crate::SimHandle) over HTTP, for the
//! demo and benchmarks running in another process. Never faulted, never counted.
//!
//! | route | body / query | answer |
//! |---|---|---|
//! | `GET /_sim/stats` | | `{"requests":{"courier":n,"shop":n,"erp":n,"sms":n,"yalidine":n},"invoices":n,"sms":n,"erp":{ErpCounts + shop_status_writes}}` |
//! | `GET /_sim/config` | | the [`SimConfig`](crate::SimConfig) JSON |
//! | `GET /_sim/invoices` | `?po_no=X` optional | array of invoice docs |
//! | `GET /_sim/sms` | `?phone=X` optional | array of `{recipient,sender,message,message_id,sent_at}` |
//! | `GET`/`POST /_sim/knobs/{service}` | [`Knobs`] JSON (`latency_ms`, `hang_ms`) | the knobs now in force |
//! | `POST /_sim/fail_next/{service}` | `{"count":1,"status":503,"retry_after_secs":null}` | `204` |
//! | `POST /_sim/revoke`, `POST /_sim/restore` | `{"key":"..."}` | `204` |
//! | `POST /_sim/courier/status` | `{"external_order_id","status"}` | the courier order, or `404` |
//! | `GET /_sim/courier/orders/{reference}` | | the courier order, or `404` |
//! | `GET`/`POST /_sim/shop/{store}/orders` | `{"payment_method","status","at_courier"}` | orders / the new order |
//! | `POST /_sim/shop/{store}/orders/{id}/status` | `{"status"}` | the order, or `404` |
//!
//! Admin errors are `{"error": "..."}` with status 400 or 404.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::fault_plan::Knobs;
use crate::service::Service;
use crate::sim::Sim;
use crate::SimHandle;

/// Every `/_sim/` route of the table above.
pub(crate) fn routes(sim: &Arc<Sim>) -> Router {
    Router::new()
        .route("/_sim/stats", get(stats))
        .route("/_sim/config", get(config))
        .route("/_sim/invoices", get(invoices))
        .route("/_sim/sms", get(sms))
        .route("/_sim/knobs/{service}", get(get_knobs).post(set_knobs))
        .route("/_sim/fail_next/{service}", post(fail_next))
        .route("/_sim/revoke", post(revoke))
        .route("/_sim/restore", post(restore))
        .route("/_sim/courier/status", post(courier_status))
        .route("/_sim/courier/orders/{reference}", get(courier_order))
        .route(
            "/_sim/shop/{store}/orders",
            get(shop_orders).post(add_shop_order),
        )
        .route("/_sim/shop/{store}/orders/{id}/status", post(shop_status))
        .with_state(Arc::clone(sim))
}

fn handle(sim: &Arc<Sim>) -> SimHandle {
    SimHandle {
        inner: Arc::clone(sim),
    }
}

fn fail(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// Bodies are parsed by hand so a missing `Content-Type` is fine and errors
/// come back as `{"error"}` JSON.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| fail(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")))
}

fn service(name: &str) -> Result<Service, Response> {
    name.parse()
        .map_err(|e: anyhow::Error| fail(StatusCode::BAD_REQUEST, &e.to_string()))
}

async fn stats(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let h = handle(&sim);
    let requests: serde_json::Map<String, Value> = Service::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), json!(h.request_count(*s))))
        .collect();
    let (invoices, sms, erp) = {
        let st = sim.state();
        let mut erp = serde_json::to_value(st.invoices.counts()).unwrap_or(Value::Null);
        erp["shop_status_writes"] = json!(st.shop_status_writes.len());
        (st.invoices.all().len(), st.sms.len(), erp)
    };
    Json(json!({"requests": requests, "invoices": invoices, "sms": sms, "erp": erp}))
}

async fn config(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(serde_json::to_value(&sim.config).unwrap_or(Value::Null))
}

#[derive(Deserialize)]
struct PoNo {
    po_no: Option<String>,
}

async fn invoices(State(sim): State<Arc<Sim>>, Query(q): Query<PoNo>) -> Json<Vec<Value>> {
    let st = sim.state();
    Json(match q.po_no {
        Some(po) => st.invoices.with_po(&po).cloned().collect(),
        None => st.invoices.all().to_vec(),
    })
}

#[derive(Deserialize)]
struct Phone {
    phone: Option<String>,
}

async fn sms(State(sim): State<Arc<Sim>>, Query(q): Query<Phone>) -> Json<Value> {
    let st = sim.state();
    let picked: Vec<_> = st
        .sms
        .iter()
        .filter(|m| q.phone.as_deref().is_none_or(|p| m.recipient == p))
        .collect();
    Json(json!(picked))
}

async fn get_knobs(State(sim): State<Arc<Sim>>, Path(name): Path<String>) -> Response {
    match service(&name) {
        Ok(s) => Json(handle(&sim).knobs(s)).into_response(),
        Err(res) => res,
    }
}

async fn set_knobs(
    State(sim): State<Arc<Sim>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (s, knobs) = match (service(&name), parse::<Knobs>(&body)) {
        (Ok(s), Ok(k)) => (s, k),
        (Err(res), _) | (_, Err(res)) => return res,
    };
    handle(&sim).set_knobs(s, knobs.clone());
    Json(knobs).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailNext {
    #[serde(default = "one")]
    count: u32,
    status: u16,
    #[serde(default)]
    retry_after_secs: Option<u64>,
}

fn one() -> u32 {
    1
}

async fn fail_next(
    State(sim): State<Arc<Sim>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let (s, req) = match (service(&name), parse::<FailNext>(&body)) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(res), _) | (_, Err(res)) => return res,
    };
    if !(100..=999).contains(&req.status) {
        return fail(
            StatusCode::BAD_REQUEST,
            "status must be an HTTP status code (100..=999)",
        );
    }
    handle(&sim).fail_next(s, req.count, req.status, req.retry_after_secs);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct Key {
    key: String,
}

async fn revoke(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    match parse::<Key>(&body) {
        Ok(k) => {
            handle(&sim).revoke_key(&k.key);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(res) => res,
    }
}

async fn restore(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    match parse::<Key>(&body) {
        Ok(k) => {
            handle(&sim).restore_key(&k.key);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(res) => res,
    }
}

#[derive(Deserialize)]
struct CourierStatus {
    external_order_id: String,
    status: i64,
}

async fn courier_status(State(sim): State<Arc<Sim>>, body: axum::body::Bytes) -> Response {
    let req = match parse::<CourierStatus>(&body) {
        Ok(r) => r,
        Err(res) => return res,
    };
    let h = handle(&sim);
    if !h.set_courier_status(&req.external_order_id, req.status) {
        return fail(
            StatusCode::NOT_FOUND,
            "no courier order with this external_order_id",
        );
    }
    Json(h.courier_order_by_ref(&req.external_order_id)).into_response()
}

async fn courier_order(State(sim): State<Arc<Sim>>, Path(reference): Path<String>) -> Response {
    match handle(&sim).courier_order_by_ref(&reference) {
        Some(o) => Json(o).into_response(),
        None => fail(
            StatusCode::NOT_FOUND,
            "no courier order with this reference",
        ),
    }
}

async fn shop_orders(State(sim): State<Arc<Sim>>, Path(store): Path<String>) -> Response {
    match sim.shop_orders(&store) {
        Some(orders) => Json(orders).into_response(),
        None => fail(StatusCode::NOT_FOUND, "unknown store"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewOrder {
    payment_method: String,
    status: String,
    #[serde(default)]
    at_courier: bool,
}

async fn add_shop_order(
    State(sim): State<Arc<Sim>>,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let req = match parse::<NewOrder>(&body) {
        Ok(r) => r,
        Err(res) => return res,
    };
    match handle(&sim).add_shop_order(&store, &req.payment_method, &req.status, req.at_courier) {
        Value::Null => fail(StatusCode::NOT_FOUND, "unknown store"),
        order => (StatusCode::CREATED, Json(order)).into_response(),
    }
}

#[derive(Deserialize)]
struct NewStatus {
    status: String,
}

async fn shop_status(
    State(sim): State<Arc<Sim>>,
    Path((store, id)): Path<(String, i64)>,
    body: axum::body::Bytes,
) -> Response {
    let req = match parse::<NewStatus>(&body) {
        Ok(r) => r,
        Err(res) => return res,
    };
    match sim.set_shop_order_status(&store, id, &req.status) {
        Some(order) => Json(order).into_response(),
        None => fail(
            StatusCode::NOT_FOUND,
            "unknown store or order, or empty status",
        ),
    }
}
