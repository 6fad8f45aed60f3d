//! The scheduler: once per tick across replicas, overlap protection.

use ordersync::domain::JobKind;
use tokio::sync::oneshot;

use crate::helpers::{redis, two_stores, TestApp};

fn every_second(kind: JobKind) -> Vec<ordersync::domain::schedule::Entry> {
    ordersync::domain::schedule::entries(&[(kind, "* * * * * *".to_owned())]).unwrap()
}

fn start_scheduler(
    app: &TestApp,
    kind: JobKind,
) -> (
    oneshot::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (tx, rx) = oneshot::channel::<()>();
    let stores = app.config.stores.iter().map(|s| s.code.clone()).collect();
    let handle = tokio::spawn(ordersync::scheduler::run(
        app.deps.clone(),
        stores,
        every_second(kind),
        async {
            let _ = rx.await;
        },
    ));
    (tx, handle)
}

async fn stop(
    schedulers: Vec<(
        oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
) {
    for (tx, handle) in schedulers {
        let _ = tx.send(());
        handle.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_enqueue_each_tick_once() {
    let mut app = TestApp::spawn(two_stores(3)).await;
    app.start_worker(&[]);
    let schedulers = vec![
        start_scheduler(&app, JobKind::ImportOrders),
        start_scheduler(&app, JobKind::ImportOrders),
    ];
    app.eventually("three ticks of each store", || async {
        let ticks: i64 = sqlx::query_scalar(
            "SELECT min(n) FROM (SELECT store, count(DISTINCT payload->'args'->>'tick') AS n FROM jobs
             WHERE kind = 'import_orders' AND source = 'scheduler' GROUP BY store) t
             HAVING count(*) = 2",
        )
        .fetch_optional(&app.db)
        .await
        .unwrap()
        .flatten()
        .unwrap_or(0);
        (ticks >= 3).then_some(())
    })
    .await;
    stop(schedulers).await;
    let duplicates: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT store, payload->'args'->>'tick' FROM jobs WHERE kind = 'import_orders'
         GROUP BY 1, 2 HAVING count(*) > 1) d",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(duplicates, 0, "a (store, tick) was enqueued twice");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_job_is_not_enqueued_again_while_the_previous_one_is_pending() {
    let app = TestApp::spawn(two_stores(3)).await;
    // No worker: the first tick's jobs stay pending.
    let schedulers = vec![start_scheduler(&app, JobKind::FetchTracking)];
    let conn = redis().await;
    let pattern = format!("{}:scheduler:fetch_tracking:ALPH:*", app.namespace);
    app.eventually("three ticks to be claimed", || {
        let mut conn = conn.clone();
        let pattern = pattern.clone();
        async move {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut conn)
                .await
                .unwrap();
            (keys.len() >= 3).then_some(())
        }
    })
    .await;
    stop(schedulers).await;
    let per_store: Vec<(String, i64)> =
        sqlx::query_as("SELECT store, count(*) FROM jobs WHERE kind = 'fetch_tracking' GROUP BY store ORDER BY store")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(
        per_store,
        vec![("ALPH".to_owned(), 1), ("BETA".to_owned(), 1)]
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_with_a_revoked_key_does_not_hold_back_the_others() {
    let mut app = TestApp::spawn(two_stores(3)).await;
    let alph_key = app.courier_key("ALPH");
    app.sim.revoke_key(&alph_key);
    app.start_worker(&[]);
    let schedulers = vec![start_scheduler(&app, JobKind::FetchTracking)];
    app.eventually("three successful syncs of BETA", || async {
        let ok: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs j JOIN job_runs r USING (job_id)
             WHERE j.kind = 'fetch_tracking' AND j.store = 'BETA' AND r.outcome = 'succeeded'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        (ok >= 3).then_some(())
    })
    .await;
    stop(schedulers).await;
    let alph: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT r.outcome FROM jobs j JOIN job_runs r USING (job_id) WHERE j.kind = 'fetch_tracking' AND j.store = 'ALPH'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(alph, vec!["failed"], "ALPH's syncs fail on its revoked key");
    app.cleanup().await;
}

/// How many ticks of `kind` for `store` the schedulers have claimed.
async fn claimed_ticks(app: &TestApp, kind: JobKind, store: &str) -> usize {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!(
            "{}:scheduler:{}:{store}:*",
            app.namespace,
            kind.as_str()
        ))
        .query_async(&mut redis().await)
        .await
        .unwrap();
    keys.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_the_shop_answers_404_for_makes_one_dead_letter_not_one_per_tick() {
    let mut app = TestApp::spawn(two_stores(0)).await;
    app.start_worker(&[]);
    let reference = app.import_new_orders("ALPH", 1, "cod").await.remove(0);
    // The shop no longer knows the order: asking for it answers 404.
    sqlx::query("UPDATE orders SET shop_order_id = shop_order_id + 1000000 WHERE reference = $1")
        .bind(&reference)
        .execute(&app.db)
        .await
        .unwrap();
    let dead_letters_sql = format!(
        "SELECT count(*) FROM dead_letters WHERE kind = 'create_invoice' AND order_ref = '{reference}'"
    );
    let jobs_sql = format!(
        "SELECT count(*) FROM jobs WHERE kind = 'create_invoice' AND order_ref = '{reference}'"
    );
    let schedulers = vec![start_scheduler(&app, JobKind::CreateInvoice)];
    app.eventually("the order's invoice job to fail for good", || async {
        (app.count(&dead_letters_sql).await > 0).then_some(())
    })
    .await;
    // Three more ticks after the failure: each would have made a dead letter.
    let ticks_at_failure = claimed_ticks(&app, JobKind::CreateInvoice, "ALPH").await;
    app.eventually("three more ticks", || async {
        (claimed_ticks(&app, JobKind::CreateInvoice, "ALPH").await >= ticks_at_failure + 3)
            .then_some(())
    })
    .await;
    stop(schedulers).await;
    app.wait_idle().await;
    assert_eq!(app.count(&jobs_sql).await, 1, "one job for the order");
    assert_eq!(app.count(&dead_letters_sql).await, 1, "one dead letter");

    // The dead letter says why nothing follows it.
    let failed: uuid::Uuid = sqlx::query_scalar(
        "SELECT job_id FROM dead_letters WHERE kind = 'create_invoice' AND order_ref = $1",
    )
    .bind(&reference)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let show = app.cli(&["jobs", "show", &failed.to_string()]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("not retried by the scheduler: open failure since "),
        "{text}"
    );
    let trace = app.cli(&["orders", "trace", &reference]);
    let text = String::from_utf8_lossy(&trace.stdout);
    assert!(
        text.contains("not retried by the scheduler: open failure since "),
        "{text}"
    );

    // Discarding it lets the scheduler try the order again.
    let discard = app.cli(&["jobs", "discard", &failed.to_string()]);
    assert!(discard.status.success(), "{discard:?}");
    let schedulers = vec![start_scheduler(&app, JobKind::CreateInvoice)];
    app.eventually("a new invoice job for the order", || async {
        (app.count(&jobs_sql).await >= 2).then_some(())
    })
    .await;
    stop(schedulers).await;
    app.cleanup().await;
}
