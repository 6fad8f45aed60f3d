//! The orders stuck in one non-final status (or never reported by the
//! courier): per-store counts and the longest-stuck orders, in one snapshot.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::trace::model::{StuckOrder, StuckOrders, StuckStore, UNTRACKED};

/// The final normalized statuses, as the SQL of the partial index
/// `orders_unsettled_since_idx` spells them (migration 0006). The planner only
/// uses that index when a query repeats the predicate, so queries embed this
/// literal instead of binding a parameter.
const UNSETTLED: &str = "(status IS NULL OR status NOT IN ('delivered', 'cancelled', 'returned'))";
/// When an unsettled order entered its current state: its last status
/// change, or its import when the courier never reported it.
const SINCE: &str = "COALESCE(status_changed_at, imported_at)";

/// Counts of stuck orders per store and status (`$1` cutoff, `$2` store).
pub fn stuck_counts_sql(with_store: bool) -> String {
    format!(
        "SELECT store, COALESCE(status, '{UNTRACKED}') AS status, count(*) AS n, min({SINCE}) AS oldest
         FROM orders WHERE {UNSETTLED} AND {SINCE} < $1 {}
         GROUP BY 1, 2",
        if with_store { "AND store = $2" } else { "" }
    )
}

/// The longest-stuck orders (`$1` cutoff, `$2` now, `$3` limit, `$4` store).
pub fn stuck_list_sql(with_store: bool) -> String {
    format!(
        "SELECT reference, store, COALESCE(status, '{UNTRACKED}') AS status, courier_label,
                {SINCE} AS since, extract(day FROM $2 - {SINCE})::bigint AS days_in_status,
                tracking_number, last_polled_at
         FROM orders WHERE {UNSETTLED} AND {SINCE} < $1 {}
         ORDER BY {SINCE}, reference LIMIT $3",
        if with_store { "AND store = $4" } else { "" }
    )
}

/// Orders in one non-final status (or never reported by the courier) for
/// more than `days` days, optionally of one store: per-store counts and the
/// `limit` longest-stuck orders.
///
/// # Errors
/// Postgres failed.
pub async fn stuck_orders(
    db: &PgPool,
    days: u32,
    store: Option<&str>,
    limit: i64,
) -> sqlx::Result<StuckOrders> {
    let mut tx = db
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let (generated_at, cutoff): (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("SELECT now(), now() - make_interval(days => $1)")
            .bind(days as i32)
            .fetch_one(&mut *tx)
            .await?;
    let counts_sql = stuck_counts_sql(store.is_some());
    let mut counts =
        sqlx::query_as::<_, (String, String, i64, DateTime<Utc>)>(&counts_sql).bind(cutoff);
    if let Some(store) = store {
        counts = counts.bind(store);
    }
    let counts = counts.fetch_all(&mut *tx).await?;
    let list_sql = stuck_list_sql(store.is_some());
    let mut list = sqlx::query_as::<_, StuckOrder>(&list_sql)
        .bind(cutoff)
        .bind(generated_at)
        .bind(limit);
    if let Some(store) = store {
        list = list.bind(store);
    }
    let orders = list.fetch_all(&mut *tx).await?;
    tx.commit().await?;

    let mut per_store: BTreeMap<String, StuckStore> = BTreeMap::new();
    for (code, status, n, oldest) in counts {
        let s = per_store.entry(code.clone()).or_insert_with(|| StuckStore {
            store: code,
            stuck: 0,
            by_status: BTreeMap::new(),
            oldest_since: oldest,
        });
        s.stuck += n;
        s.oldest_since = s.oldest_since.min(oldest);
        *s.by_status.entry(status).or_default() += n;
    }
    let mut per_store: Vec<StuckStore> = per_store.into_values().collect();
    per_store.sort_by(|a, b| b.stuck.cmp(&a.stuck).then_with(|| a.store.cmp(&b.store)));
    let total = per_store.iter().map(|s| s.stuck).sum();
    Ok(StuckOrders {
        generated_at,
        days,
        cutoff,
        store: store.map(str::to_owned),
        total,
        truncated: (orders.len() as i64) < total,
        per_store,
        orders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NormalizedStatus;

    #[test]
    fn the_stuck_predicate_matches_the_final_statuses_and_the_migration() {
        let finals: Vec<String> = NormalizedStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        assert!(
            UNSETTLED.contains(&format!("NOT IN ({})", finals.join(", "))),
            "{UNSETTLED} must list exactly the final statuses {finals:?}"
        );
        // The partial index is only usable when the query repeats its predicate.
        let migration = include_str!("../../../migrations/0006_order_tracing.sql");
        let normalized: String = migration.split_whitespace().collect::<Vec<_>>().join(" ");
        let predicate = UNSETTLED
            .strip_prefix('(')
            .and_then(|p| p.strip_suffix(')'))
            .unwrap();
        assert!(
            normalized.contains(&format!("WHERE {predicate};")),
            "migration 0006's predicate differs from {UNSETTLED}"
        );
        assert!(normalized.contains(&format!("(({SINCE}), store)")));
    }
}
