//! Failure handling: dead letters, fingerprints, replay, discard, poison jobs.

use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use ordersync_simulator::{Knobs, Service};
use serde_json::json;

use crate::helpers::{
    kill9, noop, outcomes_and_classes, redis, two_stores, TestApp, FAST_POLICIES,
};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_with_one_cause_are_one_group() {
    let mut app = TestApp::spawn(two_stores(2)).await;
    app.start_worker(&[]);
    let refs = app.import_new_orders("BETA", 5, "paypal").await;
    let ids = app
        .enqueue_ids(
            refs.iter()
                .map(|r| NewJob::for_order(JobKind::CreateInvoice, "BETA", r))
                .collect(),
        )
        .await;
    for id in &ids {
        app.wait_final(*id).await;
    }
    let out = app.cli(&["jobs", "failed", "--json"]);
    let groups: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    assert_eq!(groups[0]["count"], 5);
    assert_eq!(groups[0]["error_class"], "unknown_payment_method");
    let text = stdout(&app.cli(&[
        "jobs",
        "failed",
        "--ungrouped",
        "--kind",
        "create_invoice",
        "--grep",
        "paypal",
    ]));
    assert!(text.contains("5 failed job(s)"), "{text}");
    let none = stdout(&app.cli(&["jobs", "failed", "--store", "ALPH"]));
    assert!(none.contains("0 failed job(s) in 0 group(s)"), "{none}");
    let show = stdout(&app.cli(&["jobs", "show", &ids[0].to_string()]));
    assert!(
        show.contains("-> failed [unknown_payment_method]"),
        "{show}"
    );
    assert!(show.contains("; open"), "{show}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_replay_after_recovery_completes_every_job_once_and_a_second_replay_is_a_no_op() {
    // 1,000 dead letters to replay: the ERP's circuit breaker, which would
    // park these jobs instead of failing them, is set out of reach.
    let mut app = TestApp::spawn_with(two_stores(2), FAST_POLICIES, |toml| {
        toml.push_str("\n[limits.erp.erpnext]\nbreaker_failures = 100000\n");
    })
    .await;
    app.start_worker(&[]);
    let refs = app.import_new_orders("BETA", 1_000, "cod").await;
    // The ERP is down for every call until it recovers.
    app.sim.set_knobs(
        Service::Erp,
        Knobs {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    let ids = app
        .enqueue_ids(
            refs.iter()
                .map(|r| NewJob::for_order(JobKind::CreateInvoice, "BETA", r))
                .collect(),
        )
        .await;
    for id in &ids {
        assert_eq!(app.wait_final(*id).await.last().unwrap().outcome, "failed");
    }
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM dead_letters WHERE resolution IS NULL")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(open, 1_000);
    app.sim.set_knobs(Service::Erp, Knobs::default());

    let out = app.cli(&["jobs", "replay", "--all", "--kind", "create_invoice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("replayed 1000, skipped 0, errors 0"),
        "{}",
        stdout(&out)
    );
    app.wait_idle().await;
    let replays: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT d.replayed_as, (SELECT outcome FROM job_runs r WHERE r.job_id = d.replayed_as ORDER BY run DESC LIMIT 1)
         FROM dead_letters d",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(
        replays.iter().all(|(_, outcome)| outcome == "succeeded"),
        "every replay succeeded"
    );
    for r in &refs {
        assert_eq!(app.sim.invoice_count(r), 1, "one invoice for {r}");
    }
    let source: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT source FROM jobs WHERE replay_of IS NOT NULL")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(source, vec!["replay"]);

    let again = stdout(&app.cli(&["jobs", "replay", &ids[0].to_string(), &ids[1].to_string()]));
    assert!(again.contains("replayed 0, skipped 2, errors 0"), "{again}");
    assert!(again.contains("already replayed as"), "{again}");
    let none_open = stdout(&app.cli(&["jobs", "replay", "--all"]));
    assert!(
        none_open.contains("replayed 0, skipped 0, errors 0"),
        "{none_open}"
    );
    assert_eq!(
        app.sim.invoices().len(),
        1_000,
        "no duplicate invoice anywhere"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_job_whose_replay_is_pending_does_nothing_and_says_so() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[JobKind::Noop]);
    let id = app.enqueue_one(noop(json!({"fail": "permanent"}))).await;
    app.wait_final(id).await;
    app.stop_workers().await;
    let first = stdout(&app.cli(&["jobs", "replay", &id.to_string()]));
    assert!(first.contains("replayed 1, skipped 0"), "{first}");
    let second = stdout(&app.cli(&["jobs", "replay", &id.to_string()]));
    assert!(second.contains("is still pending"), "{second}");
    assert!(second.contains("replayed 0, skipped 1"), "{second}");
    let replays: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE replay_of = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(replays, 1);
    let show = stdout(&app.cli(&["jobs", "show", &id.to_string()]));
    assert!(show.contains("replayed as"), "{show}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discarded_job_leaves_the_list_and_cannot_be_replayed() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[JobKind::Noop]);
    let id = app.enqueue_one(noop(json!({"fail": "permanent"}))).await;
    app.wait_final(id).await;
    let dry = stdout(&app.cli(&["jobs", "discard", "--all", "--dry-run"]));
    assert!(dry.contains("would discard 1"), "{dry}");
    let out = stdout(&app.cli(&["jobs", "discard", &id.to_string()]));
    assert!(out.contains("discarded 1, skipped 0"), "{out}");
    let list = stdout(&app.cli(&["jobs", "failed"]));
    assert!(list.contains("0 failed job(s)"), "{list}");
    let replay = stdout(&app.cli(&["jobs", "replay", &id.to_string()]));
    assert!(replay.contains("already discarded by cli:"), "{replay}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_kills_its_worker_every_time_ends_failed_after_its_attempts() {
    let app = TestApp::spawn(two_stores(1)).await;
    let fast = ["--heartbeat-secs", "1", "--missed-heartbeats", "2"];
    let id = app.enqueue_one(noop(json!({"fail": "abort"}))).await;
    let mut worker = app.spawn_worker_process_with(&[JobKind::Noop], &fast);
    let mut restarts = 0;
    let runs = app
        .eventually("the poison job to end", || {
            if worker.try_wait().unwrap().is_some() {
                restarts += 1;
                worker = app.spawn_worker_process_with(&[JobKind::Noop], &fast);
            }
            async {
                let runs = app.runs(id).await;
                let done = runs.last().is_some_and(|r| r.outcome == "failed");
                done.then_some(runs)
            }
        })
        .await;
    kill9(&mut worker);
    assert_eq!(runs.len(), 3, "{runs:#?}");
    assert!(runs
        .iter()
        .all(|r| r.error_class.as_deref() == Some("worker_died")));
    assert!(runs[2]
        .error_message
        .as_deref()
        .unwrap()
        .contains("worker died during attempt 3"));
    assert!(restarts >= 3, "each attempt killed a worker: {restarts}");
    let dead: String = sqlx::query_scalar("SELECT error_class FROM dead_letters WHERE job_id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(dead, "worker_died");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_during_an_attempt_loses_nothing() {
    let app = TestApp::spawn(two_stores(1)).await;
    let fast = ["--heartbeat-secs", "1", "--missed-heartbeats", "2"];
    let mut first = app.spawn_worker_process_with(&[JobKind::Noop], &fast);
    let id = app.enqueue_one(noop(json!({"sleep_ms": 1500}))).await;
    let conn = redis().await;
    let keys = app
        .deps
        .enqueuer
        .keys(JobKind::Noop, ordersync::domain::Lane::Live);
    let meta = format!("{}:{id}:1", keys.config.job_meta_hash());
    app.eventually("the attempt to start", || {
        let mut conn = conn.clone();
        let meta = meta.clone();
        async move {
            let starts: Option<u64> = redis::cmd("HGET")
                .arg(meta)
                .arg("ordersync_starts")
                .query_async(&mut conn)
                .await
                .unwrap();
            starts.filter(|n| *n >= 1).map(|_| ())
        }
    })
    .await;
    kill9(&mut first);
    let mut second = app.spawn_worker_process_with(&[JobKind::Noop], &fast);
    let runs = app.wait_final(id).await;
    kill9(&mut second);
    assert_eq!(
        outcomes_and_classes(&runs),
        vec![("retry", Some("worker_died")), ("succeeded", None)]
    );
    app.cleanup().await;
}
