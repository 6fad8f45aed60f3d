//! `import_orders` (per store): page through the shop's orders modified since
//! the last successful import and upsert them with their raw JSON.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::json;

use crate::domain::{FailureClass, JobEnvelope};
use crate::jobs::{fetch_page, Deps, Done, JobError};
use crate::ledger::orders::{self, ImportedOrder};
use crate::providers::woocommerce::WooOrder;

/// WooCommerce's maximum page size.
const PAGE_SIZE: u32 = 100;
/// `modified_after` is exclusive and second-grained: re-reading the last
/// second costs a few idempotent upserts and never misses an order.
const CURSOR_OVERLAP: chrono::Duration = chrono::Duration::seconds(1);

/// Import `envelope.store`'s changed orders.
///
/// # Errors
/// Transient on shop or database trouble; permanent on bad credentials or an
/// order we cannot read (named in the message).
pub async fn perform(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    let store = envelope.store.as_str();
    let shop = deps.accounts.shop(store)?;
    let cursor = orders::sync_cursor(&deps.db, store, "import_orders").await?;
    let since = cursor.map(|c| c - CURSOR_OVERLAP);
    let (mut fetched, mut inserted, mut updated) = (0u64, 0u64, 0u64);
    let mut newest = cursor;
    let mut page = 1;
    loop {
        let batch = fetch_page(|| shop.list_orders(page, PAGE_SIZE, since)).await?;
        let imported = batch
            .orders
            .iter()
            .map(|order| to_imported(store, order))
            .collect::<Result<Vec<_>, _>>()?;
        for order in &imported {
            newest = newest.max(order.shop_modified_at);
        }
        let (new, changed) = orders::upsert(&deps.db, store, &imported).await?;
        fetched += imported.len() as u64;
        inserted += new;
        updated += changed;
        if batch.orders.is_empty() || page >= batch.total_pages {
            break;
        }
        page += 1;
    }
    orders::mark_synced(&deps.db, store, "import_orders", newest).await?;
    Ok(Done::Succeeded(Some(json!({
        "fetched": fetched, "inserted": inserted, "updated": updated,
        "modified_after": since,
    }))))
}

/// Our row for a shop order.
///
/// # Errors
/// Permanent when a field we rely on is malformed (named in the message).
pub fn to_imported(store: &str, order: &WooOrder) -> Result<ImportedOrder, JobError> {
    let reference = format!("{store}-{}", order.number);
    if order.total.parse::<f64>().is_err() {
        return Err(JobError::permanent(
            FailureClass::BadOrder,
            format!("order {reference}: total '{}' is not a number", order.total),
        ));
    }
    let shop_modified_at = order
        .date_modified_gmt
        .as_deref()
        .map(|s| {
            parse_woo_date(s).ok_or_else(|| {
                JobError::permanent(
                    FailureClass::BadOrder,
                    format!("order {reference}: date_modified_gmt '{s}' is not a date"),
                )
            })
        })
        .transpose()?;
    let name = [
        order.billing.first_name.as_deref(),
        order.billing.last_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    Ok(ImportedOrder {
        shop_order_id: order.id,
        reference,
        shop_status: order.status.clone(),
        payment_method: order.payment_method.clone(),
        total: order.total.clone(),
        currency: order
            .raw
            .get("currency")
            .and_then(|c| c.as_str())
            .map(str::to_owned),
        phone: order.billing.phone.clone().filter(|p| !p.is_empty()),
        customer_name: Some(name).filter(|n| !n.is_empty()),
        raw: order.raw.clone(),
        shop_modified_at,
    })
}

/// WooCommerce writes GMT dates without an offset (`2026-11-20T10:15:00`).
fn parse_woo_date(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
                .ok()
                .map(|n| n.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn woo_dates_parse_with_or_without_offset() {
        let a = parse_woo_date("2026-11-20T10:15:00").unwrap();
        let b = parse_woo_date("2026-11-20T10:15:00Z").unwrap();
        assert_eq!(a, b);
        assert!(parse_woo_date("yesterday").is_none());
    }
}
