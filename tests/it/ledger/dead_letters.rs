//! `ledger::dead_letters`: failed jobs, their filters and groups, and the
//! resolution (replay or discard) that happens once.

use chrono::Utc;
use ordersync::domain::{FailureClass, JobKind, Source};
use ordersync::ledger::dead_letters::{self, Filter, NewDeadLetter};
use sqlx::PgPool;
use uuid::Uuid;

use super::{dead_letter, failed_job, job};
use crate::helpers::{eventually, TestDb};

/// Set `job_id`'s failure time to `ago` before now.
async fn failed_ago(db: &PgPool, job_id: Uuid, ago: chrono::Duration) {
    sqlx::query(
        "UPDATE dead_letters SET failed_at = now() - make_interval(secs => $2) WHERE job_id = $1",
    )
    .bind(job_id)
    .bind(ago.num_seconds() as f64)
    .execute(db)
    .await
    .unwrap();
}

async fn listed(db: &PgPool, filter: &Filter) -> Vec<Uuid> {
    dead_letters::list(db, filter, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.job_id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_failure_is_recorded_once() {
    let t = TestDb::create().await;
    let id = failed_job(&t.db, JobKind::Noop, "BETA", "asked to fail").await;
    // The final run redelivered: its dead letter is recorded again.
    let again = NewDeadLetter {
        error_message: "a different message".into(),
        attempts: 5,
        ..dead_letter(id, JobKind::Noop, "BETA", "ignored")
    };
    dead_letters::insert(&t.db, &again).await.unwrap();

    let stored = dead_letters::get(&t.db, id).await.unwrap().unwrap();
    assert_eq!(stored.error_message, "asked to fail");
    assert_eq!(stored.attempts, 3);
    assert_eq!(stored.error_class, "test");
    assert_eq!(stored.outcome, "failed");
    assert_eq!(stored.store.as_deref(), Some("BETA"));
    assert_eq!(stored.resolution, None);
    assert_eq!(listed(&t.db, &Filter::default()).await, [id]);
    assert!(dead_letters::get(&t.db, Uuid::now_v7())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_narrow_the_list_and_the_groups() {
    let t = TestDb::create().await;
    let db = &t.db;
    let record = |kind: JobKind,
                  store: &'static str,
                  order: Option<&'static str>,
                  class,
                  message: &'static str,
                  fingerprint: &'static str| async move {
        let id = job(db, kind, store, order, Source::Cli).await;
        let letter = NewDeadLetter {
            order_ref: order.map(str::to_owned),
            error_class: class,
            fingerprint: fingerprint.to_owned(),
            ..dead_letter(id, kind, store, message)
        };
        dead_letters::insert(db, &letter).await.unwrap();
        id
    };
    let paypal_alph = record(
        JobKind::CreateInvoice,
        "ALPH",
        Some("ALPH-1"),
        FailureClass::UnknownPaymentMethod,
        "payment method 'paypal' has no ERP spelling",
        "fp-paypal",
    )
    .await;
    let paypal_beta = record(
        JobKind::CreateInvoice,
        "BETA",
        Some("BETA-7"),
        FailureClass::UnknownPaymentMethod,
        "payment method 'PayPal' has no ERP spelling (BETA)",
        "fp-paypal",
    )
    .await;
    let unknown = record(
        JobKind::RefreshStatus,
        "ALPH",
        Some("ALPH-2"),
        FailureClass::UnknownOrder,
        "courier account 'primary' does not know order ALPH-2",
        "fp-unknown",
    )
    .await;
    let old = record(
        JobKind::Noop,
        "BETA",
        None,
        FailureClass::Test,
        "asked to fail",
        "fp-noop",
    )
    .await;
    for (id, ago) in [
        (unknown, chrono::Duration::minutes(1)),
        (paypal_beta, chrono::Duration::minutes(2)),
        (paypal_alph, chrono::Duration::hours(1)),
        (old, chrono::Duration::days(2)),
    ] {
        failed_ago(db, id, ago).await;
    }

    let filter = |f: fn(&mut Filter)| {
        let mut filter = Filter::default();
        f(&mut filter);
        filter
    };
    assert_eq!(
        listed(db, &Filter::default()).await,
        [unknown, paypal_beta, paypal_alph, old],
        "newest first"
    );
    assert_eq!(
        listed(db, &filter(|f| f.kind = Some("create_invoice".into()))).await,
        [paypal_beta, paypal_alph]
    );
    assert_eq!(
        listed(db, &filter(|f| f.store = Some("ALPH".into()))).await,
        [unknown, paypal_alph]
    );
    assert_eq!(
        listed(db, &filter(|f| f.grep = Some("PAYPAL".into()))).await,
        [paypal_beta, paypal_alph],
        "the message, case-insensitively"
    );
    assert_eq!(
        listed(db, &filter(|f| f.grep = Some("unknown_order".into()))).await,
        [unknown],
        "the error class"
    );
    assert_eq!(
        listed(db, &filter(|f| f.grep = Some("beta-7".into()))).await,
        [paypal_beta],
        "the order reference"
    );
    assert_eq!(
        listed(db, &filter(|f| f.fingerprint = Some("fp-unknown".into()))).await,
        [unknown]
    );
    let since = Filter {
        since: Some(Utc::now() - chrono::Duration::days(1)),
        ..Filter::default()
    };
    assert_eq!(
        listed(db, &since).await,
        [unknown, paypal_beta, paypal_alph]
    );
    assert_eq!(
        dead_letters::list(db, &Filter::default(), 2)
            .await
            .unwrap()
            .len(),
        2
    );

    let groups = dead_letters::groups(db, &Filter::default()).await.unwrap();
    let summary: Vec<(&str, i64, Vec<&str>)> = groups
        .iter()
        .map(|g| {
            (
                g.fingerprint.as_str(),
                g.count,
                g.stores.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("fp-unknown", 1, vec!["ALPH"]),
            ("fp-paypal", 2, vec!["ALPH", "BETA"]),
            ("fp-noop", 1, vec!["BETA"]),
        ],
        "by newest failure"
    );
    let paypal = &groups[1];
    assert_eq!(paypal.kind, "create_invoice");
    assert_eq!(paypal.error_class, "unknown_payment_method");
    assert_eq!(
        paypal.sample_message, "payment method 'PayPal' has no ERP spelling (BETA)",
        "the newest message"
    );
    assert!(paypal.first_failed_at < paypal.last_failed_at);
    let beta_only = dead_letters::groups(
        db,
        &Filter {
            kind: Some("create_invoice".into()),
            store: Some("BETA".into()),
            ..Filter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(beta_only.len(), 1);
    assert_eq!(
        (beta_only[0].count, beta_only[0].stores.clone()),
        (1, vec!["BETA".to_owned()])
    );

    // Resolved ones leave the list unless asked for.
    assert!(dead_letters::mark_discarded(db, unknown, "cli:ops")
        .await
        .unwrap());
    assert_eq!(
        listed(db, &filter(|f| f.store = Some("ALPH".into()))).await,
        [paypal_alph]
    );
    assert_eq!(
        listed(
            db,
            &filter(|f| {
                f.store = Some("ALPH".into());
                f.include_resolved = true;
            })
        )
        .await,
        [unknown, paypal_alph]
    );
    let groups = dead_letters::groups(db, &Filter::default()).await.unwrap();
    assert!(groups.iter().all(|g| g.fingerprint != "fp-unknown"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_is_resolved_once() {
    let t = TestDb::create().await;
    let db = &t.db;
    let replayed = failed_job(db, JobKind::Noop, "BETA", "asked to fail").await;
    let discarded = failed_job(db, JobKind::Noop, "BETA", "asked to fail").await;
    let replay = job(db, JobKind::Noop, "BETA", None, Source::Replay).await;
    let another_replay = job(db, JobKind::Noop, "BETA", None, Source::Replay).await;
    sqlx::query("UPDATE jobs SET replay_of = $1 WHERE job_id = $2")
        .bind(replayed)
        .bind(replay)
        .execute(db)
        .await
        .unwrap();

    let mut tx = db.begin().await.unwrap();
    let payload = dead_letters::lock_open(&mut tx, replayed).await.unwrap();
    assert_eq!(payload, Some(serde_json::json!({"job_id": replayed})));
    assert!(
        dead_letters::mark_replayed(&mut *tx, replayed, replay, "cli:ops")
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();

    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        dead_letters::lock_open(&mut tx, replayed).await.unwrap(),
        None,
        "resolved"
    );
    tx.rollback().await.unwrap();
    assert!(
        !dead_letters::mark_replayed(db, replayed, another_replay, "api:x")
            .await
            .unwrap()
    );
    assert!(!dead_letters::mark_discarded(db, replayed, "api:x")
        .await
        .unwrap());
    let stored = dead_letters::get(db, replayed).await.unwrap().unwrap();
    assert_eq!(stored.resolution.as_deref(), Some("replayed"));
    assert_eq!(stored.replayed_as, Some(replay));
    assert_eq!(stored.resolved_by.as_deref(), Some("cli:ops"));
    assert!(stored.resolved_at.is_some());
    let replays: Vec<Uuid> = dead_letters::replays_of(db, replayed)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(replays, [replay]);

    assert!(dead_letters::mark_discarded(db, discarded, "api:ops")
        .await
        .unwrap());
    assert!(!dead_letters::mark_discarded(db, discarded, "api:ops")
        .await
        .unwrap());
    assert!(
        !dead_letters::mark_replayed(db, discarded, replay, "cli:ops")
            .await
            .unwrap()
    );
    let stored = dead_letters::get(db, discarded).await.unwrap().unwrap();
    assert_eq!(stored.resolution.as_deref(), Some("discarded"));
    assert_eq!(stored.resolved_by.as_deref(), Some("api:ops"));
    assert_eq!(stored.replayed_as, None);
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        dead_letters::lock_open(&mut tx, Uuid::now_v7())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replays_of_one_dead_letter_wait_for_each_other() {
    let t = TestDb::create().await;
    let failed = failed_job(&t.db, JobKind::Noop, "BETA", "asked to fail").await;
    let replay = job(&t.db, JobKind::Noop, "BETA", None, Source::Replay).await;

    let mut first = t.db.begin().await.unwrap();
    assert!(dead_letters::lock_open(&mut first, failed)
        .await
        .unwrap()
        .is_some());
    let db = t.db.clone();
    let second = tokio::spawn(async move {
        let mut tx = db.begin().await.unwrap();
        let payload = dead_letters::lock_open(&mut tx, failed).await.unwrap();
        tx.rollback().await.unwrap();
        payload
    });
    eventually(
        "the second replay to wait on the first one's row lock",
        || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(&t.db)
            .await
            .unwrap();
            (waiting == 1).then_some(())
        },
    )
    .await;
    assert!(!second.is_finished());
    assert!(
        dead_letters::mark_replayed(&mut *first, failed, replay, "cli:a")
            .await
            .unwrap()
    );
    first.commit().await.unwrap();
    assert_eq!(
        second.await.unwrap(),
        None,
        "the second sees it resolved and enqueues nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_deletes_only_dead_letters_older_than_the_cut() {
    let t = TestDb::create().await;
    let old = failed_job(&t.db, JobKind::Noop, "BETA", "old").await;
    let recent = failed_job(&t.db, JobKind::Noop, "BETA", "recent").await;
    failed_ago(&t.db, old, chrono::Duration::days(100)).await;
    failed_ago(&t.db, recent, chrono::Duration::days(80)).await;
    let cut = Utc::now() - chrono::Duration::days(90);
    assert_eq!(dead_letters::prune(&t.db, cut).await.unwrap(), 1);
    assert!(dead_letters::get(&t.db, old).await.unwrap().is_none());
    assert!(dead_letters::get(&t.db, recent).await.unwrap().is_some());
    assert_eq!(dead_letters::prune(&t.db, cut).await.unwrap(), 0);
}
