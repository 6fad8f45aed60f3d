//! `ledger::runs`: one row per delivery, written in batches.

use chrono::Duration;
use ordersync::domain::{ErrorClass, FailureClass, Provider, RunOutcome};
use ordersync::ledger::runs::{self, RunRecord, RunWriter};
use serde_json::json;
use uuid::Uuid;

use super::{insert_runs, now, run};
use crate::helpers::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_holding_a_stored_delivery_stores_the_rest_and_keeps_the_first() {
    let t = TestDb::create().await;
    let (job, other) = (Uuid::now_v7(), Uuid::now_v7());
    let started = now() - Duration::seconds(30);
    let first = RunRecord {
        attempt: 1,
        started_at: started,
        finished_at: started + Duration::milliseconds(120),
        error_class: Some(FailureClass::Provider(
            Provider::Erpnext,
            ErrorClass::ServerError,
        )),
        error_message: Some("ERPNext answered 503".into()),
        http_status: Some(503),
        next_run_at: Some(started + Duration::seconds(2)),
        detail: Some(json!({"page": 3})),
        ..run(job, 1, RunOutcome::Retry)
    };
    insert_runs(&t.db, std::slice::from_ref(&first)).await;

    // The same delivery settled again (a redelivery) lands in a batch with new rows.
    let redelivered = run(job, 1, RunOutcome::Succeeded);
    let second = run(job, 2, RunOutcome::Succeeded);
    let elsewhere = run(other, 1, RunOutcome::Failed);
    insert_runs(&t.db, &[redelivered, second.clone(), elsewhere.clone()]).await;

    let stored = runs::for_job(&t.db, job).await.unwrap();
    let outcomes: Vec<(i32, &str)> = stored.iter().map(|r| (r.run, r.outcome.as_str())).collect();
    assert_eq!(
        outcomes,
        [(1, "retry"), (2, "succeeded")],
        "the first row stays"
    );
    let kept = &stored[0];
    assert_eq!(kept.attempt, 1);
    assert_eq!(kept.worker, "ledger-test-worker");
    assert_eq!(kept.started_at, first.started_at);
    assert_eq!(kept.finished_at, first.finished_at);
    assert_eq!(kept.error_class.as_deref(), Some("server_error"));
    assert_eq!(kept.error_message.as_deref(), Some("ERPNext answered 503"));
    assert_eq!(kept.http_status, Some(503));
    assert_eq!(kept.next_run_at, first.next_run_at);
    assert_eq!(kept.detail, Some(json!({"page": 3})));
    assert_eq!(stored[1].error_class, None);
    assert_eq!(runs::for_job(&t.db, other).await.unwrap().len(), 1);

    assert!(runs::exists(&t.db, job, 2).await.unwrap());
    assert!(!runs::exists(&t.db, job, 3).await.unwrap());
    assert!(!runs::exists(&t.db, Uuid::now_v7(), 1).await.unwrap());
    assert_eq!(
        runs::first_start(&t.db, job).await.unwrap(),
        Some(first.started_at)
    );
    assert_eq!(
        runs::first_start(&t.db, Uuid::now_v7()).await.unwrap(),
        None
    );
    let latest_finish = second.finished_at.max(elsewhere.finished_at);
    assert_eq!(
        runs::totals(&t.db).await.unwrap(),
        (3, Some(first.started_at), Some(latest_finish))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_writer_commits_every_row_before_answering() {
    let t = TestDb::create().await;
    assert_eq!(runs::totals(&t.db).await.unwrap(), (0, None, None));
    let writer = RunWriter::start(t.db.clone());
    let jobs: Vec<Uuid> = (0..200).map(|_| Uuid::now_v7()).collect();
    let commits = jobs.iter().map(|job| {
        let writer = writer.clone();
        let record = run(*job, 1, RunOutcome::Succeeded);
        tokio::spawn(async move { writer.commit(record).await })
    });
    for commit in commits.collect::<Vec<_>>() {
        commit.await.unwrap().unwrap();
    }
    // Every commit has answered: every row is there, nothing else.
    assert_eq!(runs::totals(&t.db).await.unwrap().0, 200);
    for job in &jobs {
        assert!(runs::exists(&t.db, *job, 1).await.unwrap(), "{job}");
    }
}
