//! Payment Entries: create (draft or submitted) and update (submit, cancel),
//! with the validation ERPNext applies to a payment received against a
//! Sales Invoice: the party, a known account, references to submitted
//! invoices, and no allocation above what is outstanding.

use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::invoice::{body_doc, compute_invoice, number};
use super::{frappe_now, frappe_today, not_found, validation, PAYMENT_ENTRY, SALES_INVOICE};
use crate::sim::Sim;
use crate::state::Invoices;

/// The accounts of the simulated company a payment may be received into.
pub(crate) const ACCOUNTS: [&str; 3] = ["Kashier - SIM", "Cash - SIM", "Bank - SIM"];

/// `(invoice name, allocated amount)` of each reference row, or the error.
fn references(doc: &Map<String, Value>) -> Result<Vec<(String, f64)>, Response> {
    let rows = doc
        .get("references")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if rows.is_empty() {
        let msg = "Error: Value missing for Payment Entry: References";
        return Err(validation("MandatoryError", "references", msg));
    }
    rows.iter()
        .map(|r| {
            if r["reference_doctype"] != SALES_INVOICE {
                let msg = "Reference Doctype must be one of Sales Invoice";
                return Err(validation("ValidationError", msg, msg));
            }
            let name = r["reference_name"].as_str().unwrap_or_default().to_string();
            Ok((name, number(r.get("allocated_amount"))))
        })
        .collect()
}

/// Recomputes the outstanding amount of each invoice in `names` from the
/// submitted payments.
fn refresh_invoices(invoices: &mut Invoices, names: &[String]) {
    for name in names {
        let paid: f64 = invoices
            .active_payments_for(name)
            .iter()
            .map(|(_, a)| a)
            .sum();
        if let Some(Value::Object(mut doc)) = invoices.by_name(name).cloned() {
            compute_invoice(&mut doc, paid);
            invoices.replace(name, Value::Object(doc));
        }
    }
}

/// Checks a payment about to be submitted against its invoices.
fn check_submittable(
    invoices: &Invoices,
    doc: &Map<String, Value>,
) -> Result<Vec<String>, Response> {
    let refs = references(doc)?;
    for (name, allocated) in &refs {
        let Some(invoice) = invoices.by_name(name) else {
            return Err(not_found(&format!("{SALES_INVOICE} {name} not found")));
        };
        match invoice["docstatus"].as_i64() {
            Some(1) => {}
            Some(2) => {
                let msg = format!("Sales Invoice {name} is cancelled");
                return Err(validation("ValidationError", &msg, &msg));
            }
            _ => {
                let msg = format!("Sales Invoice {name} must be submitted");
                return Err(validation("ValidationError", &msg, &msg));
            }
        }
        let outstanding = invoice["outstanding_amount"].as_f64().unwrap_or(0.0);
        if *allocated > outstanding + 0.005 {
            let msg = format!(
                "Row #1: Allocated Amount ({allocated}) cannot be greater than outstanding amount ({outstanding}) of {name}"
            );
            return Err(validation("ValidationError", &msg, &msg));
        }
    }
    Ok(refs.into_iter().map(|(n, _)| n).collect())
}

/// `POST /api/resource/Payment Entry`.
pub(super) fn create(sim: &Sim, body: &[u8]) -> Response {
    let mut doc = match body_doc(body) {
        Ok(d) => d,
        Err(res) => return res,
    };
    for field in ["party", "paid_to"] {
        if doc
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(|v| v.trim().is_empty())
        {
            return validation(
                "MandatoryError",
                &format!("[Payment Entry, new-payment-entry-1]: {field}"),
                &format!("Error: Value missing for Payment Entry: {field}"),
            );
        }
    }
    let account = doc["paid_to"].as_str().unwrap_or_default().to_string();
    if !ACCOUNTS.contains(&account.as_str()) {
        let msg = format!("Could not find Account: {account}");
        return validation("LinkValidationError", &msg, &msg);
    }
    if number(doc.get("paid_amount")) <= 0.0 {
        let msg = "Paid Amount must be greater than zero";
        return validation("ValidationError", msg, msg);
    }
    let docstatus = doc.get("docstatus").map_or(0, |v| number(Some(v)) as i64);
    if !(0..=1).contains(&docstatus) {
        let msg = format!("Cannot change docstatus from 0 to {docstatus}");
        return validation("DocstatusTransitionError", &msg, &msg);
    }
    let year = frappe_today().get(..4).unwrap_or("2026").to_string();
    let now = frappe_now();
    // One lock from the check to the insert: two payments racing for one
    // invoice cannot both pass the outstanding-amount check.
    let mut st = sim.state();
    let touched = if docstatus == 1 {
        match check_submittable(&st.invoices, &doc) {
            Ok(names) => names,
            Err(res) => return res,
        }
    } else if let Err(res) = references(&doc) {
        return res;
    } else {
        Vec::new()
    };
    let name = st.invoices.next_payment_name(&year);
    doc.insert("name".into(), json!(name));
    doc.insert("doctype".into(), json!(PAYMENT_ENTRY));
    doc.insert("docstatus".into(), json!(docstatus));
    doc.insert("creation".into(), json!(now));
    doc.insert("modified".into(), json!(now));
    doc.entry("posting_date").or_insert(json!(frappe_today()));
    st.invoices.push_payment(Value::Object(doc.clone()));
    refresh_invoices(&mut st.invoices, &touched);
    drop(st);
    axum::Json(json!({ "data": Value::Object(doc) })).into_response()
}

/// `PUT /api/resource/Payment Entry/{name}`: submit (0->1) or cancel (1->2).
pub(super) fn update(sim: &Sim, name: &str, body: &[u8]) -> Response {
    let patch = match body_doc(body) {
        Ok(d) => d,
        Err(res) => return res,
    };
    let mut st = sim.state();
    let Some(Value::Object(current)) = st.invoices.payment_by_name(name).cloned() else {
        return not_found(&format!("{PAYMENT_ENTRY} {name} not found"));
    };
    let from = current
        .get("docstatus")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let to = patch
        .get("docstatus")
        .map_or(from, |v| number(Some(v)) as i64);
    if !matches!((from, to), (0, 0) | (0, 1) | (1, 1) | (1, 2)) {
        let msg = format!("Cannot change docstatus from {from} to {to}");
        return validation("DocstatusTransitionError", &msg, &msg);
    }
    let mut doc = current.clone();
    if from == 0 {
        for (k, v) in &patch {
            if !matches!(k.as_str(), "name" | "doctype" | "modified" | "creation") {
                doc.insert(k.clone(), v.clone());
            }
        }
    }
    let touched = match references(&doc) {
        Ok(refs) => refs.into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        Err(res) => return res,
    };
    if (from, to) == (0, 1) {
        if let Err(res) = check_submittable(&st.invoices, &doc) {
            return res;
        }
    }
    doc.insert("docstatus".into(), json!(to));
    doc.insert("modified".into(), json!(frappe_now()));
    st.invoices
        .replace_payment(name, Value::Object(doc.clone()));
    refresh_invoices(&mut st.invoices, &touched);
    drop(st);
    axum::Json(json!({ "data": Value::Object(doc) })).into_response()
}
