//! `rejected_orders`: shop orders we could not store, each naming the field
//! at fault and why (see `crate::intake`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// One order refused, as recorded.
#[derive(Debug, Clone)]
pub struct NewRejection<'a> {
    /// The shop's order id.
    pub shop_order_id: i64,
    /// `{STORE}-{number}` when the number was readable.
    pub reference: Option<&'a str>,
    /// The field at fault.
    pub field: &'a str,
    /// Why, for an operator.
    pub reason: &'a str,
}

/// Where a rejected order came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionSource {
    /// The periodic import (`import_orders`).
    Import,
    /// A WooCommerce webhook.
    Webhook,
}

impl RejectionSource {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionSource::Import => "import",
            RejectionSource::Webhook => "webhook",
        }
    }
}

/// Record `rejections` of `store`: a new row per order, or the existing one
/// updated (field, reason, source, last seen, one more sighting, reopened).
///
/// # Errors
/// Postgres failed.
pub async fn record(
    pool: &PgPool,
    store: &str,
    source: RejectionSource,
    job_id: Option<Uuid>,
    rejections: &[NewRejection<'_>],
) -> sqlx::Result<()> {
    if rejections.is_empty() {
        return Ok(());
    }
    // One order may be refused twice in one batch (two versions on one page):
    // ON CONFLICT cannot touch a row twice in one statement, so keep the last.
    let mut latest: Vec<&NewRejection<'_>> = Vec::with_capacity(rejections.len());
    for r in rejections {
        latest.retain(|l| l.shop_order_id != r.shop_order_id);
        latest.push(r);
    }
    let ids: Vec<i64> = latest.iter().map(|r| r.shop_order_id).collect();
    let refs: Vec<Option<&str>> = latest.iter().map(|r| r.reference).collect();
    let fields: Vec<&str> = latest.iter().map(|r| r.field).collect();
    let reasons: Vec<&str> = latest.iter().map(|r| r.reason).collect();
    sqlx::query(
        "INSERT INTO rejected_orders (store, shop_order_id, reference, field, reason, source, job_id)
         SELECT $1, u.id, u.reference, u.field, u.reason, $2, $3
         FROM UNNEST($4::bigint[], $5::text[], $6::text[], $7::text[]) AS u(id, reference, field, reason)
         ON CONFLICT (store, shop_order_id) DO UPDATE SET
             reference = COALESCE(EXCLUDED.reference, rejected_orders.reference),
             field = EXCLUDED.field, reason = EXCLUDED.reason, source = EXCLUDED.source,
             job_id = EXCLUDED.job_id, last_seen_at = now(),
             times_seen = rejected_orders.times_seen + 1, resolved_at = NULL",
    )
    .bind(store)
    .bind(source.as_str())
    .bind(job_id)
    .bind(&ids)
    .bind(&refs)
    .bind(&fields)
    .bind(&reasons)
    .execute(pool)
    .await?;
    Ok(())
}

/// Mark `store`'s rejections of `shop_order_ids` resolved: a version of each
/// order is now stored.
///
/// # Errors
/// Postgres failed.
pub async fn resolve(pool: &PgPool, store: &str, shop_order_ids: &[i64]) -> sqlx::Result<u64> {
    if shop_order_ids.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "UPDATE rejected_orders SET resolved_at = now()
         WHERE store = $1 AND shop_order_id = ANY($2) AND resolved_at IS NULL",
    )
    .bind(store)
    .bind(shop_order_ids)
    .execute(pool)
    .await?
    .rows_affected())
}

/// A recorded rejection.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct RejectedOrder {
    /// Store code.
    pub store: String,
    /// The shop's order id.
    pub shop_order_id: i64,
    /// `{STORE}-{number}`, when readable.
    pub reference: Option<String>,
    /// The field at fault.
    pub field: String,
    /// Why.
    pub reason: String,
    /// `import` or `webhook` (the last one that brought it).
    pub source: String,
    /// First refused.
    pub first_seen_at: DateTime<Utc>,
    /// Last refused.
    pub last_seen_at: DateTime<Utc>,
    /// How many times it was refused.
    pub times_seen: i32,
    /// The import job that saw it last.
    pub job_id: Option<Uuid>,
    /// When a later version was stored; `None` while open.
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Rejections, most recently seen first: open ones only unless
/// `include_resolved`, of one store if given, at most `limit`.
///
/// # Errors
/// Postgres failed.
pub async fn list(
    pool: &PgPool,
    store: Option<&str>,
    include_resolved: bool,
    limit: i64,
) -> sqlx::Result<Vec<RejectedOrder>> {
    sqlx::query_as(
        "SELECT store, shop_order_id, reference, field, reason, source, first_seen_at,
                last_seen_at, times_seen, job_id, resolved_at
         FROM rejected_orders
         WHERE ($1::text IS NULL OR store = $1) AND ($2 OR resolved_at IS NULL)
         ORDER BY last_seen_at DESC, store, shop_order_id
         LIMIT $3",
    )
    .bind(store)
    .bind(include_resolved)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Open rejections per store (for `/metrics`).
///
/// # Errors
/// Postgres failed.
pub async fn open_counts(pool: &PgPool) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT store, count(*) FROM rejected_orders WHERE resolved_at IS NULL
         GROUP BY store ORDER BY store",
    )
    .fetch_all(pool)
    .await
}
