//! Read-only figures for operators: per-queue failure and throughput
//! counts, and per-store freshness and tracking coverage.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::domain::JobKind;

/// The SQL spelling of `Lane::of`: the scheduler and backfills use the bulk
/// lane, everyone else the live one.
const LANE_OF_SOURCE_SQL: &str =
    "CASE WHEN j.source IN ('scheduler', 'backfill') THEN 'bulk' ELSE 'live' END";

/// Counts of one queue read from the ledger.
#[derive(Debug, Default, Clone, Copy)]
pub struct QueueLedgerCounts {
    /// Failed jobs nobody has replayed or discarded.
    pub unresolved_failures: u64,
    /// Runs that finished their job (succeeded, skipped) in the last minute.
    pub completed: u64,
    /// Runs that ended their job failed (failed, not found) in the last minute.
    pub failed: u64,
    /// Runs rescheduled after a transient failure in the last minute.
    pub retried: u64,
}

/// Per (ledger queue name `{namespace}:{kind}`, lane `live`/`bulk`):
/// unresolved failures and last-minute runs.
///
/// # Errors
/// Postgres failed.
pub async fn queue_counts(
    db: &PgPool,
    namespace: &str,
) -> sqlx::Result<HashMap<(String, &'static str), QueueLedgerCounts>> {
    let queue_names: Vec<String> = JobKind::ALL
        .iter()
        .map(|kind| format!("{namespace}:{}", kind.as_str()))
        .collect();
    let mut out: HashMap<(String, &'static str), QueueLedgerCounts> = HashMap::new();
    let lane_of = |s: &str| if s == "bulk" { "bulk" } else { "live" };
    let failures: Vec<(String, String, i64)> = sqlx::query_as(&format!(
        "SELECT j.queue, {LANE_OF_SOURCE_SQL}, count(*)
           FROM dead_letters d JOIN jobs j ON j.job_id = d.job_id
          WHERE d.resolution IS NULL AND j.queue = ANY($1)
          GROUP BY 1, 2"
    ))
    .bind(&queue_names)
    .fetch_all(db)
    .await?;
    for (queue, lane, n) in failures {
        out.entry((queue, lane_of(&lane)))
            .or_default()
            .unresolved_failures = n as u64;
    }
    // job_runs_finished_at_brin keeps this a range scan of the last minute.
    let recent: Vec<(String, String, i64, i64, i64)> = sqlx::query_as(&format!(
        "SELECT j.queue, {LANE_OF_SOURCE_SQL},
                count(*) FILTER (WHERE r.outcome IN ('succeeded', 'skipped')),
                count(*) FILTER (WHERE r.outcome IN ('failed', 'not_found')),
                count(*) FILTER (WHERE r.outcome = 'retry')
           FROM job_runs r JOIN jobs j ON j.job_id = r.job_id
          WHERE r.finished_at >= now() - interval '1 minute' AND j.queue = ANY($1)
          GROUP BY 1, 2"
    ))
    .bind(&queue_names)
    .fetch_all(db)
    .await?;
    for (queue, lane, completed, failed, retried) in recent {
        let entry = out.entry((queue, lane_of(&lane))).or_default();
        entry.completed = completed as u64;
        entry.failed = failed as u64;
        entry.retried = retried as u64;
    }
    Ok(out)
}

/// One store's sync state and order counts.
#[derive(Debug, Clone, Default)]
pub struct StoreLedgerState {
    /// Orders imported.
    pub orders: u64,
    /// Of which have a tracking number.
    pub tracked: u64,
    /// Last successful import_orders.
    pub last_import_at: Option<DateTime<Utc>>,
    /// Last successful fetch_tracking.
    pub last_tracking_at: Option<DateTime<Utc>>,
}

/// Sync state and order counts of every store the ledger knows, by code.
///
/// # Errors
/// Postgres failed.
pub async fn store_states(db: &PgPool) -> sqlx::Result<HashMap<String, StoreLedgerState>> {
    let mut out: HashMap<String, StoreLedgerState> = HashMap::new();
    let syncs: Vec<(String, String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT store, kind, last_success_at FROM store_sync_state
          WHERE kind IN ('import_orders', 'fetch_tracking')",
    )
    .fetch_all(db)
    .await?;
    for (store, kind, at) in syncs {
        let entry = out.entry(store).or_default();
        if kind == JobKind::ImportOrders.as_str() {
            entry.last_import_at = at;
        } else {
            entry.last_tracking_at = at;
        }
    }
    let counts: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT store, count(*), count(tracking_number) FROM orders GROUP BY store")
            .fetch_all(db)
            .await?;
    for (store, orders, tracked) in counts {
        let entry = out.entry(store).or_default();
        entry.orders = orders as u64;
        entry.tracked = tracked as u64;
    }
    Ok(out)
}
