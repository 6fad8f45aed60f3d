//! `webhook_deliveries`: redelivery dedupe for shop webhooks.

use sqlx::PgPool;

/// Record a delivery of (`store`, `order_id`, `date_modified`); returns
/// `false` when the same change was delivered before.
///
/// # Errors
/// Postgres failed.
pub async fn first_delivery(
    pool: &PgPool,
    store: &str,
    order_id: i64,
    date_modified: &str,
    topic: &str,
) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO webhook_deliveries (store, shop_order_id, date_modified, topic) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(store)
    .bind(order_id)
    .bind(date_modified)
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
    date_modified: &str,
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM webhook_deliveries WHERE store = $1 AND shop_order_id = $2 AND date_modified = $3")
        .bind(store)
        .bind(order_id)
        .bind(date_modified)
        .execute(pool)
        .await?;
    Ok(())
}
