//! `ledger::jobs`: one row per job, its state read from its latest run.

use ordersync::domain::{JobEnvelope, JobKind, RunOutcome, Source};
use ordersync::ledger::jobs;
use uuid::Uuid;

use super::{envelope, insert_jobs, job, now, runs_ending, NAMESPACE};
use crate::helpers::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_recorded_once_as_first_enqueued() {
    let t = TestDb::create().await;
    let import = envelope(JobKind::ImportOrders, "ALPH", None, Source::Cli);
    let refresh = envelope(
        JobKind::RefreshStatus,
        "ALPH",
        Some("ALPH-1"),
        Source::Webhook,
    );
    assert_eq!(jobs::insert(&t.db, NAMESPACE, &[]).await.unwrap(), 0);
    assert_eq!(
        jobs::insert(&t.db, NAMESPACE, &[(&import, None), (&refresh, None)])
            .await
            .unwrap(),
        2
    );

    // A redelivered job enqueues its follow-up again (same id): kept as it was.
    let again = JobEnvelope {
        store: "BETA".into(),
        source: Source::Job,
        max_attempts: 9,
        ..refresh.clone()
    };
    let fresh = envelope(JobKind::SendSms, "ALPH", Some("ALPH-1"), Source::Job);
    assert_eq!(
        jobs::insert(&t.db, NAMESPACE, &[(&again, None), (&fresh, None)])
            .await
            .unwrap(),
        1,
        "only the new job is inserted"
    );

    let row = jobs::get(&t.db, refresh.job_id).await.unwrap().unwrap();
    assert_eq!(row.kind, "refresh_status");
    assert_eq!(row.store.as_deref(), Some("ALPH"));
    assert_eq!(row.order_ref.as_deref(), Some("ALPH-1"));
    assert_eq!(row.source, "webhook");
    assert_eq!(row.max_attempts, 5);
    assert_eq!(row.enqueued_at, refresh.enqueued_at);
    assert_eq!(row.state, "queued", "no run yet");
    let (queue, payload): (String, serde_json::Value) =
        sqlx::query_as("SELECT queue, payload FROM jobs WHERE job_id = $1")
            .bind(refresh.job_id)
            .fetch_one(&t.db)
            .await
            .unwrap();
    assert_eq!(queue, format!("{NAMESPACE}:refresh_status"));
    let stored: JobEnvelope = serde_json::from_value(payload).unwrap();
    assert_eq!(stored.job_id, refresh.job_id, "the payload is the envelope");
    assert_eq!(stored.order_ref, refresh.order_ref);
    assert!(jobs::get(&t.db, Uuid::now_v7()).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_state_is_its_latest_runs_outcome() {
    let t = TestDb::create().await;
    let mut polled = envelope(
        JobKind::RefreshStatus,
        "ALPH",
        Some("ALPH-1"),
        Source::Scheduler,
    );
    let invoice = envelope(JobKind::CreateInvoice, "ALPH", Some("ALPH-1"), Source::Cli);
    let other = envelope(
        JobKind::RefreshStatus,
        "ALPH",
        Some("ALPH-2"),
        Source::Scheduler,
    );
    // Enqueued first, recorded last: for_order orders by enqueue time.
    polled.enqueued_at = now() - chrono::Duration::seconds(10);
    insert_jobs(&t.db, &[&invoice, &other, &polled]).await;
    runs_ending(
        &t.db,
        polled.job_id,
        &[RunOutcome::Retry, RunOutcome::Succeeded],
    )
    .await;
    runs_ending(&t.db, invoice.job_id, &[RunOutcome::Deferred]).await;

    let state = |id| {
        let db = t.db.clone();
        async move { jobs::get(&db, id).await.unwrap().unwrap().state }
    };
    assert_eq!(state(polled.job_id).await, "succeeded");
    assert_eq!(state(invoice.job_id).await, "deferred");
    assert_eq!(state(other.job_id).await, "queued");

    let unknown = Uuid::now_v7();
    assert_eq!(
        jobs::latest_outcomes(
            &t.db,
            &[other.job_id, polled.job_id, unknown, invoice.job_id]
        )
        .await
        .unwrap(),
        ["queued", "succeeded", "queued", "deferred"],
        "in the order asked"
    );

    let of_order = jobs::for_order(&t.db, "ALPH-1").await.unwrap();
    let listed: Vec<(Uuid, &str)> = of_order
        .iter()
        .map(|j| (j.job_id, j.state.as_str()))
        .collect();
    assert_eq!(
        listed,
        [(polled.job_id, "succeeded"), (invoice.job_id, "deferred")]
    );
    assert!(jobs::for_order(&t.db, "ALPH-9").await.unwrap().is_empty());

    let replay = JobEnvelope {
        replay_of: Some(invoice.job_id),
        ..envelope(
            JobKind::CreateInvoice,
            "ALPH",
            Some("ALPH-1"),
            Source::Replay,
        )
    };
    insert_jobs(&t.db, &[&replay]).await;
    assert_eq!(
        jobs::replay_of(&t.db, replay.job_id).await.unwrap(),
        Some(invoice.job_id)
    );
    assert_eq!(jobs::replay_of(&t.db, invoice.job_id).await.unwrap(), None);
    assert_eq!(jobs::replay_of(&t.db, unknown).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_means_queued_retrying_or_deferred() {
    let t = TestDb::create().await;
    let refresh = |reference: &'static str| {
        let db = t.db.clone();
        async move {
            job(
                &db,
                JobKind::RefreshStatus,
                "ALPH",
                Some(reference),
                Source::Scheduler,
            )
            .await
        }
    };
    let retrying = refresh("ALPH-1").await;
    runs_ending(&t.db, retrying, &[RunOutcome::Retry]).await;
    let failed = refresh("ALPH-2").await;
    runs_ending(&t.db, failed, &[RunOutcome::Retry, RunOutcome::Failed]).await;
    refresh("ALPH-3").await; // queued, never run
    let deferred = refresh("ALPH-4").await;
    runs_ending(&t.db, deferred, &[RunOutcome::Deferred]).await;
    // ALPH-5 has no job at all.
    let done = refresh("ALPH-6").await;
    runs_ending(&t.db, done, &[RunOutcome::Succeeded]).await;
    // Another kind's unfinished job does not count for refresh_status.
    job(
        &t.db,
        JobKind::CreateInvoice,
        "ALPH",
        Some("ALPH-6"),
        Source::Cli,
    )
    .await;

    let refs: Vec<String> = (1..=6).map(|n| format!("ALPH-{n}")).collect();
    assert_eq!(
        jobs::without_unfinished(&t.db, "refresh_status", &refs)
            .await
            .unwrap(),
        ["ALPH-2", "ALPH-5", "ALPH-6"]
    );
    assert!(jobs::without_unfinished(&t.db, "refresh_status", &[])
        .await
        .unwrap()
        .is_empty());

    let unfinished = |kind: &'static str, store: &'static str, order: Option<&'static str>| {
        let db = t.db.clone();
        async move { jobs::has_unfinished(&db, kind, store, order).await.unwrap() }
    };
    assert!(unfinished("refresh_status", "ALPH", Some("ALPH-1")).await);
    assert!(unfinished("refresh_status", "ALPH", Some("ALPH-3")).await);
    assert!(unfinished("refresh_status", "ALPH", Some("ALPH-4")).await);
    assert!(!unfinished("refresh_status", "ALPH", Some("ALPH-2")).await);
    assert!(!unfinished("refresh_status", "ALPH", Some("ALPH-6")).await);
    assert!(unfinished("create_invoice", "ALPH", Some("ALPH-6")).await);
    assert!(
        !unfinished("refresh_status", "BETA", Some("ALPH-1")).await,
        "another store"
    );

    // Per store (no order): the scheduler's overlap check.
    let import = job(
        &t.db,
        JobKind::ImportOrders,
        "BETA",
        None,
        Source::Scheduler,
    )
    .await;
    assert!(unfinished("import_orders", "BETA", None).await);
    assert!(!unfinished("import_orders", "ALPH", None).await);
    runs_ending(&t.db, import, &[RunOutcome::Succeeded]).await;
    assert!(!unfinished("import_orders", "BETA", None).await);
}
