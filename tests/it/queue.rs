//! Queue properties apalis-redis 1.0.0's defects break, each with a test.

use std::time::{Duration, Instant};

use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use serde_json::json;

use crate::helpers::{noop, noops, outcomes, redis, two_stores, TestApp};

async fn runs_with_outcome(app: &TestApp, outcome: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM job_runs WHERE outcome = $1")
        .bind(outcome)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_backlog_is_consumed_without_the_worker_dying() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    let n = 100_000;
    let (_, report) = app
        .deps
        .enqueuer
        .enqueue(ordersync::domain::Source::Bench, noops(n, json!(null)))
        .await
        .unwrap();
    assert_eq!(report.ready, n as u64);
    app.start_worker(&[JobKind::Noop]);
    app.wait_idle().await;
    assert_eq!(
        runs_with_outcome(&app, "succeeded").await,
        n as i64,
        "every job ran once and has its ledger row"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_due_at_the_same_instant_are_consumed() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[JobKind::Noop]);
    let due = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let jobs: Vec<NewJob> = noops(10_000, json!(null))
        .into_iter()
        .map(|j| NewJob {
            run_at: Some(due),
            ..j
        })
        .collect();
    let (_, report) = app
        .deps
        .enqueuer
        .enqueue(ordersync::domain::Source::Bench, jobs)
        .await
        .unwrap();
    assert_eq!(report.delayed, 10_000, "all wait in the delayed set");
    app.wait_idle().await;
    assert_eq!(runs_with_outcome(&app, "succeeded").await, 10_000);
    let started: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT min(started_at) FROM job_runs")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert!(started[0] >= due, "none ran before it was due");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_starts_a_new_job_well_under_a_second() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[JobKind::Noop]);
    // Let the worker register and go idle.
    let warm = app
        .enqueue_one(NewJob::for_store(JobKind::Noop, "BETA"))
        .await;
    app.wait_final(warm).await;
    let mut worst = Duration::ZERO;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await; // idle on purpose, not waiting for work
        let pushed = chrono::Utc::now();
        let id = app
            .enqueue_one(NewJob::for_store(JobKind::Noop, "BETA"))
            .await;
        let runs = app.wait_final(id).await;
        worst = worst.max((runs[0].started_at - pushed).to_std().unwrap_or_default());
    }
    assert!(
        worst < Duration::from_millis(500),
        "idle wake-up took {worst:?} (apalis-redis 1.0.0 default: up to 30 s)"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_failure_runs_once_and_apalis_never_retries_it() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[JobKind::Noop]);
    let id = app.enqueue_one(noop(json!({"fail": "permanent"}))).await;
    let runs = app.wait_final(id).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome, "failed");
    app.wait_idle().await;
    let mut conn = redis().await;
    let keys = app
        .deps
        .enqueuer
        .keys(JobKind::Noop, ordersync::domain::Lane::Live);
    let scheduled: u64 = redis::cmd("ZCARD")
        .arg(keys.config.scheduled_jobs_set())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        scheduled, 0,
        "apalis-redis's own retry loop never got the task"
    );
    assert_eq!(app.runs(id).await.len(), 1, "still exactly one run");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_stop_at_the_attempt_budget() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[JobKind::Noop]);
    let id = app.enqueue_one(noop(json!({"fail": "transient"}))).await;
    let runs = app.wait_final(id).await;
    assert_eq!(
        outcomes(&runs),
        vec!["retry", "retry", "failed"],
        "max_attempts = 3 in the test policy"
    );
    assert!(runs[2]
        .error_message
        .as_deref()
        .unwrap()
        .starts_with("attempts exhausted (3/3)"));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_a_failed_attempt_not_a_loop() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[JobKind::Noop]);
    let id = app.enqueue_one(noop(json!({"fail": "panic"}))).await;
    let runs = app.wait_final(id).await;
    assert_eq!(runs.len(), 3);
    assert!(runs
        .iter()
        .all(|r| r.error_class.as_deref() == Some("panic")));
    assert_eq!(runs[2].outcome, "failed");
    // The worker survived its panics.
    let after = app
        .enqueue_one(NewJob::for_store(JobKind::Noop, "BETA"))
        .await;
    assert_eq!(app.wait_final(after).await[0].outcome, "succeeded");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_enqueue_records_every_job_in_the_ledger_first() {
    let app = TestApp::spawn(two_stores(1)).await;
    let started = Instant::now();
    let envelopes = app.enqueue(noops(2_500, json!(null))).await;
    assert!(started.elapsed() < Duration::from_secs(30));
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE source = 'cli' AND kind = 'noop'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(recorded, 2_500);
    let mut conn = redis().await;
    let depth = ordersync::queue::depth::depth(&mut conn, &app.namespace, JobKind::Noop)
        .await
        .unwrap();
    assert_eq!(depth.pending, 2_500);
    let job = ordersync::ledger::jobs::get(&app.db, envelopes[7].job_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((job.source.as_str(), job.state.as_str()), ("cli", "queued"));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_job_is_not_held_back_by_a_bulk_backlog() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    let bulk: Vec<NewJob> = noops(30_000, json!({"sleep_ms": 5}));
    app.deps
        .enqueuer
        .enqueue(ordersync::domain::Source::Backfill, bulk)
        .await
        .unwrap();
    app.start_worker(&[JobKind::Noop]);
    let mut conn = redis().await;
    app.eventually("the backfill to be under way", || async {
        let done = runs_with_outcome(&app, "succeeded").await;
        (done > 0).then_some(())
    })
    .await;
    let pushed = chrono::Utc::now();
    let live = app
        .enqueue_one(NewJob::for_store(JobKind::Noop, "BETA"))
        .await;
    let runs = app.wait_final(live).await;
    let waited = (runs[0].started_at - pushed).to_std().unwrap_or_default();
    let bulk_left = ordersync::queue::depth::lane_depth(
        &mut conn,
        &app.namespace,
        JobKind::Noop,
        ordersync::domain::Lane::Bulk,
    )
    .await
    .unwrap();
    assert!(
        bulk_left.pending > 0,
        "the backlog was still waiting when the live job ran"
    );
    assert!(
        waited < Duration::from_secs(2),
        "the live job waited {waited:?} behind the backlog"
    );
    app.cleanup().await;
}
