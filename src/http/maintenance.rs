//! The api's periodic upkeep: forget webhook deliveries older than the
//! dedupe window, so `webhook_deliveries` stays as large as a week of
//! deliveries instead of growing forever; fold the orders view's count
//! deltas into their sums, so reading the counts stays a few hundred rows.
//! Every api replica runs it; the deletes are idempotent and one replica
//! folds at a time.

use std::time::Duration;

use sqlx::PgPool;

/// How often deliveries are pruned (and once at start-up).
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

/// How often the order count deltas are folded.
pub const FOLD_INTERVAL: Duration = Duration::from_secs(10);

/// Prune now and every [`PRUNE_INTERVAL`], fold every [`FOLD_INTERVAL`],
/// until the task is dropped.
pub async fn run(db: PgPool) {
    let folding = fold_counts(db.clone());
    let pruning = prune(db);
    tokio::join!(folding, pruning);
}

async fn fold_counts(db: PgPool) {
    let mut tick = tokio::time::interval(FOLD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = crate::ledger::orders_view::fold_counts(&db).await {
            tracing::warn!(error = %e, "folding the order counts failed; trying again later");
        }
    }
}

async fn prune(db: PgPool) {
    let mut tick = tokio::time::interval(PRUNE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match prune_deliveries(&db).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                pruned = n,
                "forgot webhook deliveries older than the dedupe window"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "pruning webhook deliveries failed; trying again later")
            }
        }
    }
}

/// Delete deliveries older than the dedupe window; returns how many.
///
/// # Errors
/// Postgres failed.
pub async fn prune_deliveries(db: &PgPool) -> sqlx::Result<u64> {
    let window = chrono::Duration::from_std(crate::ledger::webhooks::DEDUPE_WINDOW)
        .unwrap_or(chrono::Duration::days(7));
    crate::ledger::webhooks::prune(db, chrono::Utc::now() - window).await
}
