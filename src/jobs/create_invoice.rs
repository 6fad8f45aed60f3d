//! `create_invoice` (per order): create the order's ERP Sales Invoice exactly
//! once. Claim in Postgres, look up by `po_no` in the ERP, then create;
//! defer while payment is pending.

use chrono::NaiveDate;
use serde_json::json;

use crate::domain::payment::{is_awaiting_payment, is_payable, mode_of_payment};
use crate::domain::{ErrorClass, FailureClass, JobEnvelope};
use crate::jobs::{load_order, Deps, Done, JobError};
use crate::ledger::invoices::{self, InvoiceClaim};
use crate::providers::erpnext::{InvoiceItem, InvoicePayment, SalesInvoice};

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
    match invoices::claim(
        &deps.db,
        order.id,
        &order.reference,
        envelope.job_id,
        deps.claim_lease,
    )
    .await?
    {
        InvoiceClaim::Settled { erp_name } => {
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
        InvoiceClaim::Acquired { .. } => {}
    }
    // The ERP has no idempotency key: look up by po_no before creating, which
    // also covers an earlier attempt that created it and died before settling.
    if let Some(existing) = erp.find_invoice_by_po(&order.reference).await? {
        invoices::settle(&deps.db, order.id, envelope.job_id, &existing, false).await?;
        return Ok(Done::Skipped(format!(
            "ERP already has invoice {existing} for {}",
            order.reference
        )));
    }
    let invoice = build_invoice(&order, &live.raw, mode);
    match erp.create_invoice(&invoice).await {
        Ok(name) => {
            invoices::settle(&deps.db, order.id, envelope.job_id, &name, true).await?;
            Ok(Done::Succeeded(Some(
                json!({ "invoice": name, "mode_of_payment": mode }),
            )))
        }
        Err(e) if e.class == ErrorClass::AlreadyExists => {
            let existing = erp
                .find_invoice_by_po(&order.reference)
                .await?
                .unwrap_or_default();
            invoices::settle(&deps.db, order.id, envelope.job_id, &existing, false).await?;
            Ok(Done::Skipped(format!(
                "ERP already has invoice {existing} for {}",
                order.reference
            )))
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
        payments: vec![InvoicePayment {
            mode_of_payment: mode.to_owned(),
            amount: total,
        }],
    }
}
