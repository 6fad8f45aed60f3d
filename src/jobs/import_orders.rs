//! `import_orders` (per store): page through the shop's orders modified since
//! the last successful import and upsert them with their raw JSON.

use serde_json::json;

use crate::domain::JobEnvelope;
use crate::intake::{self, Rejection};
use crate::jobs::{fetch_page, Deps, Done, JobError};
use crate::ledger::orders;
use crate::ledger::rejected::RejectionSource;

/// WooCommerce's maximum page size.
const PAGE_SIZE: u32 = 100;
/// `modified_after` is exclusive and second-grained: re-reading the last
/// second costs a few idempotent upserts and never misses an order.
const CURSOR_OVERLAP: chrono::Duration = chrono::Duration::seconds(1);

/// How many refused orders the ledger row names.
const REJECTED_SAMPLE: usize = 20;

/// Import `envelope.store`'s changed orders. One order that cannot be stored
/// is refused on its own (recorded in `rejected_orders`, counted and sampled
/// in this run's detail) and the rest of the page proceeds; the cursor moves
/// past it, so the store's import never sticks on it. An order older than
/// the ledger's copy changes nothing (counted as stale).
///
/// # Errors
/// Transient on shop or database trouble; permanent on bad credentials.
pub async fn perform(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    let store = envelope.store.as_str();
    let shop = deps.accounts.shop(store)?;
    let cursor = orders::sync_cursor(&deps.db, store, "import_orders").await?;
    let since = cursor.map(|c| c - CURSOR_OVERLAP);
    let (mut fetched, mut inserted, mut updated, mut stale) = (0u64, 0u64, 0u64, 0u64);
    let mut rejected: Vec<Rejection> = Vec::new();
    let mut newest = cursor;
    let mut page = 1;
    loop {
        let batch = fetch_page(|| shop.list_orders(page, PAGE_SIZE, since)).await?;
        for order in &batch.orders {
            // Refused orders move the cursor too: the next import must not
            // read them again unless the shop changes them.
            newest = newest.max(order.modified_at());
        }
        let intake = intake::store_orders(
            &deps.db,
            store,
            &batch.orders,
            &batch.unreadable,
            RejectionSource::Import,
            Some(envelope.job_id),
        )
        .await?;
        fetched += (batch.orders.len() + batch.unreadable.len()) as u64;
        inserted += intake.inserted;
        updated += intake.updated;
        stale += intake.stale.len() as u64;
        rejected.extend(intake.rejected);
        if (batch.orders.is_empty() && batch.unreadable.is_empty()) || page >= batch.total_pages {
            break;
        }
        page += 1;
    }
    orders::mark_synced(&deps.db, store, "import_orders", newest).await?;
    Ok(Done::Succeeded(Some(json!({
        "fetched": fetched, "inserted": inserted, "updated": updated,
        "stale": stale, "rejected": rejected.len(),
        "rejected_sample": rejected.iter().take(REJECTED_SAMPLE).collect::<Vec<_>>(),
        "modified_after": since,
    }))))
}
