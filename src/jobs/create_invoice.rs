//! `create_invoice` (per order): create the order's ERP Sales Invoice exactly
//! once. Claim in Postgres, look up by `po_no` in the ERP, then create;
//! defer while payment is pending.
//!
//! Two kinds (args `{"invoice": "historical"}` from the backfill, live
//! otherwise): the live invoice is created submitted, unpaid, moving stock,
//! and its payment follows as `record_payment` when the store takes
//! payments for its method; the historical one is a paid POS invoice that
//! moves no stock, for reporting only. An invoice the ERP already has (the
//! old system's) is skipped, whatever its kind.

use chrono::NaiveDate;
use serde_json::json;

use crate::domain::payment::{is_awaiting_payment, is_payable, mode_of_payment};
use crate::domain::{ErrorClass, FailureClass, JobEnvelope};
use crate::jobs::{load_order, Deps, Done, JobError};
use crate::ledger::invoice_steps::{self, Step};
use crate::ledger::invoices::{self, InvoiceClaim};
use crate::providers::erpnext::{InvoiceItem, InvoiceKind, SalesInvoice};

/// Which invoice a job makes: its args say `{"invoice": "historical"}`
/// (the backfill), else live. A replay keeps its args, hence its kind.
pub fn kind_of(envelope: &JobEnvelope) -> InvoiceKind {
    match envelope.args.get("invoice").and_then(|v| v.as_str()) {
        Some("historical") => InvoiceKind::Historical,
        _ => InvoiceKind::Live,
    }
}

/// The args of a backfill's `create_invoice`.
pub fn historical_args() -> serde_json::Value {
    json!({ "invoice": "historical" })
}

/// Shop order meta keys that carry a delivery date, then a delivery time or
/// window, as the common WooCommerce delivery-slot plugins write them; the
/// first present wins.
const DELIVERY_DATE_KEYS: [&str; 4] = [
    "_delivery_date",
    "delivery_date",
    "jckwds_date",
    "_orddd_timestamp",
];
const DELIVERY_TIME_KEYS: [&str; 4] = [
    "_delivery_time",
    "delivery_time",
    "jckwds_timeslot",
    "_orddd_time_slot",
];

/// Create `envelope.order_ref`'s invoice.
///
/// # Errors
/// Transient on ERP/shop/database trouble or while another worker holds the
/// claim; permanent on an unknown payment method or an ERP validation error.
pub async fn perform(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    let order = load_order(envelope, deps).await?;
    // Payment status changes in the shop: ask it, not our last import.
    let shop = deps.accounts.shop(&order.store)?;
    let live = shop.get_order(order.shop_order_id).await?;
    if is_awaiting_payment(&live.status) {
        return Ok(Done::Deferred(format!(
            "payment is {} in the shop",
            live.status
        )));
    }
    if !is_payable(&live.status) {
        return Ok(Done::Skipped(format!(
            "order is {} in the shop: nothing to invoice",
            live.status
        )));
    }
    let mode = mode_of_payment(&live.payment_method).ok_or_else(|| {
        JobError::permanent(
            FailureClass::UnknownPaymentMethod,
            format!(
                "unknown payment method '{}' on order {}: the ERP accepts instapay, cod, kashier_card, kashier_wallet",
                live.payment_method, order.reference
            ),
        )
    })?;

    let erp = deps.accounts.erp()?;
    let taken_over = match invoices::claim(
        &deps.db,
        order.id,
        &order.reference,
        envelope.job_id,
        deps.claim_lease,
    )
    .await?
    {
        InvoiceClaim::Settled { erp_name } => {
            // A redelivery after the invoice was settled: make sure its
            // payment follows (an idempotent enqueue).
            if kind_of(envelope) == InvoiceKind::Live {
                crate::jobs::record_payment::enqueue_after_invoice(deps, &order).await?;
            }
            return Ok(Done::Skipped(format!(
                "invoice {erp_name} already recorded"
            )));
        }
        InvoiceClaim::HeldElsewhere => {
            return Err(JobError::transient(
                FailureClass::ClaimHeld,
                "another job is creating this order's invoice",
            ));
        }
        InvoiceClaim::Voided => {
            return Ok(Done::Skipped(format!(
                "order {} was cancelled before any invoice was made",
                order.reference
            )));
        }
        InvoiceClaim::Acquired { taken_over } => taken_over,
    };
    let kind = kind_of(envelope);
    // The ERP has no idempotency key: look up by po_no before creating, which
    // also covers an earlier attempt that created it and died before settling.
    if let Some(found) = erp.invoice_by_po(&order.reference).await? {
        return settle_found(deps, envelope, &order, found, taken_over, kind).await;
    }
    let total: f64 = order.total.parse().unwrap_or_default();
    let invoice = build_invoice(&order, &live.raw, mode).with_kind(kind, total);
    match erp.create_invoice(&invoice).await {
        Ok(name) => {
            invoices::settle_made(
                &deps.db,
                order.id,
                envelope.job_id,
                &name,
                kind.as_str(),
                i16::from(invoice.docstatus),
            )
            .await?;
            invoice_steps::record_done(
                &deps.db,
                order.id,
                Step::Submit,
                envelope.job_id,
                Some(&name),
            )
            .await?;
            if kind == InvoiceKind::Live {
                crate::jobs::record_payment::enqueue_after_invoice(deps, &order).await?;
            }
            Ok(Done::Succeeded(Some(json!({
                "invoice": name,
                "kind": kind.as_str(),
                "mode_of_payment": mode,
                "docstatus": invoice.docstatus,
                "update_stock": invoice.update_stock,
            }))))
        }
        Err(e) if e.class == ErrorClass::AlreadyExists => {
            // Made since our look-up: by a racing attempt of ours, or by hand.
            match erp.invoice_by_po(&order.reference).await? {
                Some(found) => settle_found(deps, envelope, &order, found, true, kind).await,
                None => {
                    invoices::settle(&deps.db, order.id, envelope.job_id, "", false).await?;
                    Ok(Done::Skipped(format!(
                        "ERP says an invoice for {} already exists",
                        order.reference
                    )))
                }
            }
        }
        Err(e) if !e.is_transient() => {
            // Rejected: nothing was created, so free the order for a replay.
            invoices::release(&deps.db, order.id, envelope.job_id).await?;
            Err(e.into())
        }
        // A timeout may have created it: keep the claim; the retry (same job)
        // re-claims and looks up by po_no first.
        Err(e) => Err(e.into()),
    }
}

/// Settle the claim with an invoice the ERP already has for the order.
///
/// After a takeover (`taken_over`: an earlier attempt held the claim, looked
/// the ERP up, found nothing, and may have died inside the create call) an
/// invoice shaped like the one this job makes (submitted, and POS exactly
/// when historical) is that attempt's: it is recorded as made, with its kind
/// and the submit step, and a live one's payment follows, as if the attempt
/// had settled. Any other invoice is the old system's (its were drafts):
/// recorded `existing` and left alone.
async fn settle_found(
    deps: &Deps,
    envelope: &JobEnvelope,
    order: &crate::ledger::orders::OrderRow,
    found: crate::providers::erpnext::InvoiceDoc,
    taken_over: bool,
    kind: InvoiceKind,
) -> Result<Done, JobError> {
    let shaped_like_ours =
        found.docstatus == 1 && (found.is_pos == 1) == (kind == InvoiceKind::Historical);
    if !(taken_over && shaped_like_ours) {
        invoices::settle(&deps.db, order.id, envelope.job_id, &found.name, false).await?;
        return Ok(Done::Skipped(format!(
            "ERP already has invoice {} for {}",
            found.name, order.reference
        )));
    }
    invoices::settle_made(
        &deps.db,
        order.id,
        envelope.job_id,
        &found.name,
        kind.as_str(),
        found.docstatus,
    )
    .await?;
    invoice_steps::record_done(
        &deps.db,
        order.id,
        Step::Submit,
        envelope.job_id,
        Some(&found.name),
    )
    .await?;
    if kind == InvoiceKind::Live {
        crate::jobs::record_payment::enqueue_after_invoice(deps, order).await?;
    }
    Ok(Done::Succeeded(Some(json!({
        "invoice": found.name,
        "kind": kind.as_str(),
        "docstatus": found.docstatus,
        "made_by_an_earlier_attempt": true,
    }))))
}

fn build_invoice(
    order: &crate::ledger::orders::OrderRow,
    raw: &serde_json::Value,
    mode: &str,
) -> SalesInvoice {
    let date = raw
        .get("date_created")
        .and_then(|d| d.as_str())
        .and_then(|d| d.get(..10))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    let total: f64 = order.total.parse().unwrap_or_default();
    let mut items: Vec<InvoiceItem> = raw
        .get("line_items")
        .and_then(|l| l.as_array())
        .map(|lines| {
            lines
                .iter()
                .map(|line| {
                    let name = line
                        .get("name")
                        .and_then(|n| n.as_str())
                        .unwrap_or("Item")
                        .to_owned();
                    let sku = line
                        .get("sku")
                        .and_then(|s| s.as_str())
                        .filter(|s| !s.is_empty());
                    let qty = line.get("quantity").and_then(|q| q.as_f64()).unwrap_or(1.0);
                    let rate = line
                        .get("price")
                        .and_then(|p| {
                            p.as_f64()
                                .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
                        })
                        .unwrap_or(0.0);
                    InvoiceItem {
                        item_code: sku.unwrap_or(&name).to_owned(),
                        item_name: name,
                        qty,
                        rate,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    if items.is_empty() {
        items.push(InvoiceItem {
            item_code: "ORDER".into(),
            item_name: format!("Order {}", order.reference),
            qty: 1.0,
            rate: total,
        });
    }
    SalesInvoice {
        customer: order
            .customer_name
            .clone()
            .unwrap_or_else(|| "Walk-in Customer".into()),
        posting_date: date,
        due_date: date,
        po_no: order.reference.clone(),
        items,
        payments: Vec::new(),
        is_pos: 0,
        update_stock: 0,
        docstatus: 0,
        custom_payment_method: mode.to_owned(),
        woo_order_id: order.shop_order_id,
        woo_order_number: raw
            .get("number")
            .and_then(|n| {
                n.as_str()
                    .map(str::to_owned)
                    .or_else(|| n.as_i64().map(|i| i.to_string()))
            })
            .unwrap_or_else(|| order.shop_order_id.to_string()),
        custom_delivery_date: meta_value(raw, &DELIVERY_DATE_KEYS),
        custom_delivery_time: meta_value(raw, &DELIVERY_TIME_KEYS),
    }
}

/// The first non-empty `meta_data` value among `keys` (strings as they are,
/// numbers as text).
fn meta_value(raw: &serde_json::Value, keys: &[&str]) -> Option<String> {
    let meta = raw.get("meta_data")?.as_array()?;
    keys.iter().find_map(|key| {
        meta.iter()
            .filter(|m| m.get("key").and_then(|k| k.as_str()) == Some(key))
            .find_map(|m| match m.get("value")? {
                serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn delivery_fields_come_from_the_first_known_meta_key() {
        let raw = json!({"meta_data": [
            {"id": 1, "key": "_other", "value": "x"},
            {"id": 2, "key": "delivery_time", "value": " 10:00-12:00 "},
            {"id": 3, "key": "_delivery_date", "value": "2026-03-01"},
            {"id": 4, "key": "delivery_date", "value": "ignored"},
        ]});
        assert_eq!(
            meta_value(&raw, &DELIVERY_DATE_KEYS).as_deref(),
            Some("2026-03-01")
        );
        assert_eq!(
            meta_value(&raw, &DELIVERY_TIME_KEYS).as_deref(),
            Some("10:00-12:00")
        );
        assert_eq!(
            meta_value(
                &json!({"meta_data": [{"key": "_delivery_date", "value": ""}]}),
                &DELIVERY_DATE_KEYS
            ),
            None
        );
        assert_eq!(meta_value(&json!({}), &DELIVERY_DATE_KEYS), None);
    }

    #[test]
    fn the_backfill_args_make_a_historical_invoice() {
        let mut envelope: JobEnvelope = serde_json::from_value(json!({
            "job_id": uuid::Uuid::now_v7(), "kind": "create_invoice", "store": "ALPH",
            "order_ref": "ALPH-1", "attempt": 1, "run": 1, "max_attempts": 8,
            "enqueued_at": chrono::Utc::now(), "source": "backfill"
        }))
        .unwrap();
        assert_eq!(kind_of(&envelope), InvoiceKind::Live);
        envelope.args = historical_args();
        assert_eq!(kind_of(&envelope), InvoiceKind::Historical);
    }
}
