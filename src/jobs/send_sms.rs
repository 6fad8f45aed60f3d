//! `send_sms` (per order and status change): text the customer exactly once
//! per (order, status). The `sms_messages` primary key is the guarantee; a
//! send whose fate is unknown (timeout, worker died) is never repeated. A
//! gateway that lists its texts (Twilio) is asked after a timeout, so a text
//! that did go out is recorded as sent rather than left unknown.

use serde_json::json;
use uuid::Uuid;

use crate::domain::{ErrorClass, FailureClass, JobEnvelope, JobKind, NormalizedStatus};
use crate::jobs::{load_order, Deps, Done, JobError};
use crate::ledger::orders::StatusChange;
use crate::ledger::sms::{self, SmsClaim};
use crate::ledger::until_done;
use crate::providers::sms::PastSend;
use crate::queue::NewJob;

/// Namespace of the deterministic SMS job ids: one job per (order, status),
/// however many times the change is observed.
const SMS_JOB_NAMESPACE: Uuid = Uuid::from_u128(0x5d8a_42f1_93c4_4b0e_9a57_0e2b_6c11_d3f0);

/// How far before our own send time a gateway's record of it may be dated
/// (its clock against ours) when it is looked up.
pub const LOOKUP_CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

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
    let asked_at = chrono::Utc::now();
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
            let looked_up = gateway
                .find(&phone, &text, asked_at - LOOKUP_CLOCK_SLACK)
                .await;
            if let Ok(PastSend::Found(message_id)) = &looked_up {
                until_done("record a sent text", || {
                    sms::mark_sent(&deps.db, order_id, status_name, message_id)
                })
                .await;
                return Ok(Done::Succeeded(Some(json!({
                    "message_id": message_id,
                    "status": status_name,
                    "found_after_timeout": true,
                }))));
            }
            until_done("record a text of unknown fate", || {
                sms::mark_unknown(&deps.db, order_id, status_name)
            })
            .await;
            // Not listed right after the timeout proves nothing: the
            // gateway may still be creating it. Left for an operator, whose
            // resend looks again first.
            let lookup = match looked_up {
                Ok(PastSend::NotFound) => format!("{} does not list it (yet)", gateway.provider()),
                Ok(_) => format!("{} cannot be asked", gateway.provider()),
                Err(e) => format!("asking {} failed: {e}", gateway.provider()),
            };
            Err(JobError::Permanent {
                class: FailureClass::DeliveryUnknown,
                message: format!(
                    "{e}; the text may have been sent ({lookup}), so it is not retried"
                ),
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
