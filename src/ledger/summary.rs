//! Per-store figures for the demo's closing table and `ordersync summary`.

use std::collections::BTreeMap;

use sqlx::PgPool;

/// One store's figures.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct StoreSummary {
    /// Store code.
    pub store: String,
    /// Orders imported.
    pub orders: i64,
    /// Orders with a tracking number.
    pub with_tracking: i64,
    /// Orders per normalized status (`untracked` for none yet).
    pub by_status: BTreeMap<String, i64>,
    /// Invoices we created.
    pub invoices_created: i64,
    /// Invoices found already in the ERP (skipped).
    pub invoices_skipped: i64,
    /// Texts sent.
    pub sms_sent: i64,
    /// Jobs whose latest run failed.
    pub failed_jobs: i64,
    /// Jobs whose latest run was "not found at the courier".
    pub not_found: i64,
    /// Jobs waiting on a deferral (payment pending).
    pub deferred: i64,
}

/// Figures for every store that has orders or jobs, by store code.
///
/// # Errors
/// Postgres failed.
pub async fn per_store(pool: &PgPool) -> sqlx::Result<Vec<StoreSummary>> {
    let mut stores: BTreeMap<String, StoreSummary> = BTreeMap::new();
    let orders: Vec<(String, Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT store, status, count(*), count(tracking_number) FROM orders GROUP BY store, status",
    )
    .fetch_all(pool)
    .await?;
    for (store, status, count, tracked) in orders {
        let s = stores.entry(store.clone()).or_insert_with(|| StoreSummary {
            store,
            ..Default::default()
        });
        s.orders += count;
        s.with_tracking += tracked;
        *s.by_status
            .entry(status.unwrap_or_else(|| "untracked".into()))
            .or_default() += count;
    }
    let effects: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT o.store,
                count(*) FILTER (WHERE i.state = 'created'),
                count(*) FILTER (WHERE i.state = 'existing'),
                (SELECT count(*) FROM sms_messages m JOIN orders o2 ON o2.id = m.order_id
                  WHERE o2.store = o.store AND m.state = 'sent')
         FROM orders o LEFT JOIN invoices i ON i.order_id = o.id GROUP BY o.store",
    )
    .fetch_all(pool)
    .await?;
    for (store, created, existing, sms) in effects {
        let s = stores.entry(store.clone()).or_insert_with(|| StoreSummary {
            store,
            ..Default::default()
        });
        s.invoices_created = created;
        s.invoices_skipped = existing;
        s.sms_sent = sms;
    }
    let outcomes: Vec<(Option<String>, String, i64)> = sqlx::query_as(
        "SELECT j.store, last.outcome, count(*)
         FROM jobs j
         JOIN LATERAL (SELECT outcome FROM job_runs r WHERE r.job_id = j.job_id ORDER BY run DESC LIMIT 1) last ON true
         WHERE last.outcome IN ('failed', 'not_found', 'deferred')
         GROUP BY j.store, last.outcome",
    )
    .fetch_all(pool)
    .await?;
    for (store, outcome, count) in outcomes {
        let store = store.unwrap_or_default();
        let s = stores.entry(store.clone()).or_insert_with(|| StoreSummary {
            store,
            ..Default::default()
        });
        match outcome.as_str() {
            "failed" => s.failed_jobs = count,
            "not_found" => s.not_found = count,
            _ => s.deferred = count,
        }
    }
    Ok(stores.into_values().collect())
}
