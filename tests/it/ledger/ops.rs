//! `ledger::ops`: the ledger's side of `ordersync queues` and store freshness.

use ordersync::domain::{JobKind, RunOutcome, Source};
use ordersync::ledger::ops;
use ordersync::ledger::runs::RunRecord;
use sqlx::PgPool;
use uuid::Uuid;

use super::{
    dead_letter, envelope, imported, insert_runs, job, now, observation, observe, run, runs_ending,
    NAMESPACE,
};
use crate::helpers::TestDb;

/// A `kind` job enqueued by `source` whose runs end in `outcomes`, with a
/// dead letter when `dead` (resolved when `resolved`).
async fn history(
    db: &PgPool,
    kind: JobKind,
    source: Source,
    outcomes: &[RunOutcome],
    dead: Option<bool>,
) -> Uuid {
    let id = job(db, kind, "BETA", None, source).await;
    runs_ending(db, id, outcomes).await;
    if let Some(resolved) = dead {
        ordersync::ledger::dead_letters::insert(db, &dead_letter(id, kind, "BETA", "failed"))
            .await
            .unwrap();
        if resolved {
            assert!(
                ordersync::ledger::dead_letters::mark_discarded(db, id, "test")
                    .await
                    .unwrap()
            );
        }
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_counts_split_lanes_and_count_only_the_last_minute() {
    let t = TestDb::create().await;
    let db = &t.db;
    use JobKind::{CreateInvoice, Noop};
    use RunOutcome::{Failed, NotFound, Retry, Skipped, Succeeded};
    // Live lane (an operator's jobs).
    history(db, Noop, Source::Cli, &[Succeeded], None).await;
    history(db, Noop, Source::Cli, &[Retry, Succeeded], None).await;
    history(db, Noop, Source::Webhook, &[Skipped], None).await;
    history(db, Noop, Source::Cli, &[Retry, Failed], Some(false)).await;
    history(db, Noop, Source::Replay, &[NotFound], Some(true)).await;
    // Finished two minutes ago: not in the last minute.
    let old = job(db, Noop, "BETA", None, Source::Cli).await;
    let two_minutes_ago = now() - chrono::Duration::minutes(2);
    insert_runs(
        db,
        &[RunRecord {
            started_at: two_minutes_ago,
            finished_at: two_minutes_ago,
            ..run(old, 1, Failed)
        }],
    )
    .await;
    // Bulk lane (the scheduler and backfills).
    history(db, Noop, Source::Scheduler, &[Succeeded], None).await;
    history(db, Noop, Source::Backfill, &[Retry], None).await;
    history(db, Noop, Source::Scheduler, &[Failed], Some(false)).await;
    history(db, CreateInvoice, Source::Cli, &[Succeeded], None).await;
    // Another namespace's queue is not ours.
    let foreign = envelope(Noop, "BETA", None, Source::Cli);
    ordersync::ledger::jobs::insert(db, "another-namespace", &[(&foreign, None)])
        .await
        .unwrap();
    runs_ending(db, foreign.job_id, &[Failed]).await;
    ordersync::ledger::dead_letters::insert(db, &dead_letter(foreign.job_id, Noop, "BETA", "x"))
        .await
        .unwrap();

    let counts = ops::queue_counts(db, NAMESPACE).await.unwrap();
    let figures = |queue: &str, lane: &'static str| {
        let c = counts
            .get(&(format!("{NAMESPACE}:{queue}"), lane))
            .unwrap_or_else(|| panic!("no {queue} {lane} in {counts:?}"));
        (c.unresolved_failures, c.completed, c.failed, c.retried)
    };
    // (unresolved failures, completed, failed, retried)
    assert_eq!(figures("noop", "live"), (1, 3, 2, 2));
    assert_eq!(figures("noop", "bulk"), (1, 1, 1, 1));
    assert_eq!(figures("create_invoice", "live"), (0, 1, 0, 0));
    assert_eq!(counts.len(), 3, "nothing else: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_states_count_orders_and_read_the_last_syncs() {
    let t = TestDb::create().await;
    let db = &t.db;
    imported(db, "ALPH", &[1, 2, 3]).await;
    imported(db, "BETA", &[1]).await;
    observe(
        db,
        "ALPH",
        &[
            observation("ALPH-1", 4, "pending"),
            observation("ALPH-2", 9, "in_transit"),
        ],
    )
    .await;
    let synced = |store: &'static str, kind: &'static str| {
        let db = db.clone();
        async move {
            ordersync::ledger::orders::mark_synced(&db, store, kind, None)
                .await
                .unwrap();
        }
    };
    synced("ALPH", "import_orders").await;
    synced("ALPH", "fetch_tracking").await;
    synced("ALPH", "create_invoice").await;
    synced("GAMA", "import_orders").await;
    // Distinct times, so a value read from the wrong row shows.
    sqlx::query(
        "UPDATE store_sync_state SET last_success_at = now() - make_interval(mins => CASE kind
             WHEN 'import_orders' THEN 10 WHEN 'fetch_tracking' THEN 20 ELSE 30 END)",
    )
    .execute(db)
    .await
    .unwrap();
    let last = |store: &'static str, kind: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, chrono::DateTime<chrono::Utc>>(
                "SELECT last_success_at FROM store_sync_state WHERE store = $1 AND kind = $2",
            )
            .bind(store)
            .bind(kind)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };

    let states = ops::store_states(db).await.unwrap();
    let state = |store: &str| {
        let s = &states[store];
        (s.orders, s.tracked, s.last_import_at, s.last_tracking_at)
    };
    assert_eq!(
        state("ALPH"),
        (
            3,
            2,
            Some(last("ALPH", "import_orders").await),
            Some(last("ALPH", "fetch_tracking").await)
        )
    );
    assert_eq!(state("BETA"), (1, 0, None, None));
    assert_eq!(
        state("GAMA"),
        (0, 0, Some(last("GAMA", "import_orders").await), None),
        "synced, no orders yet"
    );
    assert_eq!(states.len(), 3);
}
