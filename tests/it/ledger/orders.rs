//! `ledger::orders`: imported orders, courier observations and their
//! history, the jobs' order selections and the sync cursor.

use std::time::Duration;

use chrono::{DateTime, Utc};

use ordersync::ledger::orders::{self, CourierObservation, ImportedOrder, StatusChange};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{imported, now, observation, observe, order_id, shop_order};
use crate::helpers::TestDb;

const FINAL: [&str; 3] = ["delivered", "cancelled", "returned"];

async fn count(db: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(db).await.unwrap()
}

/// Timestamp `column` of the order `reference`.
async fn time_of(db: &PgPool, reference: &str, column: &str) -> DateTime<Utc> {
    sqlx::query_scalar(&format!("SELECT {column} FROM orders WHERE reference = $1"))
        .bind(reference)
        .fetch_one(db)
        .await
        .unwrap()
}

/// (reference, from, to) of `changes`, by reference.
fn changed(changes: &[StatusChange]) -> Vec<(String, Option<String>, String)> {
    let mut out: Vec<_> = changes
        .iter()
        .map(|c| (c.reference.clone(), c.from.clone(), c.to.clone()))
        .collect();
    out.sort();
    out
}

/// (inserted, updated) of an upsert.
fn counts(u: orders::Upserted) -> (u64, u64) {
    (u.inserted, u.updated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_counts_new_and_updated_orders_per_store() {
    let t = TestDb::create().await;
    assert_eq!(
        counts(orders::upsert(&t.db, "ALPH", &[]).await.unwrap()),
        (0, 0)
    );
    let first = [
        shop_order(1001, "ALPH-1001", "pending"),
        shop_order(1002, "ALPH-1002", "processing"),
    ];
    assert_eq!(
        counts(orders::upsert(&t.db, "ALPH", &first).await.unwrap()),
        (2, 0)
    );
    let second = [
        ImportedOrder {
            total: "12.5".into(),
            phone: None,
            raw: json!({"id": 1002, "changed": true}),
            ..shop_order(1002, "ALPH-1002", "completed")
        },
        shop_order(1003, "ALPH-1003", "processing"),
    ];
    assert_eq!(
        counts(orders::upsert(&t.db, "ALPH", &second).await.unwrap()),
        (1, 1),
        "1003 is new, 1002 changed"
    );
    let updated = orders::by_reference(&t.db, "ALPH-1002")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.shop_status, "completed");
    assert_eq!(updated.total, "12.50");
    assert_eq!(updated.phone, None);
    assert_eq!(updated.raw["changed"], true);
    assert_eq!(updated.store, "ALPH");

    // Another store's order 1001 is its own row.
    assert_eq!(
        counts(
            orders::upsert(&t.db, "BETA", &[shop_order(1001, "BETA-1001", "pending")])
                .await
                .unwrap()
        ),
        (1, 0)
    );
    assert_eq!(count(&t.db, "SELECT count(*) FROM orders").await, 4);

    // A total that is not a number fails the batch and stores none of it.
    let bad = [
        shop_order(1004, "ALPH-1004", "processing"),
        ImportedOrder {
            total: "12,50 EGP".into(),
            ..shop_order(1005, "ALPH-1005", "processing")
        },
    ];
    let error = orders::upsert(&t.db, "ALPH", &bad).await.unwrap_err();
    assert!(error.to_string().contains("12,50 EGP"), "{error}");
    assert_eq!(count(&t.db, "SELECT count(*) FROM orders").await, 4);
    assert!(orders::by_reference(&t.db, "ALPH-1004")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn courier_observations_record_the_first_status_and_each_change() {
    let t = TestDb::create().await;
    imported(&t.db, "ALPH", &[1, 2]).await;
    imported(&t.db, "BETA", &[1]).await;
    let (first_job, second_job) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(
        orders::observe_courier(&t.db, "ALPH", &[], orders::ObservedVia::List, first_job)
            .await
            .unwrap(),
        (vec![], 0, 0)
    );

    let (changes, matched, _) = orders::observe_courier(
        &t.db,
        "ALPH",
        &[
            observation("ALPH-1", 4, "pending"),
            observation("ALPH-2", 4, "pending"),
            // BETA's order and an unknown reference in ALPH's courier list.
            observation("BETA-1", 9, "in_transit"),
            observation("ALPH-404", 9, "in_transit"),
        ],
        orders::ObservedVia::List,
        first_job,
    )
    .await
    .unwrap();
    assert_eq!(matched, 2);
    assert_eq!(
        changed(&changes),
        [
            ("ALPH-1".into(), None, "pending".into()),
            ("ALPH-2".into(), None, "pending".into()),
        ],
        "the first observation is a change"
    );
    assert_eq!(changes[0].code, 4);
    let alph1 = orders::by_reference(&t.db, "ALPH-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alph1.tracking_number.as_deref(), Some("TRK-ALPH-1"));
    assert_eq!(alph1.courier_order_id, Some(9_004));
    assert_eq!(
        (alph1.courier_code, alph1.courier_label.as_deref()),
        (Some(4), Some("label 4"))
    );
    assert_eq!(alph1.status.as_deref(), Some("pending"));
    let beta1 = orders::by_reference(&t.db, "BETA-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (beta1.status, beta1.tracking_number),
        (None, None),
        "another store's order is not touched"
    );
    let alph1_since = time_of(&t.db, "ALPH-1", "status_changed_at").await;

    // ALPH-1 again unchanged (the courier omits its tracking number now),
    // ALPH-2 moves on.
    let unchanged = CourierObservation {
        tracking_number: None,
        ..observation("ALPH-1", 4, "pending")
    };
    let (changes, matched, _) = orders::observe_courier(
        &t.db,
        "ALPH",
        &[unchanged, observation("ALPH-2", 9, "in_transit")],
        orders::ObservedVia::List,
        second_job,
    )
    .await
    .unwrap();
    assert_eq!(matched, 2);
    assert_eq!(
        changed(&changes),
        [("ALPH-2".into(), Some("pending".into()), "in_transit".into())]
    );
    let alph1 = orders::by_reference(&t.db, "ALPH-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        alph1.tracking_number.as_deref(),
        Some("TRK-ALPH-1"),
        "a known tracking number is kept"
    );
    assert_eq!(
        time_of(&t.db, "ALPH-1", "status_changed_at").await,
        alph1_since
    );
    assert!(time_of(&t.db, "ALPH-2", "status_changed_at").await > alph1_since);

    // A poll without news moves only the poll time.
    let before = time_of(&t.db, "ALPH-1", "last_polled_at").await;
    orders::mark_polled(&t.db, alph1.id).await.unwrap();
    assert!(time_of(&t.db, "ALPH-1", "last_polled_at").await > before);
    assert_eq!(
        time_of(&t.db, "ALPH-1", "status_changed_at").await,
        alph1_since
    );

    let statuses = |reference: &'static str| {
        let db = t.db.clone();
        async move {
            let id = order_id(&db, reference).await;
            orders::history(&db, id)
                .await
                .unwrap()
                .into_iter()
                .map(|(status, code, _, _)| (status, code))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(statuses("ALPH-1").await, [("pending".to_owned(), 4)]);
    assert_eq!(
        statuses("ALPH-2").await,
        [("pending".to_owned(), 4), ("in_transit".to_owned(), 9)]
    );
    assert!(statuses("BETA-1").await.is_empty());
    let by_job: Vec<Option<Uuid>> = sqlx::query_scalar(
        "SELECT h.job_id FROM order_status_history h JOIN orders o ON o.id = h.order_id
          WHERE o.reference = 'ALPH-2' ORDER BY h.id",
    )
    .fetch_all(&t.db)
    .await
    .unwrap();
    assert_eq!(by_job, [Some(first_job), Some(second_job)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_observing_one_change_record_it_once() {
    let t = TestDb::create().await;
    let numbers: Vec<i64> = (1..=20).collect();
    imported(&t.db, "ALPH", &numbers).await;
    for n in &numbers {
        let seen = [observation(&format!("ALPH-{n}"), 41, "delivered")];
        let (a, b) = tokio::join!(
            orders::observe_courier(
                &t.db,
                "ALPH",
                &seen,
                orders::ObservedVia::Poll,
                Uuid::now_v7()
            ),
            orders::observe_courier(
                &t.db,
                "ALPH",
                &seen,
                orders::ObservedVia::Poll,
                Uuid::now_v7()
            ),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!((a.1, b.1), (1, 1), "both matched ALPH-{n}");
        assert_eq!(a.0.len() + b.0.len(), 1, "one of them saw the change");
    }
    assert_eq!(
        count(&t.db, "SELECT count(*) FROM order_status_history").await,
        numbers.len() as i64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_pick_the_orders_that_need_them() {
    let t = TestDb::create().await;
    let ids = imported(&t.db, "ALPH", &[1, 2, 3, 4, 5]).await;
    imported(&t.db, "BETA", &[1]).await;
    // ALPH-1: untracked; 2: pending; 3: delivered (final); 4: in transit,
    // shop status on-hold; 5: a courier id without a status.
    observe(
        &t.db,
        "ALPH",
        &[
            observation("ALPH-2", 4, "pending"),
            observation("ALPH-3", 41, "delivered"),
            observation("ALPH-4", 9, "in_transit"),
            observation("ALPH-5", 4, "pending"),
        ],
    )
    .await;
    sqlx::query("UPDATE orders SET status = NULL WHERE reference = 'ALPH-5'")
        .execute(&t.db)
        .await
        .unwrap();
    orders::upsert(&t.db, "ALPH", &[shop_order(4, "ALPH-4", "on-hold")])
        .await
        .unwrap();

    assert_eq!(
        orders::without_tracking(&t.db, "ALPH").await.unwrap(),
        ["ALPH-1"]
    );
    assert_eq!(
        orders::without_tracking(&t.db, "BETA").await.unwrap(),
        ["BETA-1"]
    );
    assert_eq!(
        orders::needing_refresh(&t.db, "ALPH", &FINAL, None)
            .await
            .unwrap(),
        ["ALPH-2", "ALPH-4", "ALPH-5"]
    );
    assert!(orders::needing_refresh(&t.db, "BETA", &FINAL, None)
        .await
        .unwrap()
        .is_empty());
    // The list showed ALPH-2, 4 and 5 just now: a refresh tick looking back
    // past that skips them, until one is seen only by a poll since.
    let tick_window_start = Utc::now() - chrono::Duration::minutes(5);
    assert!(
        orders::needing_refresh(&t.db, "ALPH", &FINAL, Some(tick_window_start))
            .await
            .unwrap()
            .is_empty()
    );
    sqlx::query(
        "UPDATE orders SET listed_at = now() - interval '1 hour' WHERE reference = 'ALPH-4'",
    )
    .execute(&t.db)
    .await
    .unwrap();
    orders::observe_courier(
        &t.db,
        "ALPH",
        &[observation("ALPH-4", 9, "in_transit")],
        orders::ObservedVia::Poll,
        Uuid::now_v7(),
    )
    .await
    .unwrap();
    assert_eq!(
        orders::needing_refresh(&t.db, "ALPH", &FINAL, Some(tick_window_start))
            .await
            .unwrap(),
        ["ALPH-4"],
        "a poll does not count as the list showing the order"
    );

    // Invoices: ALPH-1 claimed (still needs one), ALPH-2 created, ALPH-3 found.
    let lease = Duration::from_secs(120);
    let claim = |order: i64, reference: &'static str| {
        let db = t.db.clone();
        async move {
            let job = Uuid::now_v7();
            ordersync::ledger::invoices::claim(&db, order, reference, job, lease)
                .await
                .unwrap();
            job
        }
    };
    claim(ids[0], "ALPH-1").await;
    let job = claim(ids[1], "ALPH-2").await;
    ordersync::ledger::invoices::settle(&t.db, ids[1], job, "SINV-2", true)
        .await
        .unwrap();
    let job = claim(ids[2], "ALPH-3").await;
    ordersync::ledger::invoices::settle(&t.db, ids[2], job, "SINV-3", false)
        .await
        .unwrap();
    assert_eq!(
        orders::needing_invoice(&t.db, "ALPH", &["processing", "completed"])
            .await
            .unwrap(),
        ["ALPH-1", "ALPH-5"],
        "ALPH-4 is on hold"
    );
    assert_eq!(
        orders::needing_invoice(&t.db, "ALPH", &["on-hold"])
            .await
            .unwrap(),
        ["ALPH-4"]
    );

    // Backfills: completed orders by the shop's creation date.
    let completed = |number: i64, created: &str| ImportedOrder {
        raw: json!({"id": number, "date_created_gmt": created}),
        ..shop_order(number, &format!("ALPH-{number}"), "completed")
    };
    orders::upsert(
        &t.db,
        "ALPH",
        &[
            completed(6, "2024-03-01T10:00:00"),
            completed(7, "2024-05-01T00:00:00"),
        ],
    )
    .await
    .unwrap();
    let date = |text: &str| -> DateTime<Utc> { text.parse().unwrap() };
    assert_eq!(
        orders::completed_between(
            &t.db,
            "ALPH",
            date("2024-02-01T00:00:00Z"),
            Some(date("2024-05-01T00:00:00Z"))
        )
        .await
        .unwrap(),
        ["ALPH-6"],
        "the end is exclusive"
    );
    assert_eq!(
        orders::completed_between(&t.db, "ALPH", date("2024-02-01T00:00:00Z"), None)
            .await
            .unwrap(),
        ["ALPH-6", "ALPH-7"]
    );
    assert!(
        orders::completed_between(&t.db, "BETA", date("2000-01-01T00:00:00Z"), None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_cursor_only_moves_forward() {
    let t = TestDb::create().await;
    let cursor = || orders::sync_cursor(&t.db, "ALPH", "import_orders");
    assert_eq!(cursor().await.unwrap(), None);
    let t1 = now() - chrono::Duration::hours(1);
    let t0 = t1 - chrono::Duration::hours(1);
    let t2 = now();
    orders::mark_synced(&t.db, "ALPH", "import_orders", Some(t1))
        .await
        .unwrap();
    assert_eq!(cursor().await.unwrap(), Some(t1));
    orders::mark_synced(&t.db, "ALPH", "import_orders", Some(t0))
        .await
        .unwrap();
    assert_eq!(cursor().await.unwrap(), Some(t1), "never back");
    orders::mark_synced(&t.db, "ALPH", "import_orders", None)
        .await
        .unwrap();
    assert_eq!(
        cursor().await.unwrap(),
        Some(t1),
        "a sync without a cursor keeps it"
    );
    orders::mark_synced(&t.db, "ALPH", "import_orders", Some(t2))
        .await
        .unwrap();
    assert_eq!(cursor().await.unwrap(), Some(t2));
    assert_eq!(
        orders::sync_cursor(&t.db, "ALPH", "fetch_tracking")
            .await
            .unwrap(),
        None,
        "per kind"
    );
    assert_eq!(
        orders::sync_cursor(&t.db, "BETA", "import_orders")
            .await
            .unwrap(),
        None,
        "per store"
    );
    // A tracking sync keeps no cursor, only the time of its success.
    orders::mark_synced(&t.db, "BETA", "fetch_tracking", None)
        .await
        .unwrap();
    assert_eq!(
        orders::sync_cursor(&t.db, "BETA", "fetch_tracking")
            .await
            .unwrap(),
        None
    );
    let successes = count(&t.db, "SELECT count(last_success_at) FROM store_sync_state").await;
    assert_eq!(successes, 2);
}
