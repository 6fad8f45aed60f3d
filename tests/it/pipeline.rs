//! The five job kinds end to end.

use std::time::Duration;

use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use ordersync_simulator::Service;

use crate::helpers::{alph_on_the_primary_account, outcomes, two_stores, TestApp, FAST_POLICIES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alph_orders_are_found_with_alph_own_key_only() {
    let mut app = TestApp::spawn(two_stores(30)).await;
    app.start_worker(&[]);
    app.import_and_track().await;
    let alph_at_courier = app
        .sim
        .shop_orders("ALPH")
        .iter()
        .filter(|o| {
            app.sim
                .courier_order_by_ref(&format!("ALPH-{}", o["number"].as_str().unwrap()))
                .is_some()
        })
        .count() as i64;
    assert!(alph_at_courier > 0);
    let tracked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE store = 'ALPH' AND tracking_number IS NOT NULL",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        tracked, alph_at_courier,
        "every ALPH order the courier knows gets its tracking number"
    );
    app.cleanup().await;

    // The field report's bug: ALPH searched on the primary account.
    let mut wrong =
        TestApp::spawn_with(two_stores(30), FAST_POLICIES, alph_on_the_primary_account).await;
    wrong.start_worker(&[]);
    let id = wrong
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "ALPH"))
        .await;
    wrong.wait_final(id).await;
    let id = wrong
        .enqueue_one(NewJob::for_store(JobKind::FetchTracking, "ALPH"))
        .await;
    let runs = wrong.wait_final(id).await;
    let detail = runs.last().unwrap().detail.clone().unwrap();
    assert_eq!(
        detail["matched"], 0,
        "the primary key sees none of ALPH's orders: {detail}"
    );
    assert_eq!(
        detail["unknown_refs"], 30,
        "each unknown reference is counted: {detail}"
    );
    wrong.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_status_poll_is_recorded_as_not_found() {
    let mut app =
        TestApp::spawn_with(two_stores(10), FAST_POLICIES, alph_on_the_primary_account).await;
    app.start_worker(&[]);
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "ALPH"))
        .await;
    app.wait_final(id).await;
    // The order was tracked while ALPH's own key was configured.
    let (reference,): (String,) =
        sqlx::query_as("SELECT reference FROM orders WHERE store = 'ALPH' ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .find(|(r,): &(String,)| app.sim.courier_order_by_ref(r).is_some())
            .unwrap();
    let courier_id = app.sim.courier_order_by_ref(&reference).unwrap()["id"]
        .as_i64()
        .unwrap();
    sqlx::query(
        "UPDATE orders SET courier_order_id = $1, status = 'in_transit' WHERE reference = $2",
    )
    .bind(courier_id)
    .bind(&reference)
    .execute(&app.db)
    .await
    .unwrap();
    let id = app
        .enqueue_one(NewJob::for_order(
            JobKind::RefreshStatus,
            "ALPH",
            &reference,
        ))
        .await;
    let runs = app.wait_final(id).await;
    let last = runs.last().unwrap();
    assert_eq!(runs.len(), 1, "not retried");
    assert_eq!(last.outcome, "not_found");
    assert!(
        last.error_message.as_deref().unwrap().contains(&format!(
            "courier account 'primary' does not know order {reference}"
        )),
        "{last:?}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_without_tracking_get_one_from_fetch_tracking() {
    let mut app = TestApp::spawn(two_stores(40)).await;
    app.start_worker(&[]);
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "BETA"))
        .await;
    app.wait_final(id).await;
    let untracked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE store = 'BETA' AND tracking_number IS NULL",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(untracked, 40, "a fresh import has no tracking numbers");
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::FetchTracking, "BETA"))
        .await;
    let runs = app.wait_final(id).await;
    let rows: Vec<(String, Option<String>, Option<i32>)> = sqlx::query_as(
        "SELECT reference, tracking_number, courier_code FROM orders WHERE store = 'BETA'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut unknown = 0;
    for (reference, tracking, code) in rows {
        match app.sim.courier_order_by_ref(&reference) {
            Some(courier) => {
                let display_id = courier["display_id"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| courier["display_id"].to_string());
                assert_eq!(
                    tracking.as_deref(),
                    Some(display_id.as_str()),
                    "{reference}"
                );
                assert_eq!(
                    code.map(i64::from),
                    courier["status"].as_i64(),
                    "{reference}"
                );
            }
            None => {
                assert!(tracking.is_none());
                unknown += 1;
            }
        }
    }
    assert_eq!(
        runs.last().unwrap().detail.as_ref().unwrap()["unknown_refs"],
        unknown
    );
    app.cleanup().await;
}

async fn a_tracked_order(app: &TestApp, store: &str) -> (i64, String, i64) {
    sqlx::query_as(
        "SELECT id, reference, courier_order_id FROM orders
         WHERE store = $1 AND courier_order_id IS NOT NULL AND phone IS NOT NULL
           AND status IN ('pending', 'processing') ORDER BY id LIMIT 1",
    )
    .bind(store)
    .fetch_one(&app.db)
    .await
    .expect("a tracked order in an early status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_change_texts_the_customer_once_even_when_the_job_runs_twice() {
    let mut app = TestApp::spawn(two_stores(40)).await;
    app.start_worker(&[]);
    app.import_and_track().await;
    let (_, reference, _) = a_tracked_order(&app, "BETA").await;
    let phone: String = sqlx::query_scalar("SELECT phone FROM orders WHERE reference = $1")
        .bind(&reference)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(app.sim.set_courier_status(&reference, 41));
    // The same change observed by two refresh jobs (and an SMS job that runs twice).
    let a = app
        .enqueue_one(NewJob::for_order(
            JobKind::RefreshStatus,
            "BETA",
            &reference,
        ))
        .await;
    let b = app
        .enqueue_one(NewJob::for_order(
            JobKind::RefreshStatus,
            "BETA",
            &reference,
        ))
        .await;
    app.wait_final(a).await;
    app.wait_final(b).await;
    app.wait_idle().await;
    let sms_job: uuid::Uuid =
        sqlx::query_scalar("SELECT job_id FROM jobs WHERE kind = 'send_sms' AND order_ref = $1")
            .bind(&reference)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let again = app
        .deps
        .enqueuer
        .push(&[(
            ordersync::domain::JobEnvelope {
                run: 9,
                ..serde_json::from_value(
                    sqlx::query_scalar::<_, serde_json::Value>(
                        "SELECT payload FROM jobs WHERE job_id = $1",
                    )
                    .bind(sms_job)
                    .fetch_one(&app.db)
                    .await
                    .unwrap(),
                )
                .unwrap()
            },
            None,
        )])
        .await
        .unwrap();
    assert_eq!(again.ready, 1);
    app.wait_idle().await;
    let texts = app.sim.sms_messages_to(&phone);
    assert_eq!(texts.len(), 1, "one text per (order, status): {texts:?}");
    assert!(texts[0].contains("delivered"), "{texts:?}");
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM job_runs WHERE job_id = $1 ORDER BY run")
            .bind(sms_job)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(outcomes, vec!["succeeded", "skipped"]);
    let history: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM order_status_history h JOIN orders o ON o.id = h.order_id WHERE o.reference = $1 AND h.status = 'delivered'",
    )
    .bind(&reference)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(history, 1, "the change is in the history once");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_status_stops_polling() {
    let mut app = TestApp::spawn(two_stores(20)).await;
    app.start_worker(&[]);
    app.import_and_track().await;
    let (_, reference, _) = a_tracked_order(&app, "BETA").await;
    app.sim.set_courier_status(&reference, 50);
    app.run_ok(NewJob::for_order(
        JobKind::RefreshStatus,
        "BETA",
        &reference,
    ))
    .await;
    let requests = app.sim.request_count(Service::Courier);
    let second = app
        .enqueue_one(NewJob::for_order(
            JobKind::RefreshStatus,
            "BETA",
            &reference,
        ))
        .await;
    let runs = app.wait_final(second).await;
    assert_eq!(runs.last().unwrap().outcome, "skipped");
    assert_eq!(
        app.sim.request_count(Service::Courier),
        requests,
        "no courier call for a final order"
    );
    app.cleanup().await;
}

/// One processing order paid by `method`, added to `store`'s shop and imported.
async fn payable_order(app: &TestApp, store: &str, method: &str) -> String {
    app.import_new_orders(store, 1, method).await.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_racing_create_one_invoice() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    app.start_worker(&[]);
    let reference = payable_order(&app, "BETA", "cod").await;
    app.sim.set_knobs(
        Service::Erp,
        ordersync_simulator::Knobs {
            latency: Duration::from_millis(50),
            ..Default::default()
        },
    );
    let jobs: Vec<NewJob> = (0..6)
        .map(|_| NewJob::for_order(JobKind::CreateInvoice, "BETA", &reference))
        .collect();
    let ids = app.enqueue_ids(jobs).await;
    let mut outcomes = Vec::new();
    for id in ids {
        outcomes.push(app.wait_final(id).await.last().unwrap().outcome.clone());
    }
    assert_eq!(
        app.sim.invoice_count(&reference),
        1,
        "exactly one ERP invoice"
    );
    assert_eq!(
        outcomes.iter().filter(|o| *o == "succeeded").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| *o == "skipped").count(),
        5,
        "{outcomes:?}"
    );
    let state: String = sqlx::query_scalar("SELECT state FROM invoices WHERE reference = $1")
        .bind(&reference)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(state, "created");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_already_in_the_erp_is_skipped_not_duplicated() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    let reference = payable_order(&app, "ALPH", "instapay").await;
    app.run_ok(NewJob::for_order(
        JobKind::CreateInvoice,
        "ALPH",
        &reference,
    ))
    .await;
    // Our database forgets the invoice (e.g. restored from a backup): the ERP look-up still finds it.
    sqlx::query("DELETE FROM invoices")
        .execute(&app.db)
        .await
        .unwrap();
    let second = app
        .enqueue_one(NewJob::for_order(
            JobKind::CreateInvoice,
            "ALPH",
            &reference,
        ))
        .await;
    let last = app.wait_final(second).await.pop().unwrap();
    assert_eq!(last.outcome, "skipped");
    assert!(last
        .error_message
        .unwrap()
        .contains("ERP already has invoice"));
    assert_eq!(app.sim.invoice_count(&reference), 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_payment_is_deferred_then_invoiced() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    let order = app
        .sim
        .add_shop_order("BETA", "kashier_card", "pending", false);
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "BETA"))
        .await;
    app.wait_final(id).await;
    let reference = format!("BETA-{}", order["number"].as_str().unwrap());
    let job = app
        .enqueue_one(NewJob::for_order(
            JobKind::CreateInvoice,
            "BETA",
            &reference,
        ))
        .await;
    app.eventually("a deferral", || async {
        app.runs(job)
            .await
            .iter()
            .any(|r| r.outcome == "deferred")
            .then_some(())
    })
    .await;
    assert_eq!(app.sim.invoice_count(&reference), 0);
    assert!(app
        .sim
        .set_shop_order_status("BETA", order["id"].as_i64().unwrap(), "processing"));
    let runs = app.wait_final(job).await;
    assert_eq!(runs.last().unwrap().outcome, "succeeded");
    assert!(
        runs.iter()
            .filter(|r| r.outcome == "deferred")
            .all(|r| r.attempt == 1),
        "deferrals use no attempt"
    );
    assert_eq!(runs.last().unwrap().attempt, 1);
    assert_eq!(app.sim.invoice_count(&reference), 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_payment_method_fails_permanently_naming_it() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    let reference = payable_order(&app, "BETA", "paypal").await;
    let job = app
        .enqueue_one(NewJob::for_order(
            JobKind::CreateInvoice,
            "BETA",
            &reference,
        ))
        .await;
    let runs = app.wait_final(job).await;
    assert_eq!(runs.len(), 1, "not retried");
    let last = &runs[0];
    assert_eq!(last.outcome, "failed");
    assert_eq!(last.error_class.as_deref(), Some("unknown_payment_method"));
    assert!(
        last.error_message.as_deref().unwrap().contains("'paypal'"),
        "{last:?}"
    );
    assert_eq!(app.sim.invoice_count(&reference), 0);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erp_timestamp_mismatch_is_retried_not_failed() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    let reference = payable_order(&app, "BETA", "cod").await;
    app.sim.fail_next(Service::Erp, 1, 417, None);
    let job = app
        .enqueue_one(NewJob::for_order(
            JobKind::CreateInvoice,
            "BETA",
            &reference,
        ))
        .await;
    let runs = app.wait_final(job).await;
    // 417 from fail_next is a TimestampMismatchError: transient, so it retries and then succeeds.
    assert_eq!(runs.last().unwrap().outcome, "succeeded");
    assert_eq!(runs[0].outcome, "retry");
    assert_eq!(runs[0].http_status, Some(417));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_5xx_succeeds_after_retries_with_growing_delays() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    let reference = payable_order(&app, "ALPH", "cod").await;
    app.sim.fail_next(Service::Erp, 3, 503, None);
    let job = app
        .enqueue_one(NewJob::for_order(
            JobKind::CreateInvoice,
            "ALPH",
            &reference,
        ))
        .await;
    let runs = app.wait_final(job).await;
    assert_eq!(
        outcomes(&runs),
        vec!["retry", "retry", "retry", "succeeded"]
    );
    let policy = app.deps.policies.get(JobKind::CreateInvoice);
    let mut ceilings = Vec::new();
    for r in &runs[..3] {
        assert_eq!(r.http_status, Some(503));
        assert_eq!(r.error_class.as_deref(), Some("server_error"));
        let planned = (r.next_run_at.unwrap() - r.finished_at)
            .to_std()
            .unwrap_or_default();
        let ceiling = policy.ceiling(r.attempt as u32);
        assert!(
            planned <= ceiling + Duration::from_millis(5),
            "attempt {}: {planned:?} > {ceiling:?}",
            r.attempt
        );
        ceilings.push(ceiling);
    }
    assert!(
        ceilings.windows(2).all(|w| w[0] < w[1]),
        "the backoff ceiling grows: {ceilings:?}"
    );
    for pair in runs.windows(2) {
        assert!(
            pair[1].started_at >= pair[0].next_run_at.unwrap(),
            "no attempt starts before its due time"
        );
    }
    assert_eq!(
        runs.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(app.sim.invoice_count(&reference), 1);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_from_the_provider_is_honoured() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    let reference = payable_order(&app, "ALPH", "cod").await;
    app.sim.fail_next(Service::Erp, 1, 429, Some(1));
    let job = app
        .enqueue_one(NewJob::for_order(
            JobKind::CreateInvoice,
            "ALPH",
            &reference,
        ))
        .await;
    let runs = app.wait_final(job).await;
    assert_eq!(runs[0].outcome, "retry");
    let waited = runs[1].started_at - runs[0].finished_at;
    assert!(
        waited >= chrono::Duration::milliseconds(990),
        "waited {waited:?} for a 1 s Retry-After"
    );
    assert_eq!(runs.last().unwrap().outcome, "succeeded");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_is_incremental_from_the_last_modification() {
    let mut app = TestApp::spawn(two_stores(25)).await;
    app.start_worker(&[]);
    let first = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "ALPH"))
        .await;
    let detail = app.wait_final(first).await.pop().unwrap().detail.unwrap();
    assert_eq!(detail["inserted"], 25);
    let order = app.sim.add_shop_order("ALPH", "cod", "processing", false);
    let second = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "ALPH"))
        .await;
    let detail = app.wait_final(second).await.pop().unwrap().detail.unwrap();
    assert_eq!(detail["inserted"], 1, "{detail}");
    assert!(
        detail["fetched"].as_u64().unwrap() < 25,
        "only recent changes are fetched: {detail}"
    );
    let raw: serde_json::Value =
        sqlx::query_scalar("SELECT raw FROM orders WHERE shop_order_id = $1 AND store = 'ALPH'")
            .bind(order["id"].as_i64().unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(raw["id"], order["id"], "the raw JSON is stored");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_page_is_retried_in_place_not_the_whole_sync() {
    let mut app = TestApp::spawn(two_stores(60)).await;
    app.start_worker(&[]);
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "BETA"))
        .await;
    app.wait_final(id).await;
    app.sim.fail_next(Service::Courier, 2, 503, None);
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::FetchTracking, "BETA"))
        .await;
    let runs = app.wait_final(id).await;
    assert_eq!(runs.len(), 1, "one run: the page was retried inside it");
    assert_eq!(runs[0].outcome, "succeeded");
    assert!(
        runs[0].detail.as_ref().unwrap()["matched"]
            .as_u64()
            .unwrap()
            > 0
    );
    app.cleanup().await;
}
