//! The SQL of order tracing, returning data only: no wording for humans and
//! no rules ([`super::diagnosis`] judges; `text` and [`super::render`] word
//! it).
//!
//! - `order`: one order's snapshot, and what lies near a reference that
//!   matched none;
//! - `rows`: the rows as Postgres returns them, turned into the model;
//! - `stuck`: the orders stuck in one non-final status.
//!
//! A trace is read in one `REPEATABLE READ` snapshot, so its diagnosis never
//! reasons over a job whose runs were read before and after a worker wrote
//! one. Every query walks an index: the order by its unique reference, its
//! history by `order_status_history_order_idx`, its jobs by
//! `jobs_order_ref_idx`, their runs and dead letters by primary key, the
//! store's own syncs by `jobs_store_kind_idx`; `stuck` uses
//! `orders_unsettled_since_idx` (migration 0006). The statements are public
//! so that `ordersync-dev bench --trace-orders 1000000` can `EXPLAIN` them
//! on a million orders.

mod order;
mod rows;
mod stuck;

use sqlx::PgPool;

pub(crate) use order::{near_miss, read_trace};
pub use order::{HISTORY_SQL, JOBS_SQL, ORDER_SQL, RUNS_SQL, STORE_JOBS_SEARCHED, STORE_JOBS_SQL};
pub use stuck::{stuck_counts_sql, stuck_list_sql, stuck_orders};

/// The stores that have orders, in code order.
///
/// # Errors
/// Postgres failed.
pub(crate) async fn stores_with_orders(db: &PgPool) -> sqlx::Result<Vec<String>> {
    // A loose index scan: one probe of `orders_store_status_idx` per store,
    // not a scan of a million orders.
    sqlx::query_scalar(
        "WITH RECURSIVE s AS (
             SELECT min(store) AS store FROM orders
             UNION ALL
             SELECT (SELECT min(store) FROM orders WHERE store > s.store) FROM s WHERE s.store IS NOT NULL
         )
         SELECT store FROM s WHERE store IS NOT NULL",
    )
    .fetch_all(db)
    .await
}
