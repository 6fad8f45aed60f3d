//! One order's whole story, read back from the ledger, and why it is where
//! it is: `ordersync orders trace|stuck` and `/admin/api/orders`.
//!
//! - `model`: the data (a trace, the stuck orders) as the admin API and
//!   `--json` serve it, with the limits and defaults that bound it;
//! - `query`: the SQL, read-only, returning data only (one snapshot per
//!   trace); its statements are public for the benchmark's `EXPLAIN`;
//! - [`diagnosis`]: the rules that turn a trace into findings (pure, one
//!   file per family of rules);
//! - `text`: the words the API and the terminal share: times, the hints for
//!   an unknown reference or store;
//! - [`render`]: the terminal report.
//!
//! This file joins them: [`trace_order`] reads a snapshot, then diagnoses
//! it; [`unknown_reference_hints`] and [`unknown_store`] read what lies near
//! a reference or store that matched no order, then word it.

pub mod diagnosis;
mod model;
mod query;
pub mod render;
mod text;

use sqlx::PgPool;

pub use diagnosis::{Finding, Severity};
pub use model::{
    validate_reference, OrderTrace, StatusHistoryEntry, StoreJob, StoreSync, StoreSyncs,
    StuckOrder, StuckOrders, StuckStore, TracedDeadLetter, TracedInvoice, TracedJob, TracedOrder,
    TracedSms, DEFAULT_STUCK_DAYS, DEFAULT_STUCK_LIMIT, JOBS_SHOWN_PER_KIND, MAX_REFERENCE_LEN,
    MAX_STUCK_DAYS, MAX_STUCK_LIMIT, UNTRACKED,
};
pub use query::{
    stuck_counts_sql, stuck_list_sql, stuck_orders, HISTORY_SQL, JOBS_SQL, ORDER_SQL, RUNS_SQL,
    STORE_JOBS_SEARCHED, STORE_JOBS_SQL,
};

/// Everything about the order `reference`, and what it means; `None` when
/// there is no such order.
///
/// # Errors
/// Postgres failed.
pub async fn trace_order(db: &PgPool, reference: &str) -> sqlx::Result<Option<OrderTrace>> {
    let Some(trace) = query::read_trace(db, reference).await? else {
        return Ok(None);
    };
    let findings = diagnosis::diagnose(&trace);
    Ok(Some(trace.with_findings(findings)))
}

/// Why `reference` matched no order, as hints for the operator: a
/// differently spelled reference that exists, a store prefix with no orders
/// (and the stores that have some), jobs that name it anyway, the store's
/// last import. Every look-up is by index.
///
/// # Errors
/// Postgres failed.
pub async fn unknown_reference_hints(db: &PgPool, reference: &str) -> sqlx::Result<Vec<String>> {
    let miss = query::near_miss(db, reference).await?;
    Ok(text::reference_hints(&miss))
}

/// Why `orders stuck --store STORE` can list nothing: `None` when the store
/// has orders, otherwise a message naming the stores that do.
///
/// # Errors
/// Postgres failed.
pub async fn unknown_store(db: &PgPool, store: &str) -> sqlx::Result<Option<String>> {
    let stores = query::stores_with_orders(db).await?;
    Ok((!stores.iter().any(|s| s == store)).then(|| text::unknown_store_message(store, &stores)))
}
