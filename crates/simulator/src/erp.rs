//! ERPNext (Frappe) REST: Sales Invoice create / list / read / update, the
//! Mode of Payment list, and the `ping` / `get_logged_user` methods.
//!
//! Validation mirrors what bit the field report: an empty customer or item table
//! is a MandatoryError, a mode of payment outside the four configured names
//! (case-sensitive, so `cash` fails) is a LinkValidationError, all 417. Every
//! error body has Frappe's `exc_type` / `exception` / `exc` / `_server_messages`,
//! because clients must classify on `exc_type`, not only the status.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use chrono::Utc;
use serde_json::{json, Map, Value};

use super::faults::{self, json_response};
use super::state::site_offset;
use super::{query_get, query_pairs, Service, Sim};

const SALES_INVOICE: &str = "Sales Invoice";
const MODE_OF_PAYMENT: &str = "Mode of Payment";
/// The modes of payment configured in the simulated ERP, exactly.
const MODES_OF_PAYMENT: [&str; 4] = ["Instapay", "Cash", "Kashier Card", "Kashier Wallet"];
const DEFAULT_PAGE_LENGTH: usize = 20;
/// Advertised in `X-RateLimit-Limit` on 429s.
const RATE_LIMIT: u64 = 300;

pub(super) fn routes(sim: &Arc<Sim>) -> Router {
    Router::new()
        .route("/erp/api/resource/{doctype}", get(list).post(create))
        .route("/erp/api/resource/{doctype}/{name}", get(read).put(update))
        .route("/erp/api/method/{method}", get(method).post(method))
        .route_layer(from_fn_with_state(
            (Arc::clone(sim), Service::Erp),
            faults::inject,
        ))
        .with_state(Arc::clone(sim))
}

/// A Frappe error: `exception` carries the Python repr, `_server_messages` the
/// user-facing text.
fn frappe_error(
    status: StatusCode,
    exc_type: &str,
    detail: &str,
    message: &str,
    title: &str,
) -> Response {
    let exception = if detail.is_empty() {
        format!("frappe.exceptions.{exc_type}")
    } else {
        format!("frappe.exceptions.{exc_type}: {detail}")
    };
    let traceback = format!(
        "Traceback (most recent call last):\n  File \"apps/frappe/frappe/app.py\", line 114, in application\n    response = frappe.api.handle(request)\n  File \"apps/frappe/frappe/api/__init__.py\", line 49, in handle\n    data = endpoint(**arguments)\n{exception}\n"
    );
    let mut body = json!({
        "exc_type": exc_type,
        "exception": exception,
        "exc": json!([traceback]).to_string(),
    });
    if !message.is_empty() {
        let msg =
            json!({"message": message, "title": title, "indicator": "red", "raise_exception": 1});
        body["_server_messages"] = json!([msg.to_string()]).to_string().into();
    }
    json_response(status, body)
}

fn validation(exc_type: &str, detail: &str, message: &str) -> Response {
    frappe_error(
        StatusCode::EXPECTATION_FAILED,
        exc_type,
        detail,
        message,
        "Message",
    )
}

fn not_found(what: &str) -> Response {
    frappe_error(
        StatusCode::NOT_FOUND,
        "DoesNotExistError",
        what,
        what,
        "Not Found",
    )
}

/// Checks `token key:secret` (or Basic `key:secret`). No header means Guest,
/// which Frappe refuses with 403; a wrong or revoked one is 401.
fn authenticate(sim: &Sim, headers: &HeaderMap) -> Result<(), Response> {
    let Some(raw) = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
    else {
        return Err(frappe_error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            "",
            "Not permitted",
            "Not Permitted",
        ));
    };
    let pair = match raw.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("token") => {
            Some(rest.trim().to_string())
        }
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => {
            base64::engine::general_purpose::STANDARD
                .decode(rest.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
        }
        _ => None,
    };
    let ok = pair
        .as_deref()
        .and_then(|p| p.split_once(':'))
        .is_some_and(|(key, secret)| {
            key == sim.config.erp_api_key
                && secret == sim.config.erp_api_secret
                && !sim.is_revoked(key)
                && !sim.is_revoked(secret)
        });
    if ok {
        Ok(())
    } else {
        Err(frappe_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationError",
            "",
            "Invalid API key or secret",
            "Not Permitted",
        ))
    }
}

/// Frappe's timestamp format, site time.
fn frappe_now() -> String {
    Utc::now()
        .with_timezone(&site_offset())
        .format("%Y-%m-%d %H:%M:%S%.6f")
        .to_string()
}

fn frappe_today() -> String {
    Utc::now()
        .with_timezone(&site_offset())
        .format("%Y-%m-%d")
        .to_string()
}

fn number(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(v) => number(Some(v)) != 0.0,
        None => false,
    }
}

/// Scalar equality across JSON types, as SQL would compare them.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let (x, y) = (text(a), text(b));
    match (x.parse::<f64>(), y.parse::<f64>()) {
        (Ok(p), Ok(q)) => p == q,
        _ => x == y,
    }
}

/// One `[field, op, value]` condition.
struct Filter {
    field: String,
    op: String,
    value: Value,
}

impl Filter {
    fn keeps(&self, doc: &Value) -> bool {
        let actual = doc.get(&self.field).unwrap_or(&Value::Null);
        let listed = || match &self.value {
            Value::Array(items) => items.iter().any(|v| loosely_equal(actual, v)),
            Value::String(s) => s
                .split(',')
                .any(|v| loosely_equal(actual, &json!(v.trim()))),
            v => loosely_equal(actual, v),
        };
        match self.op.as_str() {
            "=" => loosely_equal(actual, &self.value),
            "!=" => !loosely_equal(actual, &self.value),
            "in" => listed(),
            "not in" => !listed(),
            "like" => {
                let pattern = self.value.as_str().unwrap_or_default().to_lowercase();
                let hay = actual.as_str().unwrap_or_default().to_lowercase();
                let parts: Vec<&str> = pattern.split('%').collect();
                parts.iter().all(|p| hay.contains(p))
            }
            _ => false,
        }
    }
}

/// `filters` as a list of `[field, op, value]` / `[doctype, field, op, value]`,
/// or a `{field: value}` / `{field: [op, value]}` object.
fn parse_filters(raw: Option<&str>) -> Result<Vec<Filter>, Response> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let bad = |why: &str| validation("ValidationError", why, why);
    let value: Value = serde_json::from_str(raw).map_err(|_| bad("Invalid filters: not JSON"))?;
    let mut out = Vec::new();
    let mut push = |field: &str, op: &str, value: Value| -> Result<(), Response> {
        let op = op.trim().to_lowercase();
        if !["=", "!=", "in", "not in", "like"].contains(&op.as_str()) {
            return Err(bad(&format!(
                "Operator must be one of =, !=, in, not in, like; got {op}"
            )));
        }
        out.push(Filter {
            field: field.to_string(),
            op,
            value,
        });
        Ok(())
    };
    match value {
        Value::Array(conds) => {
            for cond in conds {
                let parts = cond.as_array().cloned().unwrap_or_default();
                let strs = |i: usize| {
                    parts
                        .get(i)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                match parts.len() {
                    3 => push(&strs(0), &strs(1), parts[2].clone())?,
                    4 => push(&strs(1), &strs(2), parts[3].clone())?,
                    _ => {
                        return Err(bad(
                            "Invalid filters: each condition is [field, operator, value]",
                        ))
                    }
                }
            }
        }
        Value::Object(map) => {
            for (field, v) in map {
                match v {
                    Value::Array(pair) if pair.len() == 2 && pair[0].is_string() => {
                        push(&field, pair[0].as_str().unwrap_or("="), pair[1].clone())?;
                    }
                    other => push(&field, "=", other)?,
                }
            }
        }
        _ => return Err(bad("Invalid filters")),
    }
    Ok(out)
}

fn modes_of_payment() -> Vec<Value> {
    MODES_OF_PAYMENT
        .iter()
        .map(|m| {
            let kind = if *m == "Cash" { "Cash" } else { "Bank" };
            json!({"name": m, "mode_of_payment": m, "type": kind, "enabled": 1, "doctype": MODE_OF_PAYMENT})
        })
        .collect()
}

/// An `=` filter on an indexed field (`name`, `po_no`), to skip the scan.
fn indexed_filter(filters: &[Filter]) -> Option<(&'static str, &str)> {
    filters.iter().find_map(|f| {
        let value = f.value.as_str()?;
        match (f.field.as_str(), f.op.as_str()) {
            ("name", "=") => Some(("name", value)),
            ("po_no", "=") => Some(("po_no", value)),
            _ => None,
        }
    })
}

/// `GET /api/resource/{doctype}?filters=&fields=&limit_page_length=&limit_start=`,
/// newest first (Frappe's `modified desc`) unless `order_by` says `asc`.
async fn list(
    State(sim): State<Arc<Sim>>,
    Path(doctype): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(res) = authenticate(&sim, &headers) {
        return res;
    }
    let pairs = query_pairs(uri.query());
    let filters = match parse_filters(query_get(&pairs, "filters")) {
        Ok(f) => f,
        Err(res) => return res,
    };
    let fields: Vec<String> = match query_get(&pairs, "fields") {
        None => vec!["name".into()],
        Some(raw) => match serde_json::from_str(raw) {
            Ok(f) => f,
            Err(_) => {
                return validation(
                    "ValidationError",
                    "Invalid fields",
                    "Invalid fields: expected a JSON list of names",
                )
            }
        },
    };
    let limit = query_get(&pairs, "limit_page_length")
        .or_else(|| query_get(&pairs, "limit"))
        .map_or(Ok(DEFAULT_PAGE_LENGTH), str::parse::<usize>);
    let start = query_get(&pairs, "limit_start").map_or(Ok(0), str::parse::<usize>);
    let (Ok(limit), Ok(start)) = (limit, start) else {
        return validation(
            "ValidationError",
            "Invalid limit",
            "limit_page_length and limit_start must be integers",
        );
    };
    let ascending = query_get(&pairs, "order_by").is_some_and(|o| o.to_lowercase().contains("asc"));
    let modes = modes_of_payment();
    let st = sim.state();
    let candidates: Vec<&Value> = match doctype.as_str() {
        SALES_INVOICE => match indexed_filter(&filters) {
            Some(("name", v)) => st.invoices.by_name(v).into_iter().collect(),
            Some((_, v)) => st.invoices.with_po(v).collect(),
            None => st.invoices.all().iter().collect(),
        },
        MODE_OF_PAYMENT => modes.iter().collect(),
        other => return not_found(&format!("DocType {other} not found")),
    };
    let mut hits: Vec<&Value> = candidates
        .into_iter()
        .filter(|d| filters.iter().all(|f| f.keeps(d)))
        .collect();
    if !ascending {
        hits.reverse();
    }
    let take = if limit == 0 { usize::MAX } else { limit };
    let data: Vec<Value> = hits
        .into_iter()
        .skip(start)
        .take(take)
        .map(|d| {
            if fields.iter().any(|f| f == "*") {
                return d.clone();
            }
            let mut row = Map::new();
            for f in &fields {
                row.insert(f.clone(), d.get(f).cloned().unwrap_or(Value::Null));
            }
            Value::Object(row)
        })
        .collect();
    drop(st);
    axum::Json(json!({ "data": data })).into_response()
}

/// The document of a POST / PUT body: the object itself, or Frappe's `data`
/// wrapper (object or JSON string).
fn body_doc(body: &[u8]) -> Result<Map<String, Value>, Response> {
    let bad = || {
        validation(
            "ValidationError",
            "Invalid request body",
            "The request body must be a JSON object",
        )
    };
    let mut v: Value = serde_json::from_slice(body).map_err(|_| bad())?;
    if let Some(inner) = v.get("data").cloned() {
        v = match inner {
            Value::String(s) => serde_json::from_str(&s).map_err(|_| bad())?,
            other => other,
        };
    }
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(bad()),
    }
}

/// Sales Invoice validation on save: mandatory customer and items, known
/// modes of payment, at least one payment on a POS invoice.
fn validate_invoice(doc: &Map<String, Value>, name: &str) -> Result<(), Response> {
    let blank = |v: Option<&Value>| match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    for (field, label) in [("customer", "Customer"), ("items", "Items")] {
        if blank(doc.get(field)) {
            return Err(validation(
                "MandatoryError",
                &format!("[Sales Invoice, {name}]: {field}"),
                &format!("Error: Value missing for Sales Invoice: {label}"),
            ));
        }
    }
    let payments = doc
        .get("payments")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, p) in payments.iter().enumerate() {
        let mode = p
            .get("mode_of_payment")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !MODES_OF_PAYMENT.contains(&mode) {
            let msg = format!("Could not find Mode of Payment: {mode}");
            return Err(frappe_error(
                StatusCode::EXPECTATION_FAILED,
                "LinkValidationError",
                &msg,
                &format!("Row #{}: {msg}", i + 1),
                "Message",
            ));
        }
    }
    if truthy(doc.get("is_pos")) && payments.is_empty() {
        let msg = "At least one mode of payment is required for POS invoice.";
        return Err(validation("ValidationError", msg, msg));
    }
    Ok(())
}

/// Fills the computed fields of a Sales Invoice (amounts, child rows, status).
fn compute_invoice(doc: &mut Map<String, Value>) {
    let parent = doc.get("name").cloned().unwrap_or(Value::Null);
    let docstatus = doc.get("docstatus").cloned().unwrap_or(json!(0));
    let mut grand_total = 0.0;
    if let Some(Value::Array(items)) = doc.get_mut("items") {
        for (i, item) in items.iter_mut().enumerate() {
            if let Value::Object(row) = item {
                let amount = number(row.get("qty")) * number(row.get("rate"));
                grand_total += amount;
                row.insert("idx".into(), json!(i + 1));
                row.insert("amount".into(), json!(amount));
                row.insert("parent".into(), parent.clone());
                row.insert("parenttype".into(), json!(SALES_INVOICE));
                row.insert("parentfield".into(), json!("items"));
                row.insert("docstatus".into(), docstatus.clone());
                row.insert("doctype".into(), json!("Sales Invoice Item"));
            }
        }
    }
    let mut paid = 0.0;
    if let Some(Value::Array(payments)) = doc.get_mut("payments") {
        for (i, p) in payments.iter_mut().enumerate() {
            if let Value::Object(row) = p {
                paid += number(row.get("amount"));
                row.insert("idx".into(), json!(i + 1));
                row.insert("parent".into(), parent.clone());
                row.insert("parenttype".into(), json!(SALES_INVOICE));
                row.insert("parentfield".into(), json!("payments"));
                row.insert("docstatus".into(), docstatus.clone());
                row.insert("doctype".into(), json!("Sales Invoice Payment"));
            }
        }
    }
    if !truthy(doc.get("is_pos")) {
        paid = 0.0;
    }
    let outstanding = (grand_total - paid).max(0.0);
    doc.insert("total".into(), json!(grand_total));
    doc.insert("grand_total".into(), json!(grand_total));
    doc.insert("rounded_total".into(), json!(grand_total.round()));
    doc.insert("paid_amount".into(), json!(paid));
    doc.insert("outstanding_amount".into(), json!(outstanding));
    let status = match docstatus.as_i64() {
        Some(1) if outstanding == 0.0 => "Paid",
        Some(1) => "Unpaid",
        Some(2) => "Cancelled",
        _ => "Draft",
    };
    doc.insert("status".into(), json!(status));
}

/// `POST /api/resource/Sales Invoice`.
async fn create(
    State(sim): State<Arc<Sim>>,
    Path(doctype): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(res) = authenticate(&sim, &headers) {
        return res;
    }
    if doctype != SALES_INVOICE {
        return frappe_error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            "",
            &format!("No permission to create {doctype}"),
            "Not Permitted",
        );
    }
    let mut doc = match body_doc(&body) {
        Ok(d) => d,
        Err(res) => return res,
    };
    let docstatus = doc.get("docstatus").map_or(0, |v| number(Some(v)) as i64);
    if !(0..=1).contains(&docstatus) {
        let msg = format!("Cannot change docstatus from 0 to {docstatus}");
        return validation("DocstatusTransitionError", &msg, &msg);
    }
    if let Err(res) = validate_invoice(&doc, "new-sales-invoice-1") {
        return res;
    }
    let po_no = doc
        .get("po_no")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut st = sim.state();
    if sim.config.erp_unique_po_no && !po_no.is_empty() {
        if let Some(existing) = st.invoices.with_po(&po_no).next() {
            let msg = format!(
                "Duplicate entry '{po_no}' for key 'po_no': Sales Invoice {} already exists",
                existing["name"].as_str().unwrap_or_default()
            );
            return frappe_error(
                StatusCode::CONFLICT,
                "DuplicateEntryError",
                &msg,
                &msg,
                "Message",
            );
        }
    }
    let name = st.next_invoice_name();
    let now = frappe_now();
    let today = frappe_today();
    if !truthy(doc.get("set_posting_time")) || doc.get("posting_date").is_none_or(Value::is_null) {
        // Frappe overwrites the posting date unless set_posting_time is 1.
        doc.insert("posting_date".into(), json!(today));
    }
    if doc.get("due_date").is_none_or(Value::is_null) {
        let posting = doc["posting_date"].clone();
        doc.insert("due_date".into(), posting);
    }
    doc.insert("name".into(), json!(name));
    doc.insert("doctype".into(), json!(SALES_INVOICE));
    doc.insert("docstatus".into(), json!(docstatus));
    doc.insert("owner".into(), json!("Administrator"));
    doc.insert("modified_by".into(), json!("Administrator"));
    doc.insert("creation".into(), json!(now));
    doc.insert("modified".into(), json!(now));
    doc.entry("currency").or_insert(json!("DZD"));
    doc.entry("po_no").or_insert(Value::Null);
    compute_invoice(&mut doc);
    let doc = Value::Object(doc);
    st.invoices.push(doc.clone());
    axum::Json(json!({ "data": doc })).into_response()
}

/// `GET /api/resource/{doctype}/{name}`.
async fn read(
    State(sim): State<Arc<Sim>>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(res) = authenticate(&sim, &headers) {
        return res;
    }
    let doc = match doctype.as_str() {
        SALES_INVOICE => sim.state().invoices.by_name(&name).cloned(),
        MODE_OF_PAYMENT => modes_of_payment()
            .into_iter()
            .find(|d| d["name"] == name.as_str()),
        other => return not_found(&format!("DocType {other} not found")),
    };
    match doc {
        Some(d) => axum::Json(json!({ "data": d })).into_response(),
        None => not_found(&format!("{doctype} {name} not found")),
    }
}

/// `PUT /api/resource/Sales Invoice/{name}`: edits a draft, or moves docstatus
/// 0->1 (submit) / 1->2 (cancel). A stale `modified` in the body is a
/// TimestampMismatchError, as in Frappe.
async fn update(
    State(sim): State<Arc<Sim>>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(res) = authenticate(&sim, &headers) {
        return res;
    }
    if doctype != SALES_INVOICE {
        return frappe_error(
            StatusCode::FORBIDDEN,
            "PermissionError",
            "",
            &format!("No permission to update {doctype}"),
            "Not Permitted",
        );
    }
    let patch = match body_doc(&body) {
        Ok(d) => d,
        Err(res) => return res,
    };
    let mut st = sim.state();
    let Some(Value::Object(current)) = st.invoices.by_name(&name).cloned() else {
        return not_found(&format!("{SALES_INVOICE} {name} not found"));
    };
    if let Some(stamp) = patch.get("modified") {
        if stamp != &current["modified"] {
            return timestamp_mismatch();
        }
    }
    let from = current
        .get("docstatus")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let to = patch
        .get("docstatus")
        .map_or(from, |v| number(Some(v)) as i64);
    if !matches!((from, to), (0, 0) | (0, 1) | (1, 1) | (1, 2)) {
        let msg = if from == 2 {
            "Cannot edit cancelled document".to_string()
        } else {
            format!("Cannot change docstatus from {from} to {to}")
        };
        return validation("DocstatusTransitionError", &msg, &msg);
    }
    let mut doc = current.clone();
    for (k, v) in &patch {
        if matches!(
            k.as_str(),
            "name" | "doctype" | "modified" | "creation" | "owner"
        ) {
            continue;
        }
        if from >= 1 && k != "docstatus" && current.get(k) != Some(v) {
            let msg = format!("Not allowed to change {k} after submission");
            return validation("UpdateAfterSubmitError", &msg, &msg);
        }
        doc.insert(k.clone(), v.clone());
    }
    if from == 0 {
        if let Err(res) = validate_invoice(&doc, &name) {
            return res;
        }
    }
    doc.insert("docstatus".into(), json!(to));
    doc.insert("modified".into(), json!(frappe_now()));
    compute_invoice(&mut doc);
    st.invoices.replace(&name, Value::Object(doc.clone()));
    axum::Json(json!({ "data": doc })).into_response()
}

/// `/api/method/ping` and `/api/method/frappe.auth.get_logged_user`, the
/// calls clients use as health and credential checks.
async fn method(
    State(sim): State<Arc<Sim>>,
    Path(method): Path<String>,
    headers: HeaderMap,
) -> Response {
    if method == "ping" {
        return axum::Json(json!({"message": "pong"})).into_response();
    }
    if let Err(res) = authenticate(&sim, &headers) {
        return res;
    }
    match method.as_str() {
        "frappe.auth.get_logged_user" => {
            axum::Json(json!({"message": "Administrator"})).into_response()
        }
        other => not_found(&format!("Failed to get method for command {other}")),
    }
}

fn timestamp_mismatch() -> Response {
    let msg = "Error: Document has been modified after you have opened it. Please refresh to get the latest document.";
    validation("TimestampMismatchError", msg, msg)
}

/// Injected failures in Frappe's shape; 429 also carries `X-RateLimit-*`.
pub(super) fn fault_response(status: StatusCode, retry_after: Option<u64>) -> Response {
    match status.as_u16() {
        401 => frappe_error(
            status,
            "AuthenticationError",
            "",
            "Invalid API key or secret",
            "Not Permitted",
        ),
        403 => frappe_error(
            status,
            "PermissionError",
            "",
            "Not permitted",
            "Not Permitted",
        ),
        404 => not_found("Sales Invoice not found"),
        409 => {
            let msg = "Duplicate entry: document already exists";
            frappe_error(status, "DuplicateEntryError", msg, msg, "Message")
        }
        417 => timestamp_mismatch(),
        429 => {
            let msg =
                "You hit the rate limit because of too many requests. Please try after sometime.";
            let mut res = frappe_error(
                status,
                "TooManyRequestsError",
                msg,
                msg,
                "Rate Limit Exceeded",
            );
            let h = res.headers_mut();
            h.insert("x-ratelimit-limit", HeaderValue::from(RATE_LIMIT));
            h.insert("x-ratelimit-remaining", HeaderValue::from(0u64));
            h.insert(
                "x-ratelimit-reset",
                HeaderValue::from(retry_after.unwrap_or(0)),
            );
            res
        }
        503 => frappe_error(
            status,
            "SessionStopped",
            "Session Stopped",
            "The site is under maintenance. Please try again later.",
            "Service Unavailable",
        ),
        s if s >= 500 => {
            let detail =
                "(1213, 'Deadlock found when trying to get lock; try restarting transaction')";
            frappe_error(
                status,
                "QueryDeadlockError",
                detail,
                "Internal Server Error",
                "Error",
            )
        }
        _ => {
            let msg = status.canonical_reason().unwrap_or("Error");
            frappe_error(status, "ValidationError", msg, msg, "Message")
        }
    }
}
