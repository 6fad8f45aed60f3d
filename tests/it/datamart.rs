//! Datamart as a store's status source (data bundles): no listing, so
//! fetch_tracking asks for each untracked order by reference, and
//! refresh_status polls by reference; a change texts the customer once.

use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use ordersync_simulator::{CourierApi, SimConfig};

use crate::helpers::{two_stores, TestApp};

/// An order's (reference, tracking number, raw status, normalized status).
type StatusRow = (String, Option<String>, Option<String>, Option<String>);

/// ALPH on its Maystro account; BETA's orders on the Datamart account `dm`.
fn beta_on_datamart() -> SimConfig {
    let mut config = two_stores(30);
    let beta = config.stores.iter_mut().find(|s| s.code == "BETA").unwrap();
    beta.courier_account = "dm".into();
    beta.courier_key = "sim-datamart-key".into();
    beta.courier_api = CourierApi::Datamart;
    config
}

async fn refresh(app: &TestApp, reference: &str) -> ordersync::ledger::runs::RunRow {
    let id = app
        .enqueue_one(NewJob::for_order(JobKind::RefreshStatus, "BETA", reference))
        .await;
    app.wait_final(id).await.pop().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datamart_statuses_are_fetched_by_reference_polled_and_texted_on_change() {
    let mut app = TestApp::spawn(beta_on_datamart()).await;
    app.start_worker(&[]);
    app.import_and_track().await;

    let rows: Vec<StatusRow> = sqlx::query_as(
        "SELECT reference, tracking_number, courier_label, status FROM orders WHERE store = 'BETA'",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let mut known = 0;
    let mut missing = None;
    for (reference, tracking, label, status) in rows {
        match app.sim.datamart_order_by_ref(&reference) {
            Some((order_id, datamart_status)) => {
                known += 1;
                assert_eq!(tracking.as_deref(), Some(order_id.as_str()), "{reference}");
                assert_eq!(
                    label.as_deref(),
                    Some(datamart_status.as_str()),
                    "{reference}"
                );
                let (_, mapped) = ordersync::providers::datamart::map_status(&datamart_status);
                assert_eq!(status.as_deref(), Some(mapped.as_str()), "{reference}");
            }
            None => {
                assert_eq!(tracking, None, "{reference} is unknown to Datamart");
                missing = Some(reference);
            }
        }
    }
    assert!(known > 20, "{known}");

    let (reference, phone): (String, String) = sqlx::query_as(
        "SELECT reference, phone FROM orders WHERE store = 'BETA' AND tracking_number IS NOT NULL
           AND phone IS NOT NULL AND status IN ('pending', 'processing') ORDER BY id LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(app.sim.set_courier_status(&reference, 41));
    let run = refresh(&app, &reference).await;
    assert_eq!(run.outcome, "succeeded", "{run:?}");
    let detail = run.detail.unwrap();
    assert_eq!(
        (detail["courier_label"].as_str(), detail["status"].as_str()),
        (Some("completed"), Some("delivered"))
    );
    assert_eq!(
        refresh(&app, &reference).await.outcome,
        "skipped",
        "final: polling stops"
    );
    app.wait_idle().await;
    let texts = app.sim.sms_messages_to(&phone);
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].contains("delivered"), "{texts:?}");

    if let Some(reference) = missing {
        let run = refresh(&app, &reference).await;
        assert_eq!(run.outcome, "not_found", "{run:?}");
        assert!(
            run.error_message.as_deref().unwrap().contains(&format!(
                "courier account 'dm' does not know order {reference} (order id {reference})"
            )),
            "{run:?}"
        );
    }
    app.cleanup().await;
}
