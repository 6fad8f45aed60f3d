//! `ledger::summary`: the per-store table of `ordersync summary`.

use std::time::Duration;

use ordersync::domain::{JobKind, RunOutcome, Source};
use ordersync::ledger::{invoices, sms, summary};
use serde_json::json;
use uuid::Uuid;

use super::{imported, job, observation, observe, runs_ending};
use crate::helpers::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_store_counts_orders_effects_and_unsettled_jobs() {
    let t = TestDb::create().await;
    let db = &t.db;
    let alph = imported(db, "ALPH", &[1, 2, 3]).await;
    let beta = imported(db, "BETA", &[1]).await;
    observe(
        db,
        "ALPH",
        &[
            observation("ALPH-1", 41, "delivered"),
            observation("ALPH-2", 9, "in_transit"),
        ],
    )
    .await;

    // Invoices: ALPH-1 created, ALPH-2 found in the ERP, BETA-1 only claimed.
    let lease = Duration::from_secs(120);
    for (order, reference, created) in [
        (alph[0], "ALPH-1", Some(true)),
        (alph[1], "ALPH-2", Some(false)),
        (beta[0], "BETA-1", None),
    ] {
        let job = Uuid::now_v7();
        invoices::claim(db, order, reference, job, lease)
            .await
            .unwrap();
        if let Some(created) = created {
            invoices::settle(db, order, job, &format!("SINV-{reference}"), created)
                .await
                .unwrap();
        }
    }
    // Texts: one sent, one of unknown fate, one being sent.
    let text = |order: i64, status: &'static str, job: Uuid| {
        let db = db.clone();
        async move {
            sms::claim(&db, order, status, "+201000000001", "hi", job, lease)
                .await
                .unwrap()
        }
    };
    let sender = Uuid::now_v7();
    text(alph[0], "delivered", sender).await;
    sms::mark_sent(db, alph[0], "delivered", "msg-1")
        .await
        .unwrap();
    text(alph[1], "in_transit", sender).await;
    text(alph[1], "in_transit", sender).await; // its own claim again: unknown
    text(alph[0], "in_transit", Uuid::now_v7()).await;

    // Jobs by their latest run.
    use RunOutcome::{Deferred, Failed, NotFound, Retry, Succeeded};
    for (store, outcomes) in [
        ("ALPH", vec![Failed]),
        ("ALPH", vec![Retry, Succeeded]),
        ("ALPH", vec![Failed, Deferred]),
        ("ALPH", vec![Deferred, Failed]),
        ("BETA", vec![NotFound]),
        ("BETA", vec![Retry]),
        ("GAMA", vec![Failed]),
    ] {
        let id = job(db, JobKind::Noop, store, None, Source::Cli).await;
        runs_ending(db, id, &outcomes).await;
    }

    let stores = serde_json::to_value(summary::per_store(db).await.unwrap()).unwrap();
    assert_eq!(
        stores,
        json!([
            {
                "store": "ALPH", "orders": 3, "with_tracking": 2,
                "by_status": {"delivered": 1, "in_transit": 1, "untracked": 1},
                "invoices_created": 1, "invoices_skipped": 1, "sms_sent": 1,
                "failed_jobs": 2, "not_found": 0, "deferred": 1
            },
            {
                "store": "BETA", "orders": 1, "with_tracking": 0,
                "by_status": {"untracked": 1},
                "invoices_created": 0, "invoices_skipped": 0, "sms_sent": 0,
                "failed_jobs": 0, "not_found": 1, "deferred": 0
            },
            {
                "store": "GAMA", "orders": 0, "with_tracking": 0, "by_status": {},
                "invoices_created": 0, "invoices_skipped": 0, "sms_sent": 0,
                "failed_jobs": 1, "not_found": 0, "deferred": 0
            }
        ])
    );
}
