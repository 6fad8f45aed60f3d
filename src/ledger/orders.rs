//! `orders`, `order_status_history` and `store_sync_state`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// An order as the shop reported it.
#[derive(Debug, Clone)]
pub struct ImportedOrder {
    /// The shop's order id.
    pub shop_order_id: i64,
    /// `{STORE}-{number}`.
    pub reference: String,
    /// The shop's status (`processing`, `pending`, ...).
    pub shop_status: String,
    /// The shop's payment method code (`cod`, `instapay`, ...).
    pub payment_method: String,
    /// Total as the shop wrote it (`"1234.00"`).
    pub total: String,
    /// Currency code.
    pub currency: Option<String>,
    /// Billing phone.
    pub phone: Option<String>,
    /// Billing name.
    pub customer_name: Option<String>,
    /// The whole order JSON.
    pub raw: serde_json::Value,
    /// The shop's last modification time.
    pub shop_modified_at: Option<DateTime<Utc>>,
}

/// What [`upsert`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upserted {
    /// New orders.
    pub inserted: u64,
    /// Orders updated with a newer (or the same) modification time.
    pub updated: u64,
    /// The shop ids written (inserted or updated). An order given but not
    /// here was stale: the ledger holds a newer modification of it.
    pub applied: Vec<i64>,
}

/// Insert or update `orders` of `store`. Latest wins: an existing order is
/// updated only when the given one is at least as recent by the shop's
/// modification time (`shop_modified_at`), so an older delivery or import
/// page never rolls an order back; one without a modification time never
/// overwrites one with it. The guard is part of the statement (`ON CONFLICT
/// ... WHERE`), so two writers racing on one order cannot both win.
///
/// The orders must have distinct shop ids and references (see
/// `crate::intake`, which also sanitizes and validates them).
///
/// # Errors
/// Postgres failed (e.g. a reference another order already holds).
pub async fn upsert(
    pool: &PgPool,
    store: &str,
    orders: &[ImportedOrder],
) -> sqlx::Result<Upserted> {
    if orders.is_empty() {
        return Ok(Upserted::default());
    }
    let ids: Vec<i64> = orders.iter().map(|o| o.shop_order_id).collect();
    let refs: Vec<&str> = orders.iter().map(|o| o.reference.as_str()).collect();
    let statuses: Vec<&str> = orders.iter().map(|o| o.shop_status.as_str()).collect();
    let methods: Vec<&str> = orders.iter().map(|o| o.payment_method.as_str()).collect();
    let totals: Vec<&str> = orders.iter().map(|o| o.total.as_str()).collect();
    let currencies: Vec<Option<&str>> = orders.iter().map(|o| o.currency.as_deref()).collect();
    let phones: Vec<Option<&str>> = orders.iter().map(|o| o.phone.as_deref()).collect();
    let names: Vec<Option<&str>> = orders.iter().map(|o| o.customer_name.as_deref()).collect();
    let raws: Vec<&serde_json::Value> = orders.iter().map(|o| &o.raw).collect();
    let modified: Vec<Option<DateTime<Utc>>> = orders.iter().map(|o| o.shop_modified_at).collect();
    let rows: Vec<(i64, bool)> = sqlx::query_as(
        "INSERT INTO orders (store, shop_order_id, reference, shop_status, payment_method, total,
                             currency, phone, customer_name, raw, shop_modified_at)
         SELECT $1, u.* FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::numeric[],
                                    $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::timestamptz[]) AS u
         ON CONFLICT (store, shop_order_id) DO UPDATE SET
             shop_status = EXCLUDED.shop_status, payment_method = EXCLUDED.payment_method,
             total = EXCLUDED.total, currency = EXCLUDED.currency, phone = EXCLUDED.phone,
             customer_name = EXCLUDED.customer_name, raw = EXCLUDED.raw,
             shop_modified_at = EXCLUDED.shop_modified_at, updated_at = now()
         WHERE orders.shop_modified_at IS NULL
            OR EXCLUDED.shop_modified_at >= orders.shop_modified_at
         RETURNING shop_order_id, (xmax = 0)",
    )
    .bind(store)
    .bind(&ids)
    .bind(&refs)
    .bind(&statuses)
    .bind(&methods)
    .bind(&totals)
    .bind(&currencies)
    .bind(&phones)
    .bind(&names)
    .bind(&raws)
    .bind(&modified)
    .fetch_all(pool)
    .await?;
    let inserted = rows.iter().filter(|(_, new)| *new).count() as u64;
    Ok(Upserted {
        inserted,
        updated: rows.len() as u64 - inserted,
        applied: rows.into_iter().map(|(id, _)| id).collect(),
    })
}

/// Which of `references` other orders hold: (reference, store, shop id) of
/// each, for telling a reference collision before it fails a statement.
///
/// # Errors
/// Postgres failed.
pub async fn reference_holders(
    pool: &PgPool,
    references: &[&str],
) -> sqlx::Result<Vec<(String, String, i64)>> {
    if references.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT reference, store, shop_order_id FROM orders WHERE reference = ANY($1::text[])",
    )
    .bind(references)
    .fetch_all(pool)
    .await
}

/// An order as the jobs need it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct OrderRow {
    /// Our id.
    pub id: i64,
    /// Store code.
    pub store: String,
    /// The shop's id.
    pub shop_order_id: i64,
    /// `{STORE}-{number}`.
    pub reference: String,
    /// Shop status.
    pub shop_status: String,
    /// Payment method code.
    pub payment_method: String,
    /// Total, as text with two decimals.
    pub total: String,
    /// Currency.
    pub currency: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Customer name.
    pub customer_name: Option<String>,
    /// Tracking number (`display_id`).
    pub tracking_number: Option<String>,
    /// The courier's order id.
    pub courier_order_id: Option<i64>,
    /// Raw courier status code.
    pub courier_code: Option<i32>,
    /// Raw courier status label.
    pub courier_label: Option<String>,
    /// Normalized status.
    pub status: Option<String>,
    /// The whole shop order JSON.
    pub raw: serde_json::Value,
}

const ORDER_COLUMNS: &str = "id, store, shop_order_id, reference, shop_status, payment_method,
    total::text AS total, currency, phone, customer_name, tracking_number, courier_order_id,
    courier_code, courier_label, status, raw";

/// One order by reference.
///
/// # Errors
/// Postgres failed.
pub async fn by_reference(pool: &PgPool, reference: &str) -> sqlx::Result<Option<OrderRow>> {
    sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE reference = $1"
    ))
    .bind(reference)
    .fetch_optional(pool)
    .await
}

/// What the courier says about one order.
#[derive(Debug, Clone)]
pub struct CourierObservation {
    /// Our order reference (Maystro's `external_order_id`, Yalidine's `order_id`).
    pub reference: String,
    /// The tracking number (Maystro's `display_id`, Yalidine's `tracking`).
    pub tracking_number: Option<String>,
    /// The courier's numeric order id; `None` for couriers without one
    /// (Yalidine knows parcels by tracking number), which keeps the one held.
    pub courier_order_id: Option<i64>,
    /// Raw status code.
    pub code: i32,
    /// Raw status label.
    pub label: String,
    /// Normalized status.
    pub status: String,
    /// The courier's own time of this status (Maystro `last_update`): an
    /// observation older than the one the ledger holds changes nothing.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A normalized status change recorded in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// Our order id.
    pub order_id: i64,
    /// Order reference.
    pub reference: String,
    /// Previous normalized status; `None` on the first observation.
    pub from: Option<String>,
    /// New normalized status.
    pub to: String,
    /// Raw code of the new status.
    pub code: i32,
}

/// Where a courier observation came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObservedVia {
    /// The account's order list (`fetch_tracking`): also sets `listed_at`.
    List,
    /// A poll of the one order (`refresh_status`).
    Poll,
}

/// One row of [`observe_courier`]'s statement: order id, reference, old and
/// new status, code, whether it changed, whether the observation was stale.
type ObservedRow = (i64, String, Option<String>, String, i32, bool, bool);

/// Apply courier observations to `store`'s orders: fill tracking numbers and
/// courier ids, record the raw and normalized status, and append history on
/// every change (the first observation included). Returns the changes, how
/// many orders were updated, and how many observations were stale (older, by
/// the courier's `updated_at`, than what the order holds: latest wins, so they
/// change nothing). Observations for references of other stores are ignored.
///
/// One statement: the rows are locked (`FOR UPDATE`) while their old status
/// is read, so two jobs observing one order cannot both see the old status
/// and both record (and text about) the change. Run it in the transaction
/// that also records the changes' follow-up jobs (`Enqueuer::record`).
///
/// # Errors
/// Postgres failed.
pub async fn observe_courier<'e>(
    db: impl sqlx::PgExecutor<'e>,
    store: &str,
    observations: &[CourierObservation],
    via: ObservedVia,
    job_id: Uuid,
) -> sqlx::Result<(Vec<StatusChange>, u64, u64)> {
    if observations.is_empty() {
        return Ok((Vec::new(), 0, 0));
    }
    let refs: Vec<&str> = observations.iter().map(|o| o.reference.as_str()).collect();
    let tracking: Vec<Option<&str>> = observations
        .iter()
        .map(|o| o.tracking_number.as_deref())
        .collect();
    let courier_ids: Vec<Option<i64>> = observations.iter().map(|o| o.courier_order_id).collect();
    let codes: Vec<i32> = observations.iter().map(|o| o.code).collect();
    let labels: Vec<&str> = observations.iter().map(|o| o.label.as_str()).collect();
    let statuses: Vec<&str> = observations.iter().map(|o| o.status.as_str()).collect();
    let updated_at: Vec<Option<DateTime<Utc>>> =
        observations.iter().map(|o| o.updated_at).collect();
    let rows: Vec<ObservedRow> = sqlx::query_as(
        "WITH seen AS (
             SELECT * FROM UNNEST($2::text[], $3::text[], $4::bigint[], $5::int[], $6::text[], $7::text[],
                                  $9::timestamptz[])
                 AS u(reference, tracking, courier_id, code, label, status, courier_updated_at)
         ),
         old AS (
             SELECT o.id, o.status, o.courier_updated_at FROM orders o JOIN seen ON seen.reference = o.reference
             WHERE o.store = $1 ORDER BY o.id FOR UPDATE OF o
         ),
         updated AS (
             UPDATE orders o SET
                 tracking_number = COALESCE(seen.tracking, o.tracking_number),
                 courier_order_id = COALESCE(seen.courier_id, o.courier_order_id), courier_code = seen.code,
                 courier_label = seen.label, status = seen.status,
                 courier_updated_at = COALESCE(seen.courier_updated_at, o.courier_updated_at),
                 status_changed_at = CASE WHEN old.status IS DISTINCT FROM seen.status
                                          THEN now() ELSE o.status_changed_at END,
                 last_polled_at = now(), updated_at = now(),
                 listed_at = CASE WHEN $10 THEN now() ELSE o.listed_at END
             FROM old JOIN seen ON true
             WHERE o.id = old.id AND seen.reference = o.reference
               AND (old.courier_updated_at IS NULL OR seen.courier_updated_at IS NULL
                    OR seen.courier_updated_at >= old.courier_updated_at)
             RETURNING o.id, o.reference, old.status AS old_status, seen.status AS new_status,
                       seen.code, seen.label, old.status IS DISTINCT FROM seen.status AS changed
         ),
         history AS (
             INSERT INTO order_status_history (order_id, status, courier_code, courier_label, job_id)
             SELECT id, new_status, code, label, $8 FROM updated WHERE changed
         )
         SELECT id, reference, old_status, new_status, code, changed, false FROM updated
         UNION ALL
         SELECT old.id, '', NULL, '', 0, false, true FROM old
         WHERE NOT EXISTS (SELECT 1 FROM updated WHERE updated.id = old.id)",
    )
    .bind(store)
    .bind(&refs)
    .bind(&tracking)
    .bind(&courier_ids)
    .bind(&codes)
    .bind(&labels)
    .bind(&statuses)
    .bind(job_id)
    .bind(&updated_at)
    .bind(via == ObservedVia::List)
    .fetch_all(db)
    .await?;
    let stale = rows.iter().filter(|row| row.6).count() as u64;
    let matched = rows.len() as u64 - stale;
    let changes = rows
        .into_iter()
        .filter(|row| row.5)
        .map(|(order_id, reference, from, to, code, _, _)| StatusChange {
            order_id,
            reference,
            from,
            to,
            code,
        })
        .collect();
    Ok((changes, matched, stale))
}

/// Note that an order was polled without a change.
///
/// # Errors
/// Postgres failed.
pub async fn mark_polled(pool: &PgPool, order_id: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE orders SET last_polled_at = now() WHERE id = $1")
        .bind(order_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// References of `store`'s orders the courier has no tracking for yet.
///
/// # Errors
/// Postgres failed.
pub async fn without_tracking(pool: &PgPool, store: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT reference FROM orders WHERE store = $1 AND tracking_number IS NULL ORDER BY id",
    )
    .bind(store)
    .fetch_all(pool)
    .await
}

/// References of `store`'s orders the courier knows (a courier id, or a
/// tracking number for couriers without ids) and whose status is not final;
/// with `listed_before`, less those the courier's order list showed at or
/// after it (their status is as fresh as a poll would make it).
///
/// # Errors
/// Postgres failed.
pub async fn needing_refresh(
    pool: &PgPool,
    store: &str,
    final_statuses: &[&str],
    listed_before: Option<DateTime<Utc>>,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT reference FROM orders WHERE store = $1
           AND (courier_order_id IS NOT NULL OR tracking_number IS NOT NULL)
           AND (status IS NULL OR NOT (status = ANY($2)))
           AND ($3::timestamptz IS NULL OR listed_at IS NULL OR listed_at < $3)
         ORDER BY id",
    )
    .bind(store)
    .bind(final_statuses)
    .bind(listed_before)
    .fetch_all(pool)
    .await
}

/// References of `store`'s orders with no invoice whose shop status can
/// still lead to one.
///
/// # Errors
/// Postgres failed.
pub async fn needing_invoice(
    pool: &PgPool,
    store: &str,
    statuses: &[&str],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT o.reference FROM orders o LEFT JOIN invoices i ON i.order_id = o.id
         WHERE o.store = $1 AND o.shop_status = ANY($2) AND (i.order_id IS NULL OR i.state = 'creating')
         ORDER BY o.id",
    )
    .bind(store)
    .bind(statuses)
    .fetch_all(pool)
    .await
}

/// References of `store`'s orders that the shop cancelled or refunded
/// (`statuses`) while their invoice stands: an invoice recorded (made by us
/// or found) whose cancellation is not done. Orders without an invoice are
/// left to the webhook's cancellation (which voids them) and to
/// `create_invoice`, which never invoices a cancelled order.
///
/// # Errors
/// Postgres failed.
pub async fn needing_cancellation(
    pool: &PgPool,
    store: &str,
    statuses: &[&str],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT o.reference FROM orders o JOIN invoices i ON i.order_id = o.id
         WHERE o.store = $1 AND o.shop_status = ANY($2) AND i.state IN ('created', 'existing')
           AND NOT EXISTS (SELECT 1 FROM invoice_steps s
                           WHERE s.order_id = o.id AND s.step = 'cancel' AND s.state = 'done')
         ORDER BY o.id",
    )
    .bind(store)
    .bind(statuses)
    .fetch_all(pool)
    .await
}

/// The import cursor of `store` for job kind `kind`.
///
/// # Errors
/// Postgres failed.
pub async fn sync_cursor(
    pool: &PgPool,
    store: &str,
    kind: &str,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    let row: Option<(Option<DateTime<Utc>>,)> =
        sqlx::query_as("SELECT cursor FROM store_sync_state WHERE store = $1 AND kind = $2")
            .bind(store)
            .bind(kind)
            .fetch_optional(pool)
            .await?;
    Ok(row.and_then(|(c,)| c))
}

/// Record a successful sync of `store` for `kind`, moving the cursor forward
/// (never back) when one is given.
///
/// # Errors
/// Postgres failed.
pub async fn mark_synced(
    pool: &PgPool,
    store: &str,
    kind: &str,
    cursor: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO store_sync_state (store, kind, cursor, last_success_at) VALUES ($1, $2, $3, now())
         ON CONFLICT (store, kind) DO UPDATE SET
             cursor = GREATEST(store_sync_state.cursor, EXCLUDED.cursor),
             last_success_at = now()",
    )
    .bind(store)
    .bind(kind)
    .bind(cursor)
    .execute(pool)
    .await?;
    Ok(())
}

/// Status history of one order, oldest first: (status, code, label, observed_at).
///
/// # Errors
/// Postgres failed.
pub async fn history(
    pool: &PgPool,
    order_id: i64,
) -> sqlx::Result<Vec<(String, i32, String, DateTime<Utc>)>> {
    sqlx::query_as(
        "SELECT status, courier_code, courier_label, observed_at FROM order_status_history
         WHERE order_id = $1 ORDER BY observed_at, id",
    )
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// References of `store`'s completed orders created in `[since, until)`
/// (by the shop's `date_created_gmt`, else `date_created`).
///
/// # Errors
/// Postgres failed.
pub async fn completed_between(
    pool: &PgPool,
    store: &str,
    since: DateTime<Utc>,
    until: Option<DateTime<Utc>>,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT reference FROM orders
         WHERE store = $1 AND shop_status = 'completed'
           AND (COALESCE(raw->>'date_created_gmt', raw->>'date_created'))::timestamp AT TIME ZONE 'UTC' >= $2
           AND ($3::timestamptz IS NULL
                OR (COALESCE(raw->>'date_created_gmt', raw->>'date_created'))::timestamp AT TIME ZONE 'UTC' < $3)
         ORDER BY id",
    )
    .bind(store)
    .bind(since)
    .bind(until)
    .fetch_all(pool)
    .await
}

/// When `order_id`'s courier status last changed: the courier's own time
/// of it when known, else when we recorded it.
///
/// # Errors
/// Postgres failed.
pub async fn courier_status_time(
    pool: &PgPool,
    order_id: i64,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(
        "SELECT COALESCE(courier_updated_at, status_changed_at) FROM orders WHERE id = $1",
    )
    .bind(order_id)
    .fetch_one(pool)
    .await
}
