//! `refresh_status` (per order): poll one order at the courier with its
//! store's credential, record the status, and text the customer on a change.
//! Which courier that is (Maystro, Yalidine) is the store's account's
//! business (`crate::providers::courier`).

use serde_json::json;

use crate::domain::{FailureClass, JobEnvelope, NormalizedStatus, Source};
use crate::jobs::fetch_tracking::observe;
use crate::jobs::{is_not_found, load_order, send_sms, Deps, Done, JobError};
use crate::ledger::orders;

/// Refresh `envelope.order_ref`'s courier status.
///
/// # Errors
/// Transient on courier or database trouble; permanent on a bad key.
pub async fn perform(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    let order = load_order(envelope, deps).await?;
    if let Some(current) = order.status.as_deref().and_then(NormalizedStatus::parse) {
        if current.is_final() {
            return Ok(Done::Skipped(format!(
                "status {} is final; polling stopped",
                current.as_str()
            )));
        }
    }
    let courier = deps.accounts.courier(&order.store)?;
    let Some(key) = courier.key_for(
        &order.reference,
        order.tracking_number.as_deref(),
        order.courier_order_id,
    ) else {
        return Ok(Done::Skipped(
            "no courier order yet; fetch_tracking fills it".into(),
        ));
    };
    let courier_order = match courier.get_order(&key).await {
        Ok(found) => found,
        Err(e) if is_not_found(&e) => {
            return Ok(Done::NotFound {
                provider: courier.provider(),
                message: format!(
                    "courier account '{}' does not know order {} ({key}); is the store mapped to the right account?",
                    courier.account(),
                    order.reference
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let mut observation = observe(&courier_order).ok_or_else(|| {
        JobError::permanent(
            FailureClass::BadResponse(courier.provider()),
            format!("courier order ({key}) has no reference of ours"),
        )
    })?;
    // A reason is news only with a status worth a text; asking costs Yalidine
    // one history request, so only then.
    let reason = if courier_order.status.notifies_customer()
        && order.status.as_deref() != Some(courier_order.status.as_str())
    {
        courier.latest_reason(&courier_order).await?
    } else {
        None
    };
    // The courier's copy may lack our reference spelling; we asked by id.
    observation.reference = order.reference.clone();
    // The status change and its text are one transaction: no change is on
    // record without its follow-up, whatever dies after the commit.
    let mut tx = deps.db.begin().await?;
    let (changes, _, stale) = orders::observe_courier(
        &mut *tx,
        &order.store,
        std::slice::from_ref(&observation),
        orders::ObservedVia::Poll,
        envelope.job_id,
    )
    .await?;
    let mut texts = send_sms::jobs_for_changes(&order.store, &changes);
    texts.extend(crate::jobs::write_back::follow_ups(
        deps,
        &order.store,
        &changes,
    ));
    let follow_ups = deps.enqueuer.record(&mut tx, Source::Job, &texts).await?;
    tx.commit().await?;
    deps.enqueuer.push_committed(&follow_ups).await;
    Ok(Done::Succeeded(Some(json!({
        "courier_code": observation.code,
        "courier_label": observation.label,
        "courier_reason": reason,
        "status": observation.status,
        "changed_from": changes.first().map(|c| c.from.clone()),
        "stale": stale > 0,
    }))))
}
