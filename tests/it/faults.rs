//! Postgres is the record: real worker processes against private Redis and
//! Postgres servers that these tests kill, flush and restart, with the
//! simulator answering 10% of requests with 5xx. Each fault ends with every
//! job terminal, every status change texted (or visibly unknown, or a
//! visible failure), and nothing done twice. `just chaos` soaks the same
//! scenarios for longer.

use std::path::Path;
use std::time::Duration;

use ordersync_testkit::scenario::{self, Fault, Outcome, Scenario};

fn worker_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ordersync-worker"))
}

async fn run(fault: Fault) -> Outcome {
    let outcome = scenario::run(Scenario::short(fault, worker_bin()))
        .await
        .unwrap();
    assert!(outcome.is_clean(), "{outcome:#?}");
    assert!(
        outcome.jobs > 500,
        "too little work to prove anything: {outcome:#?}"
    );
    assert!(
        outcome.texts_sent > 0 && outcome.invoices > 0,
        "{outcome:#?}"
    );
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushall_mid_run_every_job_ends_terminal_and_nothing_is_doubled() {
    let outcome = run(Fault::FlushAll).await;
    assert!(
        outcome.reconciled > 0,
        "the flush lost nothing the reconciler had to bring back: {outcome:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_without_persistence_loses_no_job() {
    let outcome = run(Fault::RedisRestart).await;
    assert!(outcome.reconciled > 0, "{outcome:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_from_its_append_only_file_loses_no_job() {
    run(Fault::RedisRestartAof).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_killed_workers_leaves_no_job_and_no_text_behind() {
    let outcome = run(Fault::KillStorm {
        every: Duration::from_millis(1_500),
        lasting: Duration::from_secs(6),
    })
    .await;
    assert!(
        outcome.worker_died_runs > 0,
        "no kill landed mid-job; the storm proved nothing: {outcome:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_mid_run_fakes_no_death_and_burns_no_attempt() {
    let outcome = run(Fault::PostgresDown {
        lasting: Duration::from_secs(6),
    })
    .await;
    assert_eq!(outcome.worker_died_runs, 0, "{outcome:#?}");
    assert_eq!(outcome.failed_on_our_outage, 0, "{outcome:#?}");
}

/// Poll `check` until it returns Some, failing after a minute.
async fn poll_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// FAST retry policies of the stack tests, as helpers.rs uses for TestApp.
fn fast_policies() -> String {
    crate::helpers::FAST_POLICIES.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_between_a_status_change_and_its_text_push_still_texts_once() {
    use ordersync::domain::{JobKind, Source};
    use ordersync::queue::NewJob;
    use ordersync_simulator::{Knobs, Service};
    use ordersync_testkit::stack::{wait_settled, Stack, StackOptions};

    let mut stack = Stack::start(StackOptions {
        orders_per_store: 4,
        append_only_redis: false,
        latency: Duration::ZERO,
        error_rate: 0.0,
        status_step: Duration::ZERO,
        policies: fast_policies(),
        log_dir: None,
    })
    .await
    .unwrap();
    let deps = stack.deps().await.unwrap();
    stack.add_worker(worker_bin()).unwrap();
    for kind in [JobKind::ImportOrders, JobKind::FetchTracking] {
        let jobs = stack
            .stores()
            .iter()
            .map(|s| NewJob::for_store(kind, s))
            .collect();
        deps.enqueuer.enqueue(Source::Cli, jobs).await.unwrap();
        wait_settled(&deps.db, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let (reference, store, phone): (String, String, String) = sqlx::query_as(
        "SELECT reference, store, phone FROM orders
         WHERE courier_order_id IS NOT NULL AND phone IS NOT NULL
           AND status NOT IN ('delivered', 'cancelled', 'returned')
         ORDER BY id LIMIT 1",
    )
    .fetch_one(&deps.db)
    .await
    .unwrap();
    // The courier now says "delivered", slowly: the poll is still in flight
    // when Redis stops taking writes.
    assert!(stack.sim.set_courier_status(&reference, 41));
    stack.sim.set_knobs(
        Service::Courier,
        Knobs {
            latency: Duration::from_millis(1_500),
            ..Knobs::default()
        },
    );
    let polls_before = stack.sim.request_count(Service::Courier);
    deps.enqueuer
        .enqueue(
            Source::Cli,
            vec![NewJob::for_order(
                JobKind::RefreshStatus,
                &store,
                &reference,
            )],
        )
        .await
        .unwrap();
    poll_until("the courier to be asked", || async {
        (stack.sim.request_count(Service::Courier) > polls_before).then_some(())
    })
    .await;
    let redis = redis::Client::open(stack.settings.redis_url.as_str()).unwrap();
    let mut admin = redis.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(60_000)
        .arg("WRITE")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    // The change and its text are committed together; the push after the
    // commit waits on Redis. The worker dies right there.
    poll_until("the status change and its text to be committed", || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM orders o JOIN open_jobs j ON j.order_ref = o.reference
                            WHERE o.reference = $1 AND o.status = 'delivered' AND j.kind = 'send_sms')",
        )
        .bind(&reference)
        .fetch_one(&deps.db)
        .await
        .unwrap()
        .then_some(())
    })
    .await;
    stack.kill_worker(0);
    redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query_async::<()>(&mut admin)
        .await
        .unwrap();
    stack.sim.set_knobs(Service::Courier, Knobs::default());
    stack.add_worker(worker_bin()).unwrap();
    wait_settled(&deps.db, Duration::from_secs(60))
        .await
        .unwrap();

    let texts = stack.sim.sms_messages_to(&phone);
    let delivered: Vec<&String> = texts.iter().filter(|t| t.contains("delivered")).collect();
    assert_eq!(delivered.len(), 1, "{texts:?}");
    let state: String = sqlx::query_scalar(
        "SELECT m.state FROM sms_messages m JOIN orders o ON o.id = m.order_id
         WHERE o.reference = $1 AND m.status = 'delivered'",
    )
    .bind(&reference)
    .fetch_one(&deps.db)
    .await
    .unwrap();
    assert_eq!(state, "sent");
    let reconciled: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM reconciled_jobs r JOIN jobs j USING (job_id)
         WHERE j.order_ref = $1 AND j.kind = 'send_sms'",
    )
    .bind(&reference)
    .fetch_one(&deps.db)
    .await
    .unwrap();
    assert_eq!(reconciled, 1, "the text was pushed by the reconciler, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_is_not_json_is_dead_lettered_with_its_bytes_and_never_loops() {
    use ordersync::domain::{JobKind, Lane};
    use ordersync::queue::NewJob;

    let app = crate::helpers::TestApp::spawn(crate::helpers::two_stores(1)).await;
    let poisoned = app
        .enqueue(vec![NewJob::for_store(JobKind::Noop, "BETA")])
        .await
        .remove(0);
    // Something else wrote to our queue: the payload is not JSON at all.
    let garbage: &[u8] = b"\xff\xfe{not json";
    let keys = app.deps.enqueuer.keys(JobKind::Noop, Lane::Live).clone();
    let mut conn = app.deps.enqueuer.connection();
    redis::cmd("HSET")
        .arg(keys.config.job_data_hash())
        .arg(poisoned.task_id())
        .arg(garbage)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let mut worker = app.spawn_worker_process(&[JobKind::Noop]);
    let (raw, class): (Vec<u8>, String) = app
        .eventually("the undecodable task's dead letter", || async {
            sqlx::query_as(
                "SELECT raw_payload, error_class FROM dead_letters WHERE job_id = $1 AND raw_payload IS NOT NULL",
            )
            .bind(poisoned.job_id)
            .fetch_optional(&app.db)
            .await
            .unwrap()
        })
        .await;
    assert_eq!(raw, garbage);
    assert_eq!(class, "bad_payload");
    let quarantined: Vec<u8> =
        sqlx::query_scalar("SELECT raw FROM quarantined_tasks WHERE task_id = $1")
            .bind(poisoned.task_id())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(quarantined, garbage);
    // Gone from Redis, closed in the ledger, and the worker still works.
    let held: bool = redis::cmd("HEXISTS")
        .arg(keys.config.job_data_hash())
        .arg(poisoned.task_id())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!held);
    let healthy = app
        .enqueue_one(NewJob::for_store(JobKind::Noop, "BETA"))
        .await;
    assert_eq!(
        app.wait_final(healthy).await.last().unwrap().outcome,
        "succeeded"
    );
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM open_jobs")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(open, 0);
    crate::helpers::kill9(&mut worker);
    app.cleanup().await;
}
