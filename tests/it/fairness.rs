//! Per-store fairness on the bulk lane: a backfill of one store does not
//! hold back the other stores' bulk jobs (`queue/fair.rs`).

use std::collections::HashSet;

use chrono::Utc;
use ordersync::domain::{JobKind, Lane, Source};
use ordersync::queue::fair::FAIR_WINDOW;
use ordersync::queue::{depth, fair, promoter, NewJob, QueueKeys};
use redis::AsyncCommands as _;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{redis, two_stores, TestApp};

/// `n` no-op bulk jobs of `store` with `args`.
fn bulk_noops(store: &str, n: usize, args: serde_json::Value) -> Vec<NewJob> {
    (0..n)
        .map(|_| NewJob {
            args: args.clone(),
            ..NewJob::for_store(JobKind::Noop, store)
        })
        .collect()
}

async fn enqueue_backfill(app: &TestApp, jobs: Vec<NewJob>) -> Vec<Uuid> {
    let (envelopes, _) = app
        .deps
        .enqueuer
        .enqueue(Source::Backfill, jobs)
        .await
        .unwrap();
    envelopes.iter().map(|e| e.job_id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_store_s_bulk_jobs_run_while_a_big_backfill_still_waits() {
    let app = TestApp::spawn(two_stores(1)).await;
    let backfill = 3_000;
    let big = enqueue_backfill(&app, bulk_noops("ALPH", backfill, json!({"sleep_ms": 5}))).await;
    let mut conn = redis().await;
    let waiting = depth::lane_depth(&mut conn, &app.namespace, JobKind::Noop, Lane::Bulk)
        .await
        .unwrap();
    assert_eq!(
        waiting.pending, backfill as u64,
        "tasks waiting their store's turn count as pending"
    );
    let _worker = app.spawn_worker_process_with(&[JobKind::Noop], &["--concurrency", "20"]);
    app.eventually("the backfill to start", || async {
        (app.count("SELECT count(*) FROM job_runs").await > 0).then_some(())
    })
    .await;
    let small = enqueue_backfill(&app, bulk_noops("BETA", 10, json!(null))).await;
    let mut last_small_start = None;
    for id in &small {
        let runs = app.wait_final(*id).await;
        assert_eq!(runs.len(), 1, "{runs:#?}");
        assert_eq!(runs[0].outcome, "succeeded");
        last_small_start = last_small_start.max(Some(runs[0].started_at));
    }
    // Without turns BETA's jobs would start after all 3,000 of ALPH's.
    let big_started_before: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_runs r JOIN jobs j USING (job_id)
         WHERE j.store = 'ALPH' AND r.started_at < $1",
    )
    .bind(last_small_start.unwrap())
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(
        big_started_before < backfill as i64 / 2,
        "{big_started_before} of the {backfill} backfill jobs started before the small store's last"
    );

    // Nothing lost or run twice.
    app.eventually("the backfill to finish", || async {
        (app.count("SELECT count(*) FROM job_runs").await >= (backfill + small.len()) as i64)
            .then_some(())
    })
    .await;
    app.wait_idle().await;
    let runs_per_job: Vec<(Uuid, i64)> = sqlx::query_as(
        "SELECT j.job_id, count(r.job_id) FROM jobs j LEFT JOIN job_runs r USING (job_id)
         GROUP BY j.job_id HAVING count(r.job_id) <> 1 OR bool_or(r.outcome <> 'succeeded')",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(runs_per_job.is_empty(), "{runs_per_job:?}");
    assert_eq!(
        app.count("SELECT count(*) FROM jobs").await,
        (big.len() + small.len()) as i64
    );
    let keys = QueueKeys::new(&app.namespace, JobKind::Noop, Lane::Bulk, 1);
    assert_eq!(
        fair::waiting(&mut conn, &keys).await.unwrap(),
        fair::Waiting::default(),
        "no store is left waiting its turn"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_retries_on_the_bulk_lane_wait_their_store_s_turn_and_live_work_takes_none() {
    let app = TestApp::spawn(two_stores(1)).await;
    let keys = QueueKeys::new(&app.namespace, JobKind::Noop, Lane::Bulk, 1);
    let mut conn = redis().await;
    let big = 1_000;
    enqueue_backfill(&app, bulk_noops("ALPH", big, json!(null))).await;
    let active: u64 = conn.llen(keys.config.active_jobs_list()).await.unwrap();
    assert_eq!(
        active, FAIR_WINDOW as u64,
        "the active list stops at the window"
    );

    // BETA's jobs come due later (as retries and parked jobs do): the
    // promoter admits them to BETA's turn, not behind ALPH's backlog.
    let due = Utc::now() + chrono::Duration::milliseconds(50);
    let late: Vec<NewJob> = bulk_noops("BETA", 3, json!(null))
        .into_iter()
        .map(|job| NewJob {
            run_at: Some(due),
            ..job
        })
        .collect();
    let (late, report) = app
        .deps
        .enqueuer
        .enqueue(Source::Backfill, late)
        .await
        .unwrap();
    assert_eq!(report.delayed, 3);
    app.eventually("BETA's jobs to come due", || {
        let mut conn = conn.clone();
        let keys = keys.clone();
        async move {
            promoter::promote_due(&mut conn, &keys).await.unwrap();
            let delayed: u64 = conn.zcard(keys.delayed()).await.unwrap();
            (delayed == 0).then_some(())
        }
    })
    .await;
    let waiting = fair::waiting(&mut conn, &keys).await.unwrap();
    assert_eq!(waiting.tasks, (big - FAIR_WINDOW + 3) as u64);
    assert_eq!(waiting.stores, 2);

    // A worker fetches the whole window; the next feed takes turns.
    let _: Vec<String> = conn
        .lpop(
            keys.config.active_jobs_list(),
            std::num::NonZeroUsize::new(FAIR_WINDOW),
        )
        .await
        .unwrap();
    promoter::promote_due(&mut conn, &keys).await.unwrap();
    let fed: Vec<String> = conn
        .lrange(keys.config.active_jobs_list(), 0, -1)
        .await
        .unwrap();
    assert_eq!(fed.len(), FAIR_WINDOW);
    let late_ids: HashSet<String> = late.iter().map(|e| e.task_id()).collect();
    let first_six: HashSet<String> = fed.iter().take(6).cloned().collect();
    assert!(
        late_ids.is_subset(&first_six),
        "BETA's 3 tasks alternate with ALPH's at the head: {fed:?}"
    );

    // The live lane takes no turns: everything goes to its active list.
    let live_keys = QueueKeys::new(&app.namespace, JobKind::Noop, Lane::Live, 1);
    let live_jobs = bulk_noops("ALPH", FAIR_WINDOW + 10, json!(null));
    app.enqueue(live_jobs).await;
    let live_active: u64 = conn
        .llen(live_keys.config.active_jobs_list())
        .await
        .unwrap();
    assert_eq!(live_active, (FAIR_WINDOW + 10) as u64);
    assert_eq!(
        fair::waiting(&mut conn, &live_keys).await.unwrap(),
        fair::Waiting::default()
    );
    app.cleanup().await;
}
