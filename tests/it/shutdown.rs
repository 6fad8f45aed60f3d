//! Graceful shutdown of a worker process: SIGTERM stops fetching, running
//! jobs finish within the timeout, and everything else goes straight back to
//! the queue (no waiting for a heartbeat to lapse).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ordersync::domain::JobKind;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{kill9, noops, outcomes_and_classes, redis, two_stores, TestApp, DEADLINE};

/// Send SIGTERM (libc is not a dependency).
fn terminate(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Poll until `child` exits; returns its status and how long that took.
async fn wait_exit(child: &mut std::process::Child) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, started.elapsed());
        }
        assert!(started.elapsed() < DEADLINE, "worker did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every run of every job: (outcome, error class, worker) per job, in order.
async fn runs_by_job(app: &TestApp) -> HashMap<Uuid, Vec<(String, Option<String>, String)>> {
    let rows: Vec<(Uuid, String, Option<String>, String)> = sqlx::query_as(
        "SELECT job_id, outcome, error_class, worker FROM job_runs ORDER BY job_id, run",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut by_job: HashMap<Uuid, Vec<_>> = HashMap::new();
    for (job, outcome, class, worker) in rows {
        by_job
            .entry(job)
            .or_default()
            .push((outcome, class, worker));
    }
    by_job
}

async fn noop_depth(app: &TestApp) -> ordersync::queue::depth::Depth {
    let mut conn = redis().await;
    ordersync::queue::depth::depth(&mut conn, &app.namespace, JobKind::Noop)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_jobs_finish_and_hands_back_the_rest_at_once() {
    let app = TestApp::spawn(two_stores(1)).await;
    let name = format!("stopping-{}", Uuid::new_v4().simple());
    // Four slots and a fetch batch of 20: four jobs run, sixteen wait in the
    // worker's memory, the rest in Redis.
    let mut stopping = app.spawn_worker_process_with(
        &[JobKind::Noop],
        &[
            "--name",
            &name,
            "--fetchers",
            "1",
            "--concurrency",
            "4",
            "--fetch-batch",
            "20",
            "--shutdown-timeout",
            "30s",
        ],
    );
    let n = 100;
    let envelopes = app.enqueue(noops(n, json!({"sleep_ms": 1_500}))).await;
    let mut conn = redis().await;
    app.eventually("four jobs running", || {
        let mut conn = conn.clone();
        let envelopes = &envelopes;
        let app = &app;
        async move { (app.started(&mut conn, envelopes).await == 4).then_some(()) }
    })
    .await;
    terminate(&stopping);
    let (status, took) = wait_exit(&mut stopping).await;
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(30), "exited after {took:?}");

    // Straight after the exit: nothing held, no registration left behind.
    let depth = noop_depth(&app).await;
    assert_eq!(
        (depth.in_flight, depth.workers, depth.pending),
        (0, 0, n as u64 - 4),
        "{depth:?}"
    );
    let finished = runs_by_job(&app).await;
    assert_eq!(finished.len(), 4, "only the running jobs ran: {finished:?}");
    assert!(finished
        .values()
        .all(|runs| runs.len() == 1 && runs[0].0 == "succeeded" && runs[0].2 == name));
    assert_eq!(
        app.started(&mut conn, &envelopes).await,
        4,
        "the jobs handed back were never started"
    );

    let mut next = app.spawn_worker_process_with(&[JobKind::Noop], &["--concurrency", "100"]);
    app.eventually("every job to finish", || async {
        let runs = runs_by_job(&app).await;
        (runs.len() == n
            && runs
                .values()
                .all(|r| r.last().is_some_and(|r| r.0 != "retry")))
        .then_some(())
    })
    .await;
    let runs = runs_by_job(&app).await;
    for envelope in &envelopes {
        let job_runs = &runs[&envelope.job_id];
        assert_eq!(job_runs.len(), 1, "exactly once: {job_runs:?}");
        assert_eq!(job_runs[0].0, "succeeded");
        assert_ne!(job_runs[0].1.as_deref(), Some("worker_died"));
    }
    assert_eq!(
        runs.values().filter(|r| r[0].2 == name).count(),
        4,
        "the stopping worker ran only the four it had started"
    );
    kill9(&mut next);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_outliving_the_shutdown_timeout_is_handed_back_and_completes() {
    let app = TestApp::spawn(two_stores(1)).await;
    let name = format!("stopping-{}", Uuid::new_v4().simple());
    let mut stopping = app.spawn_worker_process_with(
        &[JobKind::Noop],
        &[
            "--name",
            &name,
            "--fetchers",
            "1",
            "--concurrency",
            "2",
            "--fetch-batch",
            "10",
            "--shutdown-timeout",
            "1s",
        ],
    );
    // One fetch takes all ten: the two long jobs run, the eight quick ones
    // wait in the worker's memory behind them.
    let mut jobs = noops(2, json!({"sleep_ms": 4_000}));
    jobs.extend(noops(8, json!(null)));
    let envelopes = app.enqueue(jobs).await;
    let (long, quick) = envelopes.split_at(2);
    let mut conn = redis().await;
    app.eventually("the long jobs running and the rest fetched", || {
        let mut conn = conn.clone();
        let app = &app;
        async move {
            let depth = noop_depth(app).await;
            let running = app.started(&mut conn, long).await;
            (running == 2 && depth.in_flight == 10).then_some(())
        }
    })
    .await;
    terminate(&stopping);
    let (status, took) = wait_exit(&mut stopping).await;
    assert!(status.success(), "exit status {status}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(4),
        "waited the timeout, not the jobs: {took:?}"
    );
    let depth = noop_depth(&app).await;
    assert_eq!(
        (depth.in_flight, depth.workers, depth.pending),
        (0, 0, 10),
        "all ten handed back at once: {depth:?}"
    );
    assert!(runs_by_job(&app).await.is_empty(), "nothing settled");
    assert_eq!(app.started(&mut conn, quick).await, 0);

    let mut next = app.spawn_worker_process_with(&[JobKind::Noop], &[]);
    for envelope in long {
        let runs = app.wait_final(envelope.job_id).await;
        assert_eq!(
            outcomes_and_classes(&runs),
            vec![("retry", Some("worker_died")), ("succeeded", None)],
            "the cut-off attempt is on record, then the job completes"
        );
        assert!(runs.iter().all(|r| r.worker != name));
    }
    for envelope in quick {
        let runs = app.wait_final(envelope.job_id).await;
        assert_eq!(
            runs.len(),
            1,
            "never started before, so no lost attempt: {runs:?}"
        );
        assert_eq!(runs[0].outcome, "succeeded");
    }
    kill9(&mut next);
    app.cleanup().await;
}
