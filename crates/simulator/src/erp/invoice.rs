//! Sales Invoice documents: read, create, update (submit, cancel), with
//! Frappe's validation on save and its computed fields.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::{
    authenticate, frappe_error, frappe_now, frappe_today, modes_of_payment, not_found,
    timestamp_mismatch, validation, MODES_OF_PAYMENT, MODE_OF_PAYMENT, PAYMENT_ENTRY,
    SALES_INVOICE,
};
use crate::sim::Sim;

/// A numeric field as Frappe accepts it: a number or a numeric string;
/// anything else is 0.
pub(super) fn number(v: Option<&Value>) -> f64 {
    match v {
        Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// A check field: `true`, or any non-zero number.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(v) => number(Some(v)) != 0.0,
        None => false,
    }
}

/// The document of a POST / PUT body: the object itself, or Frappe's `data`
/// wrapper (object or JSON string).
pub(super) fn body_doc(body: &[u8]) -> Result<Map<String, Value>, Response> {
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

/// Fills the computed fields of a Sales Invoice (amounts, child rows,
/// status); `entries_paid` is what submitted Payment Entries allocate to it.
pub(super) fn compute_invoice(doc: &mut Map<String, Value>, entries_paid: f64) {
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
    paid += entries_paid;
    let outstanding = (grand_total - paid).max(0.0);
    doc.insert("total".into(), json!(grand_total));
    doc.insert("grand_total".into(), json!(grand_total));
    doc.insert("rounded_total".into(), json!(grand_total.round()));
    doc.insert("paid_amount".into(), json!(paid));
    doc.insert("outstanding_amount".into(), json!(outstanding));
    let status = match docstatus.as_i64() {
        Some(1) if outstanding == 0.0 => "Paid",
        Some(1) if paid > 0.0 => "Partly Paid",
        Some(1) => "Unpaid",
        Some(2) => "Cancelled",
        _ => "Draft",
    };
    doc.insert("status".into(), json!(status));
}

/// `POST /api/resource/Sales Invoice`.
pub(super) async fn create(
    State(sim): State<Arc<Sim>>,
    Path(doctype): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(res) = authenticate(&sim, &headers) {
        return res;
    }
    if doctype == PAYMENT_ENTRY {
        return super::payment::create(&sim, &body);
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
    compute_invoice(&mut doc, 0.0);
    let moves_stock = truthy(doc.get("update_stock"));
    let doc = Value::Object(doc);
    st.invoices.push(doc.clone());
    st.invoices
        .note_docstatus(&name, None, docstatus, moves_stock);
    axum::Json(json!({ "data": doc })).into_response()
}

/// `GET /api/resource/{doctype}/{name}`.
pub(super) async fn read(
    State(sim): State<Arc<Sim>>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if let Err(res) = authenticate(&sim, &headers) {
        return res;
    }
    let doc = match doctype.as_str() {
        SALES_INVOICE => sim.state().invoices.by_name(&name).cloned(),
        PAYMENT_ENTRY => sim.state().invoices.payment_by_name(&name).cloned(),
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
pub(super) async fn update(
    State(sim): State<Arc<Sim>>,
    Path((doctype, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(res) = authenticate(&sim, &headers) {
        return res;
    }
    if doctype == PAYMENT_ENTRY {
        return super::payment::update(&sim, &name, &body);
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
    let payments = st.invoices.active_payments_for(&name);
    if (from, to) == (1, 2) {
        // Frappe refuses to cancel a document that submitted documents link
        // to: the payment is cancelled first.
        if let Some((entry, _)) = payments.first() {
            let msg = format!(
                "Cannot delete or cancel because Sales Invoice {name} is linked with Payment Entry {entry}"
            );
            return validation("LinkExistsError", &msg, &msg);
        }
    }
    let entries_paid: f64 = payments.iter().map(|(_, a)| a).sum();
    doc.insert("docstatus".into(), json!(to));
    doc.insert("modified".into(), json!(frappe_now()));
    compute_invoice(&mut doc, entries_paid);
    let moves_stock = truthy(doc.get("update_stock"));
    st.invoices.replace(&name, Value::Object(doc.clone()));
    st.invoices
        .note_docstatus(&name, Some(from), to, moves_stock);
    axum::Json(json!({ "data": doc })).into_response()
}
