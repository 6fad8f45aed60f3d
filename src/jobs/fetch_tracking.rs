//! `fetch_tracking` (per store): page through the store's courier account's
//! order list, match orders by reference, and fill tracking number, courier
//! order id and status. Orders that never had a tracking number get one here
//! (domain.md section 2: polling only tracked orders missed 5,000 of them).
//! A status source that cannot list (Datamart) is asked for each of the
//! store's untracked orders by reference instead.

use futures::{StreamExt, TryStreamExt};
use serde_json::json;

use crate::domain::{JobEnvelope, Source};
use crate::jobs::{fetch_page, is_not_found, send_sms, Deps, Done, JobError};
use crate::ledger::orders::{self, CourierObservation};
use crate::providers::courier::{CourierClient, CourierOrder, OrderKey};
use crate::providers::ProviderError;

/// Pages fetched at once after the first: the list is paged (Maystro ~20
/// per page), so 10,000 orders are ~500 round trips.
const PAGE_CONCURRENCY: usize = 16;
/// How many unknown references the ledger row names.
const UNKNOWN_SAMPLE: usize = 20;

/// Sync tracking for `envelope.store`.
///
/// # Errors
/// Transient on courier or database trouble; permanent on a bad key.
pub async fn perform(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    let store = envelope.store.as_str();
    let courier = deps.accounts.courier(store)?;
    // Keep only this store's observations as pages arrive: a shared account
    // lists every store's orders, and whole pages are large.
    let prefix = format!("{store}-");
    let keep = |orders: Vec<CourierOrder>| -> (usize, Vec<CourierObservation>) {
        let listed = orders.len();
        let mine = orders
            .iter()
            .filter_map(observe)
            .filter(|o| o.reference.starts_with(&prefix))
            .collect();
        (listed, mine)
    };
    // Only a listing stamps `listed_at` (the refresh tick's rule): a source
    // asked order by order here saw only the untracked ones.
    let ((listed, observations), via) = if courier.can_list() {
        (list_all(courier, &keep).await?, orders::ObservedVia::List)
    } else {
        (
            look_up_untracked(deps, store, courier, &keep).await?,
            orders::ObservedVia::Poll,
        )
    };

    // Status changes and their texts commit together (see refresh_status).
    let mut tx = deps.db.begin().await?;
    let (changes, matched, stale) =
        orders::observe_courier(&mut *tx, store, &observations, via, envelope.job_id).await?;
    let mut texts = send_sms::jobs_for_changes(store, &changes);
    texts.extend(crate::jobs::write_back::follow_ups(deps, store, &changes));
    let follow_ups = deps.enqueuer.record(&mut tx, Source::Job, &texts).await?;
    tx.commit().await?;
    deps.enqueuer.push_committed(&follow_ups).await;
    let unknown = orders::without_tracking(&deps.db, store).await?;
    orders::mark_synced(&deps.db, store, "fetch_tracking", None).await?;
    Ok(Done::Succeeded(Some(json!({
        "courier_account": courier.account(),
        "courier": courier.provider().as_str(),
        "courier_orders": listed,
        "matched": matched,
        "status_changes": changes.len(),
        "stale": stale,
        "unknown_refs": unknown.len(),
        "unknown_sample": unknown.iter().take(UNKNOWN_SAMPLE).collect::<Vec<_>>(),
    }))))
}

/// This store's share of a page of courier orders: (orders listed, the
/// store's observations).
type Keep<'a> = dyn Fn(Vec<CourierOrder>) -> (usize, Vec<CourierObservation>) + Sync + 'a;

/// Every page of the account's orders: the first, then the rest at once
/// (the count says how many), then any that appeared meanwhile.
async fn list_all(
    courier: &CourierClient,
    keep: &Keep<'_>,
) -> Result<(usize, Vec<CourierObservation>), ProviderError> {
    let first = fetch_page(|| courier.list_page(1)).await?;
    let per_page = first.orders.len().max(1) as u64;
    let pages = first.total.div_ceil(per_page).max(1) as u32;
    let mut has_more = first.has_more;
    let (mut listed, mut observations) = keep(first.orders);
    if pages > 1 {
        let rest: Vec<_> = futures::stream::iter(2..=pages)
            .map(|page| fetch_page(move || courier.list_page(page)))
            .buffered(PAGE_CONCURRENCY)
            .map_ok(|p| (p.has_more, keep(p.orders)))
            .try_collect()
            .await?;
        for (page_has_more, (n, mine)) in rest {
            has_more = page_has_more;
            listed += n;
            observations.extend(mine);
        }
    }
    // The count can grow while we page: go on while the courier says more.
    let mut page = pages;
    while has_more {
        page += 1;
        let more = fetch_page(|| courier.list_page(page)).await?;
        has_more = more.has_more;
        let (n, mine) = keep(more.orders);
        listed += n;
        observations.extend(mine);
    }
    Ok((listed, observations))
}

/// For a source that cannot list (Datamart): each of the store's orders
/// without tracking asked for by reference; one it does not know is left
/// for the next run.
async fn look_up_untracked(
    deps: &Deps,
    store: &str,
    courier: &CourierClient,
    keep: &Keep<'_>,
) -> Result<(usize, Vec<CourierObservation>), JobError> {
    let references = orders::without_tracking(&deps.db, store).await?;
    let found: Vec<Option<CourierOrder>> = futures::stream::iter(references)
        .map(|reference| async move {
            let key = OrderKey::Reference(reference);
            match fetch_page(|| courier.get_order(&key)).await {
                Ok(order) => Ok(Some(order)),
                Err(e) if is_not_found(&e) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .buffered(PAGE_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(keep(found.into_iter().flatten().collect()))
}

/// What one courier order tells us, if it carries our reference. Text is
/// stripped of NUL characters (Postgres text cannot hold them; nothing else
/// is lost), so no courier record can fail the statement that stores a page.
pub fn observe(order: &CourierOrder) -> Option<CourierObservation> {
    let reference = order
        .reference
        .as_deref()
        .map(crate::intake::strip_nul)
        .filter(|r| !r.is_empty())?;
    Some(CourierObservation {
        reference,
        tracking_number: order
            .tracking_number
            .as_deref()
            .map(crate::intake::strip_nul),
        courier_order_id: order.courier_order_id,
        code: order.code,
        label: crate::intake::strip_nul(&order.label),
        status: order.status.as_str().to_owned(),
        updated_at: order.updated_at,
    })
}
