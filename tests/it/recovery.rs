//! Crashes: kill -9 during a backoff, a crashed worker's in-flight jobs, and
//! a restarted worker process.

use std::time::{Duration, Instant};

use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use ordersync_simulator::Service;
use serde_json::json;

use crate::helpers::{kill9, noops, outcomes, redis, two_stores, TestApp, FAST_POLICIES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_during_a_backoff_loses_no_job() {
    let app = TestApp::spawn_with(two_stores(3), &FAST_POLICIES.replace(
        "[jobs.create_invoice]\nmax_attempts = 5\nbackoff_base_ms = 40\nbackoff_cap_ms = 1000",
        "[jobs.create_invoice]\nmax_attempts = 5\nbackoff_base_ms = 1500\nbackoff_cap_ms = 1500",
    ), |_| {})
    .await;
    let order = app.sim.add_shop_order("ALPH", "cod", "processing", false);
    let reference = format!("ALPH-{}", order["number"].as_str().unwrap());
    let mut worker = app.spawn_worker_process(&[]);
    let import = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "ALPH"))
        .await;
    app.wait_final(import).await;
    app.sim.fail_next(Service::Erp, 1, 503, None);
    let job = app
        .enqueue_one(NewJob::for_order(
            JobKind::CreateInvoice,
            "ALPH",
            &reference,
        ))
        .await;
    app.eventually("the first attempt to fail", || async {
        app.runs(job)
            .await
            .first()
            .filter(|r| r.outcome == "retry")
            .map(|_| ())
    })
    .await;
    kill9(&mut worker);
    // The wait lives in Redis: a new process picks the retry up when it is due.
    let mut replacement = app.spawn_worker_process(&[]);
    let runs = app.wait_final(job).await;
    assert_eq!(outcomes(&runs), vec!["retry", "succeeded"]);
    assert_ne!(
        runs[0].worker, runs[1].worker,
        "the retry ran on the new process"
    );
    assert_eq!(app.sim.invoice_count(&reference), 1);
    kill9(&mut replacement);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_workers_jobs_are_back_within_60_seconds() {
    let app = TestApp::spawn(two_stores(1)).await;
    let mut doomed = app.spawn_worker_process(&[JobKind::Noop]);
    let envelopes = app.enqueue(noops(20, json!({"sleep_ms": 60_000}))).await;
    let conn = redis().await;
    // Started, not just fetched: a task killed between the fetch and its
    // start counter is a first delivery again, not a died attempt.
    app.eventually("the worker to start every job", || {
        let mut conn = conn.clone();
        let envelopes = &envelopes;
        let app = &app;
        async move { (app.started(&mut conn, envelopes).await == 20).then_some(()) }
    })
    .await;
    kill9(&mut doomed);
    let killed_at = Instant::now();
    let mut survivor = app.spawn_worker_process(&[JobKind::Noop]);
    // The survivor re-enqueues the dead worker's in-flight jobs, sees that each
    // had started, and records that attempt as died with its worker.
    let back = app
        .eventually("the dead worker's jobs to be redelivered", || async {
            let died: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM job_runs WHERE error_class = 'worker_died'",
            )
            .fetch_one(&app.db)
            .await
            .unwrap();
            (died == 20).then(|| killed_at.elapsed())
        })
        .await;
    assert!(back < Duration::from_secs(60), "redelivered after {back:?}");
    let retried: i64 =
        sqlx::query_scalar("SELECT count(*) FROM job_runs WHERE outcome = 'retry' AND attempt = 1")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(retried, 20, "each job keeps its remaining attempts");
    kill9(&mut survivor);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_process_starts_work_at_once() {
    let app = TestApp::spawn(two_stores(1)).await;
    let mut first = app.spawn_worker_process(&[JobKind::Noop]);
    let warm = app
        .enqueue_one(NewJob::for_store(JobKind::Noop, "BETA"))
        .await;
    app.wait_final(warm).await;
    kill9(&mut first);
    let mut second = app.spawn_worker_process(&[JobKind::Noop]);
    let pushed = chrono::Utc::now();
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::Noop, "BETA"))
        .await;
    let runs = app.wait_final(id).await;
    let waited = (runs[0].started_at - pushed).to_std().unwrap_or_default();
    // With a reused name it would wait out the dead registration (heartbeat x missed).
    assert!(
        waited < Duration::from_secs(5),
        "restarted worker started after {waited:?}"
    );
    kill9(&mut second);
    app.cleanup().await;
}
