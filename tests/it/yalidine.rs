//! The courier jobs through a Yalidine account: BETA's courier account is
//! on Yalidine, ALPH stays on Maystro, in one process.

use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use ordersync_simulator::{CourierApi, SimConfig};

use crate::helpers::{two_stores, TestApp};

/// An order's (reference, tracking number, courier id, courier label, status).
type TrackingRow = (
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// ALPH on its Maystro account; BETA on the Yalidine account `yal`.
fn beta_on_yalidine(orders_per_store: usize) -> SimConfig {
    let mut config = two_stores(orders_per_store);
    let beta = config.stores.iter_mut().find(|s| s.code == "BETA").unwrap();
    beta.courier_account = "yal".into();
    beta.courier_key = "sim-yalidine-token".into();
    beta.courier_api = CourierApi::Yalidine;
    config
}

/// (reference, phone) of a BETA order Yalidine tracks, in an early status.
async fn a_tracked_parcel(app: &TestApp) -> (String, String) {
    sqlx::query_as(
        "SELECT reference, phone FROM orders
         WHERE store = 'BETA' AND tracking_number IS NOT NULL AND phone IS NOT NULL
           AND status IN ('pending', 'processing') ORDER BY id LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .expect("a tracked BETA parcel in an early status")
}

async fn refresh(app: &TestApp, reference: &str) -> ordersync::ledger::runs::RunRow {
    let id = app
        .enqueue_one(NewJob::for_order(JobKind::RefreshStatus, "BETA", reference))
        .await;
    app.wait_final(id).await.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_tracking_pages_through_yalidine_and_fills_tracking_and_statuses() {
    // More parcels than one page of 100, so paging follows `has_more`.
    let mut app = TestApp::spawn(beta_on_yalidine(130)).await;
    app.start_worker(&[]);
    app.import_and_track().await;

    let rows: Vec<TrackingRow> = sqlx::query_as(
        "SELECT reference, tracking_number, courier_order_id, courier_label, status
             FROM orders WHERE store = 'BETA'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut tracked = 0;
    for (reference, tracking, courier_id, label, status) in rows {
        match app.sim.yalidine_parcel_by_ref(&reference) {
            Some((parcel_tracking, parcel_label)) => {
                tracked += 1;
                assert_eq!(
                    tracking.as_deref(),
                    Some(parcel_tracking.as_str()),
                    "{reference}"
                );
                assert_eq!(label.as_deref(), Some(parcel_label.as_str()), "{reference}");
                let (_, mapped) = ordersync::providers::yalidine::map_status(&parcel_label);
                assert_eq!(status.as_deref(), Some(mapped.as_str()), "{reference}");
                assert_eq!(courier_id, None, "Yalidine has no numeric ids");
            }
            None => assert_eq!(tracking, None, "{reference} is not at the courier"),
        }
    }
    assert!(
        tracked > 100,
        "more than a page of parcels tracked: {tracked}"
    );

    let fetch = app
        .run_ok(NewJob::for_store(JobKind::FetchTracking, "BETA"))
        .await;
    let detail = fetch.last().unwrap().detail.clone().unwrap();
    assert_eq!(detail["courier"], "yalidine");
    assert_eq!(detail["courier_account"], "yal");
    assert_eq!(detail["matched"], tracked);

    // ALPH's Maystro account is untouched by BETA's move.
    let alph_tracked = app
        .count("SELECT count(*) FROM orders WHERE store = 'ALPH' AND courier_order_id IS NOT NULL")
        .await;
    assert!(alph_tracked > 0);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_status_through_yalidine_records_changes_with_reasons_and_texts_once() {
    let mut app = TestApp::spawn(beta_on_yalidine(20)).await;
    app.start_worker(&[]);
    app.import_and_track().await;
    let (reference, phone) = a_tracked_parcel(&app).await;

    // Maystro's ALERTED is shown by the simulated Yalidine as a failed attempt.
    assert!(app.sim.set_courier_status(&reference, 32));
    let run = refresh(&app, &reference).await;
    assert_eq!(run.outcome, "succeeded", "{run:?}");
    let detail = run.detail.unwrap();
    assert_eq!(detail["courier_label"], "Tentative échouée");
    assert_eq!(detail["status"], "delivery_issue");
    assert_eq!(detail["courier_reason"], "Client absent");
    // Polled again with no change: no second text.
    assert_eq!(refresh(&app, &reference).await.outcome, "succeeded");
    app.wait_idle().await;
    let texts = app.sim.sms_messages_to(&phone);
    assert_eq!(texts.len(), 1, "one text per change: {texts:?}");
    assert!(texts[0].contains("could not be delivered"), "{texts:?}");

    assert!(app.sim.set_courier_status(&reference, 41));
    let run = refresh(&app, &reference).await;
    assert_eq!(run.detail.unwrap()["courier_label"], "Livré");
    let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE reference = $1")
        .bind(&reference)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "delivered");
    let final_run = refresh(&app, &reference).await;
    assert_eq!(final_run.outcome, "skipped", "a final status stops polling");
    app.wait_idle().await;
    let texts = app.sim.sms_messages_to(&phone);
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[1].contains("delivered"), "{texts:?}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untracked_order_is_found_by_its_order_id_and_an_unknown_parcel_is_not_found() {
    let mut app = TestApp::spawn(beta_on_yalidine(10)).await;
    app.start_worker(&[]);
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "BETA"))
        .await;
    app.wait_final(id).await;
    let (reference,): (String,) =
        sqlx::query_as("SELECT reference FROM orders WHERE store = 'BETA' ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap()
            .into_iter()
            .find(|(r,): &(String,)| app.sim.yalidine_parcel_by_ref(r).is_some())
            .unwrap();
    // No fetch_tracking yet: the parcel is asked for by the shop's reference.
    let run = refresh(&app, &reference).await;
    assert_eq!(run.outcome, "succeeded", "{run:?}");
    let (tracking, _) = app.sim.yalidine_parcel_by_ref(&reference).unwrap();
    let stored: Option<String> =
        sqlx::query_scalar("SELECT tracking_number FROM orders WHERE reference = $1")
            .bind(&reference)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, Some(tracking));

    sqlx::query("UPDATE orders SET tracking_number = 'yal-NOPE' WHERE reference = $1")
        .bind(&reference)
        .execute(&app.db)
        .await
        .unwrap();
    let run = refresh(&app, &reference).await;
    assert_eq!(run.outcome, "not_found", "{run:?}");
    assert!(
        run.error_message.as_deref().unwrap().contains(&format!(
            "courier account 'yal' does not know order {reference} (tracking yal-NOPE)"
        )),
        "{run:?}"
    );
    app.cleanup().await;
}
