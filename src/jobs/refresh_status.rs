//! `refresh_status` (per order): poll one order at the courier with its
//! store's credential, record the status, and text the customer on a change.

use serde_json::json;

use crate::domain::{FailureClass, JobEnvelope, NormalizedStatus, Provider, Source};
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
    let Some(courier_id) = order.courier_order_id else {
        return Ok(Done::Skipped(
            "no courier order yet; fetch_tracking fills it".into(),
        ));
    };
    let courier = deps.accounts.courier(&order.store)?;
    let courier_order = match courier.get_order(courier_id).await {
        Ok(found) => found,
        Err(e) if is_not_found(&e) => {
            return Ok(Done::NotFound {
                provider: Provider::Maystro,
                message: format!(
                    "courier account '{}' does not know order {} (courier id {courier_id}); is the store mapped to the right account?",
                    courier.account(),
                    order.reference
                ),
            });
        }
        Err(e) => return Err(e.into()),
    };
    let mut observation = observe(&courier_order).ok_or_else(|| {
        JobError::permanent(
            FailureClass::BadResponse(Provider::Maystro),
            format!("courier order {courier_id} has no external_order_id"),
        )
    })?;
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
        "status": observation.status,
        "changed_from": changes.first().map(|c| c.from.clone()),
        "stale": stale > 0,
    }))))
}
