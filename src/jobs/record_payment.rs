//! `record_payment` (per order): a Payment Entry in the ERP for a live
//! invoice, once, allocating its full outstanding amount, into the account
//! the store's rules name for the order's payment method (`[stores.payments]`):
//! prepaid methods (Kashier card and wallet) right after the invoice, cash on
//! delivery when the courier delivers, if the store records those.
//!
//! Claim the `payment` step, stand down if a cancellation has claimed the
//! invoice, look the ERP up by `reference_no` (the order reference), then
//! create. A historical invoice was paid with its creation, and one the ERP
//! already had (the old system's) is left to that system: nothing to do.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::domain::payment::{mode_of_payment, INVOICEABLE_STATUSES};
use crate::domain::{FailureClass, JobEnvelope, JobKind};
use crate::jobs::{load_order, Deps, Done, JobError};
use crate::ledger::invoice_steps::{self, Step, StepClaim};
use crate::ledger::invoices;
use crate::providers::erpnext::PaymentEntry;
use crate::queue::NewJob;

/// Namespace of the deterministic payment job ids: one job per (order,
/// trigger), however often the trigger is observed.
const PAYMENT_JOB_NAMESPACE: Uuid = Uuid::from_u128(0x2b6e_90d4_51a7_4c3e_8f12_7d40_a9c5_e611);

/// The `record_payment` job for `reference`, triggered by `trigger`
/// (`invoice` or `delivered`).
pub fn job_for(store: &str, reference: &str, trigger: &str) -> NewJob {
    NewJob {
        args: json!({ "trigger": trigger }),
        job_id: Some(Uuid::new_v5(
            &PAYMENT_JOB_NAMESPACE,
            format!("{reference}:{trigger}").as_bytes(),
        )),
        ..NewJob::for_order(JobKind::RecordPayment, store, reference)
    }
}

/// Enqueue the payment of a live invoice just made (or found settled) when
/// the store records payments for the order's method; idempotent (the job
/// id is derived from the order), so every path may call it.
///
/// # Errors
/// Postgres or Redis failed.
pub async fn enqueue_after_invoice(
    deps: &Deps,
    order: &crate::ledger::orders::OrderRow,
) -> Result<(), JobError> {
    let Ok(rules) = deps.accounts.rules(&order.store) else {
        return Ok(());
    };
    // Cash on delivery follows the invoice too when the parcel was
    // delivered before the invoice was made.
    let delivered = order.status.as_deref() == Some("delivered");
    if rules
        .payments
        .account_for(&order.payment_method, delivered)
        .is_none()
    {
        return Ok(());
    }
    deps.enqueuer
        .enqueue(
            crate::domain::Source::Job,
            vec![job_for(&order.store, &order.reference, "invoice")],
        )
        .await
        .map_err(|e| {
            JobError::transient(
                FailureClass::Queue,
                format!("enqueue record_payment: {e:#}"),
            )
        })?;
    Ok(())
}

/// Record `envelope.order_ref`'s payment.
///
/// # Errors
/// Transient on ERP/database trouble or while another job holds the step;
/// permanent when the ERP refuses the entry (an unknown account, named).
pub async fn perform(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    let order = load_order(envelope, deps).await?;
    let rules = deps.accounts.rules(&order.store)?;
    let delivered = order.status.as_deref() == Some("delivered");
    let Some(account) = rules.payments.account_for(&order.payment_method, delivered) else {
        return Ok(Done::Skipped(if order.payment_method == "cod" {
            format!(
                "cash on delivery: store {} records it on delivery {}; order is {}",
                order.store,
                if rules.payments.cod_on_delivery.is_some() {
                    "(configured)"
                } else {
                    "only when payments.cod_on_delivery is set"
                },
                order.status.as_deref().unwrap_or("not yet at the courier")
            )
        } else {
            format!(
                "store {} records no payment for method '{}'",
                order.store, order.payment_method
            )
        }));
    };
    let mode = mode_of_payment(&order.payment_method).ok_or_else(|| {
        JobError::permanent(
            FailureClass::UnknownPaymentMethod,
            format!(
                "unknown payment method '{}' on order {}",
                order.payment_method, order.reference
            ),
        )
    })?;
    let db = &deps.db;
    let job = envelope.job_id;
    let invoice = invoices::by_order(db, order.id).await?;
    let name = match invoice {
        Some(i) if i.state == "voided" => {
            return Ok(Done::Skipped(
                "the order was cancelled before any invoice: nothing to pay".into(),
            ));
        }
        Some(i) if i.kind.as_deref() == Some("historical") => {
            return Ok(Done::Skipped(format!(
                "historical invoice {} was paid when it was made",
                i.erp_name.unwrap_or_default()
            )));
        }
        Some(invoices::InvoiceRow {
            erp_name: Some(name),
            state,
            ..
        }) if state == "existing" => {
            return Ok(Done::Skipped(format!(
                "invoice {name} was made by another system: its payment is left to it"
            )));
        }
        Some(invoices::InvoiceRow {
            erp_name: Some(name),
            state,
            ..
        }) if state == "created" => name,
        Some(_) => {
            return Err(JobError::transient(
                FailureClass::ClaimHeld,
                "the order's invoice is being created: the payment follows it",
            ));
        }
        // An invoice is still to come (the shop says paid or awaiting
        // payment): look again later; its own job also enqueues this one.
        None if INVOICEABLE_STATUSES.contains(&order.shop_status.as_str()) => {
            return Ok(Done::Deferred(format!(
                "order {} has no invoice yet: the payment follows it",
                order.reference
            )));
        }
        None => {
            return Ok(Done::Skipped(format!(
                "order {} is {} in the shop and has no invoice: nothing to pay",
                order.reference, order.shop_status
            )));
        }
    };
    if invoice_steps::exists(db, order.id, Step::Cancel).await? {
        return Ok(Done::Skipped(format!(
            "invoice {name} is being or was cancelled: no payment"
        )));
    }
    match invoice_steps::claim(db, order.id, Step::Payment, job, deps.claim_lease).await? {
        StepClaim::Done { result } => {
            return Ok(Done::Skipped(format!(
                "payment {} already recorded",
                result.unwrap_or_default()
            )));
        }
        StepClaim::HeldElsewhere => {
            return Err(JobError::transient(
                FailureClass::ClaimHeld,
                "another job is recording this order's payment",
            ));
        }
        StepClaim::Acquired { .. } => {}
    }
    // A cancellation claims its step, then looks for ours: one of us sees
    // the other, and the payment stands down.
    if invoice_steps::exists(db, order.id, Step::Cancel).await? {
        invoice_steps::release(db, order.id, Step::Payment, job).await?;
        return Ok(Done::Skipped(format!(
            "invoice {name} is being cancelled: no payment"
        )));
    }
    match pay(deps, &order, job, &name, account, mode).await {
        Ok((result, detail)) => {
            invoice_steps::finish(db, order.id, Step::Payment, job, result.as_deref(), &detail)
                .await?;
            Ok(match result {
                Some(_) if detail["created"] == true => Done::Succeeded(Some(detail)),
                _ => Done::Skipped(detail["why"].as_str().unwrap_or("already paid").to_owned()),
            })
        }
        Err(e) => {
            if matches!(e, JobError::Permanent { .. }) {
                invoice_steps::release(db, order.id, Step::Payment, job).await?;
            }
            Err(e)
        }
    }
}

/// The ERP side: look up, then create. Returns the entry's name (if any)
/// and what happened.
async fn pay(
    deps: &Deps,
    order: &crate::ledger::orders::OrderRow,
    job: Uuid,
    invoice: &str,
    account: &str,
    mode: &str,
) -> Result<(Option<String>, serde_json::Value), JobError> {
    let erp = deps.accounts.erp()?;
    // No idempotency key in the ERP: an earlier attempt may have created it.
    if let Some(found) = erp
        .payment_entries(&order.reference)
        .await?
        .into_iter()
        .find(|e| e.docstatus == 1)
    {
        let why = format!(
            "ERP already has payment {} for {}",
            found.name, order.reference
        );
        return Ok((Some(found.name), json!({ "created": false, "why": why })));
    }
    let doc = erp.invoice(invoice).await?;
    if doc.docstatus == 2 {
        return Ok((
            None,
            json!({ "created": false, "why": format!("invoice {invoice} is cancelled") }),
        ));
    }
    if doc.docstatus == 0 {
        erp.set_invoice_docstatus(invoice, 1).await?;
        invoice_steps::record_done(&deps.db, order.id, Step::Submit, job, Some(invoice)).await?;
    }
    if doc.is_pos == 1 || doc.outstanding_amount <= 0.0 {
        return Ok((
            None,
            json!({ "created": false, "why": format!("invoice {invoice} has nothing outstanding") }),
        ));
    }
    let entry = PaymentEntry {
        party: doc
            .customer
            .clone()
            .or_else(|| order.customer_name.clone())
            .unwrap_or_else(|| "Walk-in Customer".into()),
        paid_to: account.to_owned(),
        amount: doc.outstanding_amount,
        reference_no: order.reference.clone(),
        reference_date: Utc::now().date_naive(),
        invoice: invoice.to_owned(),
        mode_of_payment: mode.to_owned(),
    };
    let name = erp.create_payment_entry(&entry).await?;
    Ok((
        Some(name.clone()),
        json!({
            "created": true,
            "payment_entry": name,
            "invoice": invoice,
            "account": account,
            "amount": entry.amount,
        }),
    ))
}
