//! `send_sms` (per order and status change): text the customer exactly once
//! per (order, status). The `sms_messages` primary key is the guarantee; a
//! send whose fate is unknown (timeout, worker died) is never repeated.

use serde_json::json;
use uuid::Uuid;

use crate::domain::{ErrorClass, FailureClass, JobEnvelope, JobKind, NormalizedStatus};
use crate::jobs::{load_order, Deps, Done, JobError};
use crate::ledger::orders::StatusChange;
use crate::ledger::sms::{self, SmsClaim};
use crate::ledger::until_done;
use crate::queue::NewJob;

/// Namespace of the deterministic SMS job ids: one job per (order, status),
/// however many times the change is observed.
const SMS_JOB_NAMESPACE: Uuid = Uuid::from_u128(0x5d8a_42f1_93c4_4b0e_9a57_0e2b_6c11_d3f0);

/// The follow-up SMS jobs for status changes (first observations and
/// internal stages text nobody).
pub fn jobs_for_changes(store: &str, changes: &[StatusChange]) -> Vec<NewJob> {
    changes
        .iter()
        .filter(|c| c.from.is_some())
        .filter(|c| NormalizedStatus::parse(&c.to).is_some_and(|s| s.notifies_customer()))
        .map(|c| NewJob {
            args: json!({ "status": c.to }),
            job_id: Some(Uuid::new_v5(
                &SMS_JOB_NAMESPACE,
                format!("{}:{}", c.reference, c.to).as_bytes(),
            )),
            ..NewJob::for_order(JobKind::SendSms, store, &c.reference)
        })
        .collect()
}

/// Text the customer of `envelope.order_ref` about `args.status`.
///
/// # Errors
/// Transient when the gateway surely did not send (5xx, 429, connection);
/// permanent on a bad key, a missing phone, or an unknown earlier outcome.
pub async fn perform(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    let order = load_order(envelope, deps).await?;
    let status = envelope
        .args
        .get("status")
        .and_then(|s| s.as_str())
        .and_then(NormalizedStatus::parse)
        .ok_or_else(|| {
            JobError::permanent(
                FailureClass::BadPayload,
                format!("send_sms job without a valid status: {}", envelope.args),
            )
        })?;
    let phone = order.phone.clone().ok_or_else(|| {
        JobError::permanent(
            FailureClass::NoPhone,
            format!("order {} has no phone number", order.reference),
        )
    })?;
    let text = status.sms_text(&order.reference, order.tracking_number.as_deref());
    let gateway = deps.accounts.sms()?;
    match sms::claim(&deps.db, order.id, status.as_str(), &phone, &text, envelope.job_id, deps.claim_lease).await? {
        SmsClaim::Sent => return Ok(Done::Skipped(format!("already texted for {}", status.as_str()))),
        SmsClaim::Unknown => {
            return Err(JobError::permanent(
                FailureClass::DeliveryUnknown,
                "an earlier attempt died or timed out while sending; not re-sent to avoid texting twice \
                 (`ordersync sms unknown` lists such texts, `ordersync sms resend` sends one on purpose)",
            ))
        }
        SmsClaim::HeldElsewhere => {
            return Err(JobError::transient(FailureClass::ClaimHeld, "another job is sending this text"));
        }
        SmsClaim::Acquired => {}
    }
    // Once the gateway has answered, what it said is recorded in place,
    // retried through any outage of ours: a send that went out must never
    // read as "unknown" (or be sent again) because Postgres blinked.
    let (order_id, status_name) = (order.id, status.as_str());
    match gateway.send(&phone, &text).await {
        Ok(sent) => {
            until_done("record a sent text", || {
                sms::mark_sent(&deps.db, order_id, status_name, &sent.message_id)
            })
            .await;
            Ok(Done::Succeeded(Some(
                json!({ "message_id": sent.message_id, "status": status_name }),
            )))
        }
        Err(e) if e.class == ErrorClass::Timeout => {
            until_done("record a text of unknown fate", || {
                sms::mark_unknown(&deps.db, order_id, status_name)
            })
            .await;
            Err(JobError::Permanent {
                class: FailureClass::DeliveryUnknown,
                message: format!("{e}; the text may have been sent, so it is not retried"),
                http_status: e.http_status,
            })
        }
        Err(e) => {
            // Rejected before sending (5xx, 429, bad key, connection refused).
            until_done("release a text's claim", || {
                sms::release(&deps.db, order_id, status_name, envelope.job_id)
            })
            .await;
            Err(e.into())
        }
    }
}
