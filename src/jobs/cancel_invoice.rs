//! `cancel_invoice` (per order): the shop cancelled or refunded the order,
//! so its ERP invoice is cancelled, once.
//!
//! 1. The shop is asked first: an order that is no longer cancelled or
//!    refunded keeps its invoice.
//! 2. Whether an invoice exists is settled under the invoice's own creation
//!    claim: with no claim yet, this job takes it and looks the ERP up by
//!    `po_no`; none there means none will ever be made (`voided`, which
//!    `create_invoice` then skips), so a cancellation that arrives before
//!    the invoice still ends with no live invoice. A creation in progress
//!    makes this job wait (retry) until the invoice exists.
//! 3. The `cancel` step is claimed. The invoice is read back: a draft is
//!    submitted first (Frappe refuses 0 -> 2), submitted Payment Entries we
//!    made for the order (a refund after a payment) are cancelled before it
//!    (Frappe refuses to cancel a document a submitted one links to), then
//!    it is cancelled. Each move is decided from the docstatus read back, so
//!    a retry after a worker died mid-step continues where it stopped.

use serde_json::json;

use crate::domain::payment::cancels_invoice;
use crate::domain::{ErrorClass, FailureClass, JobEnvelope};
use crate::jobs::{load_order, Deps, Done, JobError};
use crate::ledger::invoice_steps::{self, Step, StepClaim};
use crate::ledger::invoices::{self, InvoiceClaim};

/// Cancel `envelope.order_ref`'s invoice.
///
/// # Errors
/// Transient on ERP/shop/database trouble, while an invoice is being created
/// or paid elsewhere; permanent when the ERP refuses (e.g. a payment entry
/// made by hand still links to the invoice).
pub async fn perform(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    let order = load_order(envelope, deps).await?;
    let shop = deps.accounts.shop(&order.store)?;
    let live = shop.get_order(order.shop_order_id).await?;
    if !cancels_invoice(&live.status) {
        return Ok(Done::Skipped(format!(
            "order is {} in the shop: its invoice stands",
            live.status
        )));
    }
    let erp = deps.accounts.erp()?;
    let db = &deps.db;
    let job = envelope.job_id;
    let name = match invoices::claim(db, order.id, &order.reference, job, deps.claim_lease).await? {
        InvoiceClaim::Settled { erp_name } => erp_name,
        InvoiceClaim::Voided => {
            return Ok(Done::Skipped(format!(
                "no invoice was made for {}: nothing to cancel",
                order.reference
            )));
        }
        InvoiceClaim::HeldElsewhere => {
            return Err(JobError::transient(
                FailureClass::ClaimHeld,
                "an invoice is being created for this order: it is cancelled once it exists",
            ));
        }
        InvoiceClaim::Acquired { .. } => {
            // While this job holds the creation claim nobody creates one.
            match erp.invoice_by_po(&order.reference).await? {
                Some(found) => {
                    invoices::settle(db, order.id, job, &found.name, false).await?;
                    found.name
                }
                None => {
                    invoices::void(db, order.id, job).await?;
                    return Ok(Done::Succeeded(Some(json!({
                        "voided": true,
                        "why": format!("order {} was {} before any invoice existed: none will be made", order.reference, live.status),
                    }))));
                }
            }
        }
    };

    match invoice_steps::claim(db, order.id, Step::Cancel, job, deps.claim_lease).await? {
        StepClaim::Done { .. } => {
            return Ok(Done::Skipped(format!("invoice {name} already cancelled")));
        }
        StepClaim::HeldElsewhere => {
            return Err(JobError::transient(
                FailureClass::ClaimHeld,
                "another job is cancelling this order's invoice",
            ));
        }
        StepClaim::Acquired { .. } => {}
    }
    // A payment being recorded right now would link to the invoice after we
    // looked: wait for it (it sees our claim and stands down next time).
    if invoice_steps::held_live(db, order.id, Step::Payment, deps.claim_lease).await? {
        return Err(JobError::transient(
            FailureClass::ClaimHeld,
            "a payment is being recorded for this invoice: cancelling after it",
        ));
    }
    match cancel_in_erp(deps, &order.reference, &name).await {
        Ok(detail) => {
            invoices::set_docstatus(db, order.id, 2).await?;
            if detail["submitted_first"] == true {
                invoice_steps::record_done(db, order.id, Step::Submit, job, Some(&name)).await?;
            }
            invoice_steps::finish(db, order.id, Step::Cancel, job, Some(&name), &detail).await?;
            Ok(Done::Succeeded(Some(detail)))
        }
        Err(e) => {
            if matches!(e, JobError::Permanent { .. }) {
                // Nothing was cancelled for good: let a replay claim again.
                invoice_steps::release(db, order.id, Step::Cancel, job).await?;
            }
            Err(e)
        }
    }
}

/// The ERP side: submit a draft, cancel our payments, cancel the invoice.
async fn cancel_in_erp(
    deps: &Deps,
    reference: &str,
    name: &str,
) -> Result<serde_json::Value, JobError> {
    let erp = deps.accounts.erp()?;
    let doc = match erp.invoice(name).await {
        Ok(doc) => doc,
        Err(e) if e.class == ErrorClass::NotFound => {
            // Deleted in the ERP by hand: nothing is left to cancel.
            return Ok(json!({ "invoice": name, "deleted_in_erp": true }));
        }
        Err(e) => return Err(e.into()),
    };
    if doc.docstatus == 2 {
        return Ok(json!({ "invoice": name, "already_cancelled": true }));
    }
    let submitted_first = doc.docstatus == 0;
    if submitted_first {
        erp.set_invoice_docstatus(name, 1).await?;
    }
    let mut payments_cancelled = Vec::new();
    for entry in erp.payment_entries(reference).await? {
        if entry.docstatus == 1 {
            erp.cancel_payment_entry(&entry.name).await?;
            payments_cancelled.push(entry.name);
        }
    }
    erp.set_invoice_docstatus(name, 2).await?;
    Ok(json!({
        "invoice": name,
        "submitted_first": submitted_first,
        "payments_cancelled": payments_cancelled,
    }))
}
