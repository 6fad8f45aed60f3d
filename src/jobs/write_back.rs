//! `write_back` (per order): tell the shop what the courier did, once: a
//! delivered order becomes `completed`, a returned one the store's
//! configured status (`[stores.write_back]`; `off` leaves the shop alone).
//!
//! The shop has the last word: the order is read first, and a change the
//! shop made after the courier's status (its `date_modified_gmt` is newer)
//! or a status outside the open ones (pending, processing, on-hold) is
//! never overwritten. WooCommerce has no conditional update, so what
//! remains is the moment between that read and the write.

use serde_json::json;
use uuid::Uuid;

use crate::domain::{FailureClass, JobEnvelope, JobKind};
use crate::jobs::{load_order, Deps, Done, JobError};
use crate::ledger::invoice_steps::{self, Step, StepClaim};
use crate::queue::NewJob;

/// Shop statuses a write-back may replace: the order is still open.
const OVERWRITABLE: [&str; 3] = ["pending", "processing", "on-hold"];

/// Namespace of the deterministic write-back job ids: one per (order,
/// courier status).
const WRITE_BACK_JOB_NAMESPACE: Uuid = Uuid::from_u128(0x7c13_e5a2_0d9b_4f66_b3a8_51f2_c07e_94d9);

/// The `write_back` job for `reference` reaching courier `status`.
pub fn job_for(store: &str, reference: &str, status: &str) -> NewJob {
    NewJob {
        args: json!({ "status": status }),
        job_id: Some(Uuid::new_v5(
            &WRITE_BACK_JOB_NAMESPACE,
            format!("{reference}:{status}").as_bytes(),
        )),
        ..NewJob::for_order(JobKind::WriteBack, store, reference)
    }
}

/// Write `envelope.order_ref`'s courier outcome back to the shop.
///
/// # Errors
/// Transient on shop/database trouble or while another job holds the step;
/// permanent when the shop refuses the status.
pub async fn perform(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    let order = load_order(envelope, deps).await?;
    let courier_status = envelope
        .args
        .get("status")
        .and_then(|s| s.as_str())
        .map(str::to_owned)
        .or_else(|| order.status.clone())
        .unwrap_or_default();
    if order.status.as_deref() != Some(courier_status.as_str()) {
        return Ok(Done::Skipped(format!(
            "courier status is {} now, not {courier_status}",
            order.status.as_deref().unwrap_or("unknown")
        )));
    }
    let rules = deps.accounts.rules(&order.store)?;
    let Some(target) = rules.write_back.target(&courier_status) else {
        return Ok(Done::Skipped(format!(
            "store {} writes nothing back for {courier_status}",
            order.store
        )));
    };
    let db = &deps.db;
    let job = envelope.job_id;
    match invoice_steps::claim(db, order.id, Step::WriteBack, job, deps.claim_lease).await? {
        StepClaim::Done { result } => {
            return Ok(Done::Skipped(format!(
                "shop already told: {}",
                result.unwrap_or_default()
            )));
        }
        StepClaim::HeldElsewhere => {
            return Err(JobError::transient(
                FailureClass::ClaimHeld,
                "another job is writing this order back to the shop",
            ));
        }
        StepClaim::Acquired { .. } => {}
    }
    let shop = deps.accounts.shop(&order.store)?;
    let result = async {
        let live = shop.get_order(order.shop_order_id).await?;
        if live.status == target {
            return Ok((false, format!("shop already says {target}")));
        }
        let courier_at = crate::ledger::orders::courier_status_time(db, order.id).await?;
        if let (Some(shop_at), Some(courier_at)) = (live.modified_at(), courier_at) {
            if shop_at > courier_at {
                return Ok((
                    false,
                    format!(
                        "the shop changed the order at {shop_at} (now {}), after the courier's {courier_status} at {courier_at}: left as the shop has it",
                        live.status
                    ),
                ));
            }
        }
        if !OVERWRITABLE.contains(&live.status.as_str()) {
            return Ok((
                false,
                format!("the shop says {}: a closed order is not overwritten", live.status),
            ));
        }
        shop.set_order_status(order.shop_order_id, target).await?;
        Ok::<_, JobError>((true, format!("{} -> {target}", live.status)))
    }
    .await;
    match result {
        Ok((written, what)) => {
            let detail = json!({ "written": written, "target": target, "what": what });
            let recorded = if written {
                target.to_owned()
            } else {
                format!("not written: {what}")
            };
            invoice_steps::finish(db, order.id, Step::WriteBack, job, Some(&recorded), &detail)
                .await?;
            Ok(if written {
                Done::Succeeded(Some(detail))
            } else {
                Done::Skipped(what)
            })
        }
        Err(e) => {
            if matches!(e, JobError::Permanent { .. }) {
                invoice_steps::release(db, order.id, Step::WriteBack, job).await?;
            }
            Err(e)
        }
    }
}

/// The follow-ups of courier status changes for the shop and the ERP: a
/// write-back where the store maps the new status, and the payment of a
/// cash-on-delivery order on delivery where the store records those. First
/// observations (a tracking backfill of old orders) write nothing back.
pub fn follow_ups(
    deps: &Deps,
    store: &str,
    changes: &[crate::ledger::orders::StatusChange],
) -> Vec<NewJob> {
    let Ok(rules) = deps.accounts.rules(store) else {
        return Vec::new();
    };
    let mut jobs = Vec::new();
    for change in changes.iter().filter(|c| c.from.is_some()) {
        if rules.write_back.target(&change.to).is_some() {
            jobs.push(job_for(store, &change.reference, &change.to));
        }
        if change.to == "delivered" && rules.payments.cod_on_delivery.is_some() {
            jobs.push(crate::jobs::record_payment::job_for(
                store,
                &change.reference,
                "delivered",
            ));
        }
    }
    jobs
}
