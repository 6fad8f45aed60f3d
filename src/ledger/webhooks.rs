//! `webhook_deliveries`: redelivery dedupe for shop webhooks.
//!
//! The key is (store, order id, modification time). The time is stored in
//! one canonical spelling of the parsed instant (RFC 3339, UTC, `Z`), so
//! `2026-11-20T10:15:00`, `2026-11-20T10:15:00Z` and
//! `2026-11-20T11:15:00+01:00` are one delivery, not three jobs.

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::PgPool;

/// How long a delivery is remembered. A redelivery older than this finds
/// the ledger holding that change already (latest wins), so it still
/// changes nothing; only its follow-up jobs could run again, and they are
/// idempotent.
pub const DEDUPE_WINDOW: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// The stored spelling of a modification time.
pub fn canonical(modified: DateTime<Utc>) -> String {
    modified.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Record a delivery of (`store`, `order_id`, `modified`); returns `false`
/// when the same change was delivered before.
///
/// # Errors
/// Postgres failed.
pub async fn first_delivery(
    pool: &PgPool,
    store: &str,
    order_id: i64,
    modified: DateTime<Utc>,
    topic: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (store, shop_order_id, date_modified, topic) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(store)
    .bind(order_id)
    .bind(canonical(modified))
    .bind(topic)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(inserted == 1)
}

/// Forget a delivery whose processing failed, so WooCommerce's retry of it
/// is processed.
///
/// # Errors
/// Postgres failed.
pub async fn forget(
    pool: &PgPool,
    store: &str,
    order_id: i64,
    modified: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM webhook_deliveries WHERE store = $1 AND shop_order_id = $2 AND date_modified = $3")
        .bind(store)
        .bind(order_id)
        .bind(canonical(modified))
        .execute(pool)
        .await?;
    Ok(())
}

/// Delete deliveries received before `before`; returns how many.
///
/// # Errors
/// Postgres failed.
pub async fn prune(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    Ok(
        sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(before)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_instant_has_one_spelling() {
        let a = DateTime::parse_from_rfc3339("2026-11-20T11:15:00+01:00")
            .unwrap()
            .with_timezone(&Utc);
        let b = chrono::NaiveDateTime::parse_from_str("2026-11-20T10:15:00", "%Y-%m-%dT%H:%M:%S")
            .unwrap()
            .and_utc();
        assert_eq!(canonical(a), "2026-11-20T10:15:00Z");
        assert_eq!(canonical(a), canonical(b));
    }
}
