//! The janitor: finished tasks leave Redis once the ledger has them, and
//! nothing else does.

use std::time::Duration;

use ordersync::domain::JobKind;
use ordersync::domain::{JobEnvelope, Lane};
use ordersync::queue::janitor;
use ordersync::queue::{NewJob, QueueKeys};
use redis::aio::ConnectionManager;
use redis::AsyncCommands as _;
use serde_json::json;

use crate::helpers::{kill9, noops, redis, two_stores, TestApp};

fn noop_keys(app: &TestApp) -> QueueKeys {
    QueueKeys::new(&app.namespace, JobKind::Noop, Lane::Live, 1)
}

/// How many of `envelopes` still have a payload and a metadata hash in Redis.
async fn still_stored(
    conn: &mut ConnectionManager,
    keys: &QueueKeys,
    envelopes: &[JobEnvelope],
) -> (usize, usize) {
    let mut payloads = 0;
    let mut metas = 0;
    for envelope in envelopes {
        let task_id = envelope.task_id();
        let has_payload: bool = conn
            .hexists(keys.config.job_data_hash(), &task_id)
            .await
            .unwrap();
        let has_meta: bool = conn
            .exists(format!("{}:{task_id}", keys.config.job_meta_hash()))
            .await
            .unwrap();
        payloads += usize::from(has_payload);
        metas += usize::from(has_meta);
    }
    (payloads, metas)
}

async fn done_count(conn: &mut ConnectionManager, keys: &QueueKeys) -> u64 {
    conn.scard(keys.config.done_jobs_set()).await.unwrap()
}

async fn succeeded_runs(app: &TestApp) -> i64 {
    app.count("SELECT count(*) FROM job_runs WHERE outcome = 'succeeded'")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_deletes_finished_tasks_and_the_ledger_keeps_every_run() {
    let app = TestApp::spawn(two_stores(1)).await;
    let mut worker = app.spawn_worker_process_with(
        &[JobKind::Noop],
        &["--janitor-grace", "0s", "--janitor-interval", "100ms"],
    );
    let n = 1_200;
    let envelopes = app.enqueue(noops(n, json!(null))).await;
    let keys = noop_keys(&app);
    let mut conn = redis().await;
    app.eventually("every run in the ledger", || async {
        (succeeded_runs(&app).await == n as i64).then_some(())
    })
    .await;
    app.eventually("the janitor to empty the done set", || {
        let mut conn = conn.clone();
        let keys = keys.clone();
        async move { (done_count(&mut conn, &keys).await == 0).then_some(()) }
    })
    .await;
    assert_eq!(
        still_stored(&mut conn, &keys, &envelopes).await,
        (0, 0),
        "no payload or metadata left"
    );
    let data_fields: u64 = conn.hlen(keys.config.job_data_hash()).await.unwrap();
    assert_eq!(data_fields, 0);
    let meta_keys: Vec<String> = {
        let mut iter: redis::AsyncIter<'_, String> = conn
            .scan_match(format!("{}:*", keys.config.job_meta_hash()))
            .await
            .unwrap();
        let mut found = Vec::new();
        while let Some(key) = iter.next_item().await {
            found.push(key.unwrap());
        }
        found
    };
    assert!(meta_keys.is_empty(), "{} meta keys left", meta_keys.len());
    assert_eq!(
        succeeded_runs(&app).await,
        n as i64,
        "the ledger keeps every run"
    );
    kill9(&mut worker);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_tasks_finished_longer_than_the_grace_ago_are_deleted() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    // In-process worker: its own janitor keeps everything for the default 5 minutes.
    app.start_worker(&[JobKind::Noop]);
    let envelopes = app.enqueue(noops(40, json!(null))).await;
    app.wait_idle().await;
    let keys = noop_keys(&app);
    let mut conn = redis().await;
    assert_eq!(done_count(&mut conn, &keys).await, 40);

    let grace = Duration::from_secs(300);
    let swept = janitor::sweep(&mut conn, &keys, grace).await.unwrap();
    assert_eq!((swept.deleted, swept.kept), (0, 40), "all just finished");
    assert_eq!(still_stored(&mut conn, &keys, &envelopes).await, (40, 40));

    // Age half of them past the grace period: apalis writes done_at in Unix seconds.
    let (old, recent) = envelopes.split_at(20);
    let long_ago = chrono::Utc::now().timestamp() - 301;
    for envelope in old {
        let meta = format!("{}:{}", keys.config.job_meta_hash(), envelope.task_id());
        let _: () = conn.hset(meta, "done_at", long_ago).await.unwrap();
    }
    let swept = janitor::sweep(&mut conn, &keys, grace).await.unwrap();
    assert_eq!((swept.deleted, swept.kept), (20, 20));
    assert_eq!(still_stored(&mut conn, &keys, old).await, (0, 0));
    assert_eq!(still_stored(&mut conn, &keys, recent).await, (20, 20));
    assert_eq!(done_count(&mut conn, &keys).await, 20);
    assert_eq!(succeeded_runs(&app).await, 40);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_delayed_and_in_flight_tasks_are_never_touched() {
    let app = TestApp::spawn(two_stores(1)).await;
    // Two slots, both held by long jobs below: whatever comes after stays pending.
    let mut worker = app.spawn_worker_process_with(
        &[JobKind::Noop],
        &[
            "--janitor-grace",
            "0s",
            "--janitor-interval",
            "100ms",
            "--fetchers",
            "1",
            "--concurrency",
            "2",
            "--fetch-batch",
            "2",
        ],
    );
    let keys = noop_keys(&app);
    let mut conn = redis().await;
    let in_flight = app.enqueue(noops(2, json!({"sleep_ms": 60_000}))).await;
    app.eventually("both long jobs in flight", || {
        let mut conn = conn.clone();
        let ns = app.namespace.clone();
        async move {
            let depth = ordersync::queue::depth::depth(&mut conn, &ns, JobKind::Noop)
                .await
                .unwrap();
            (depth.in_flight == 2 && depth.pending == 0).then_some(())
        }
    })
    .await;
    let pending = app.enqueue(noops(30, json!(null))).await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let delayed = app
        .enqueue(
            noops(30, json!(null))
                .into_iter()
                .map(|job| NewJob {
                    run_at: Some(later),
                    ..job
                })
                .collect(),
        )
        .await;

    // A sweep with no grace at all, on top of the worker's own janitor.
    let swept = janitor::sweep(&mut conn, &keys, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(swept.kept, 0);
    let depth = ordersync::queue::depth::depth(&mut conn, &app.namespace, JobKind::Noop)
        .await
        .unwrap();
    assert_eq!(
        (depth.in_flight, depth.pending, depth.scheduled),
        (2, 30, 30)
    );
    for (what, envelopes) in [
        ("in flight", &in_flight),
        ("pending", &pending),
        ("delayed", &delayed),
    ] {
        assert_eq!(
            still_stored(&mut conn, &keys, envelopes).await,
            (envelopes.len(), envelopes.len()),
            "{what} tasks keep their payload and metadata"
        );
    }
    assert_eq!(
        done_count(&mut conn, &keys).await,
        0,
        "nothing has finished"
    );
    kill9(&mut worker);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_janitors_sweeping_at_once_delete_each_task_once() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[JobKind::Noop]);
    let n = 3_000;
    let envelopes = app.enqueue(noops(n, json!(null))).await;
    app.wait_idle().await;
    let keys = noop_keys(&app);
    let (mut first, mut second) = (redis().await, redis().await);
    let (a, b) = tokio::join!(
        janitor::sweep(&mut first, &keys, Duration::ZERO),
        janitor::sweep(&mut second, &keys, Duration::ZERO),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.deleted + b.deleted, n as u64, "{a:?} {b:?}");
    assert!(
        a.deleted > 0 && b.deleted > 0,
        "both did part of it: {a:?} {b:?}"
    );
    assert_eq!(still_stored(&mut first, &keys, &envelopes).await, (0, 0));
    assert_eq!(done_count(&mut first, &keys).await, 0);
    assert_eq!(succeeded_runs(&app).await, n as i64);
    app.cleanup().await;
}

/// Dead registrations' metadata hashes go, live ones stay, and the sweep
/// finds them through the registrations the heartbeats listed: a key nobody
/// listed (written before the list existed) is found only by the one
/// keyspace scan a process makes at start-up.
#[tokio::test]
async fn dead_workers_metadata_goes_through_the_listed_registrations() {
    use ordersync::queue::liveness;
    let app = TestApp::spawn(two_stores(1)).await;
    let keys = noop_keys(&app);
    let mut conn = redis().await;
    let meta = |worker: &str| liveness::metadata_key(&keys, worker);
    for worker in ["live", "dead", "legacy"] {
        let _: () = conn.hset(meta(worker), "layer", "x").await.unwrap();
    }
    // "live" is registered in its queue's workers set; "dead" was listed by
    // its heartbeat before the reaper removed its registration.
    let now = chrono::Utc::now().timestamp();
    let _: () = conn
        .zadd(keys.config.workers_set(), "live", now)
        .await
        .unwrap();
    liveness::heartbeat(
        &mut conn,
        &app.namespace,
        "process-1",
        &[(keys.clone(), "live".into()), (keys.clone(), "dead".into())],
    )
    .await
    .unwrap();
    let listed: Vec<String> = conn
        .smembers(liveness::registrations_key(&app.namespace))
        .await
        .unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");

    let queues = [keys.clone()];
    let removed = liveness::sweep_dead(&mut conn, &app.namespace, &queues, false)
        .await
        .unwrap();
    assert_eq!(removed, 1, "only the dead registration's hash");
    assert!(key_exists(&mut conn, meta("live")).await);
    assert!(!key_exists(&mut conn, meta("dead")).await);
    assert!(
        key_exists(&mut conn, meta("legacy")).await,
        "not listed, not scanned"
    );
    let listed: Vec<String> = conn
        .smembers(liveness::registrations_key(&app.namespace))
        .await
        .unwrap();
    assert_eq!(
        listed,
        vec![meta("live")],
        "the dead one is no longer listed"
    );

    let removed = liveness::sweep_dead(&mut conn, &app.namespace, &queues, true)
        .await
        .unwrap();
    assert_eq!(removed, 1, "the scan finds the unlisted one");
    assert!(!key_exists(&mut conn, meta("legacy")).await);
    assert!(key_exists(&mut conn, meta("live")).await);
}

async fn key_exists(conn: &mut ConnectionManager, key: String) -> bool {
    conn.exists(key).await.unwrap()
}
