//! The invoice lifecycle after creation (issue 12): the two invoice kinds,
//! cancellations, payments, shop write-back, each counted in the simulator
//! and compared with the ledger.

use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use serde_json::{json, Value};

use crate::helpers::{two_stores, TestApp, FAST_POLICIES};

/// Adds the simulated company's payment and write-back rules to every store.
fn with_store_rules(toml: &mut String) {
    let mut out = String::new();
    for line in toml.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("webhook_secret_env = \"SIM_SHOP_") {
            out.push_str(ordersync_simulator::STORE_RULES);
            out.push('\n');
        }
    }
    *toml = out;
}

async fn app_with_rules() -> TestApp {
    let mut app = TestApp::spawn_with(two_stores(5), FAST_POLICIES, with_store_rules).await;
    app.start_worker(&[]);
    app
}

/// The ERP's invoices for `reference`.
fn erp_invoices(app: &TestApp, reference: &str) -> Vec<Value> {
    app.sim
        .invoices()
        .into_iter()
        .filter(|d| d["po_no"] == reference)
        .collect()
}

/// Payment Entries made for `reference`.
fn erp_payments(app: &TestApp, reference: &str) -> Vec<Value> {
    app.sim
        .payment_entries()
        .into_iter()
        .filter(|d| d["reference_no"] == reference)
        .collect()
}

/// The shop id of `reference` (`STORE-number`).
fn shop_id(app: &TestApp, store: &str, reference: &str) -> i64 {
    let number = reference.rsplit('-').next().unwrap();
    app.sim
        .shop_orders(store)
        .iter()
        .find(|o| o["number"] == number)
        .and_then(|o| o["id"].as_i64())
        .unwrap()
}

/// Sets the shop status of `reference` and imports the change.
async fn shop_moves_to(app: &TestApp, store: &str, reference: &str, status: &str) {
    assert!(app
        .sim
        .set_shop_order_status(store, shop_id(app, store, reference), status));
    app.run_ok(NewJob::for_store(JobKind::ImportOrders, store))
        .await;
}

fn assert_no_violations(app: &TestApp) {
    let counts = app.sim.erp_counts();
    assert!(counts.violations.is_empty(), "{:?}", counts.violations);
}

async fn step(
    app: &TestApp,
    reference: &str,
    step: &str,
) -> Option<(String, Option<String>, Option<Value>)> {
    sqlx::query_as(
        "SELECT s.state, s.result, s.detail FROM invoice_steps s JOIN orders o ON o.id = s.order_id
         WHERE o.reference = $1 AND s.step = $2",
    )
    .bind(reference)
    .bind(step)
    .fetch_optional(&app.db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_invoice_is_submitted_unpaid_moves_stock_and_carries_the_custom_fields() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    let order = app.sim.add_shop_order("BETA", "cod", "processing", false);
    let id = order["id"].as_i64().unwrap();
    let number = order["number"].as_str().unwrap().to_owned();
    assert!(app
        .sim
        .set_shop_order_meta("BETA", id, "_delivery_date", json!("2026-12-24")));
    assert!(app
        .sim
        .set_shop_order_meta("BETA", id, "delivery_time", json!("10:00-12:00")));
    app.run_ok(NewJob::for_store(JobKind::ImportOrders, "BETA"))
        .await;
    let reference = format!("BETA-{number}");
    let runs = app
        .run_ok(NewJob::for_order(
            JobKind::CreateInvoice,
            "BETA",
            &reference,
        ))
        .await;
    let detail = runs.last().unwrap().detail.clone().unwrap();
    assert_eq!(detail["kind"], "live", "{detail}");

    let docs = erp_invoices(&app, &reference);
    assert_eq!(docs.len(), 1);
    let doc = &docs[0];
    assert_eq!(doc["docstatus"], 1, "submitted: {doc}");
    assert_eq!(doc["status"], "Unpaid");
    assert_eq!(doc["is_pos"], 0);
    assert_eq!(doc["update_stock"], 1);
    assert!(doc
        .get("payments")
        .is_none_or(|p| p.as_array().is_none_or(Vec::is_empty)));
    assert_eq!(doc["custom_payment_method"], "Cash");
    assert_eq!(doc["woo_order_id"], id);
    assert_eq!(doc["woo_order_number"], number.as_str());
    assert_eq!(doc["custom_delivery_date"], "2026-12-24");
    assert_eq!(doc["custom_delivery_time"], "10:00-12:00");

    let (kind, docstatus): (Option<String>, Option<i16>) =
        sqlx::query_as("SELECT kind, docstatus FROM invoices WHERE reference = $1")
            .bind(&reference)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((kind.as_deref(), docstatus), (Some("live"), Some(1)));
    assert_eq!(step(&app, &reference, "submit").await.unwrap().0, "done");
    let counts = app.sim.erp_counts();
    assert_eq!(
        (counts.submitted, counts.stock_moves, counts.payments),
        (1, 1, 0)
    );
    assert_no_violations(&app);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backfill_invoice_is_paid_for_reporting_and_moves_no_stock() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    let order = app
        .sim
        .add_shop_order("ALPH", "kashier_wallet", "completed", false);
    app.run_ok(NewJob::for_store(JobKind::ImportOrders, "ALPH"))
        .await;
    let reference = format!("ALPH-{}", order["number"].as_str().unwrap());
    app.run_ok(NewJob {
        args: ordersync::jobs::create_invoice::historical_args(),
        ..NewJob::for_order(JobKind::CreateInvoice, "ALPH", &reference)
    })
    .await;
    let doc = erp_invoices(&app, &reference).remove(0);
    assert_eq!(doc["docstatus"], 1);
    assert_eq!(doc["is_pos"], 1);
    assert_eq!(doc["update_stock"], 0, "no stock movement");
    assert_eq!(doc["status"], "Paid", "{doc}");
    assert_eq!(doc["payments"][0]["mode_of_payment"], "Kashier Wallet");
    let kind: Option<String> = sqlx::query_scalar("SELECT kind FROM invoices WHERE reference = $1")
        .bind(&reference)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(kind.as_deref(), Some("historical"));
    assert_eq!(app.sim.erp_counts().stock_moves, 0);
    assert_no_violations(&app);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_is_submitted_then_cancelled_and_a_second_delivery_does_nothing() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    let reference = app.import_new_orders("BETA", 1, "instapay").await.remove(0);
    // The old system left a draft for this order.
    let erp = app.deps.accounts.erp().unwrap();
    let draft = ordersync::providers::erpnext::SalesInvoice {
        customer: "Old System".into(),
        posting_date: chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        due_date: chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
        po_no: reference.clone(),
        items: vec![ordersync::providers::erpnext::InvoiceItem {
            item_code: "X".into(),
            item_name: "X".into(),
            qty: 1.0,
            rate: 10.0,
        }],
        payments: Vec::new(),
        is_pos: 0,
        update_stock: 0,
        docstatus: 0,
        custom_payment_method: "Instapay".into(),
        woo_order_id: 1,
        woo_order_number: "1".into(),
        custom_delivery_date: None,
        custom_delivery_time: None,
    };
    erp.create_invoice(&draft).await.unwrap();
    shop_moves_to(&app, "BETA", &reference, "cancelled").await;

    let runs = app
        .run_ok(NewJob::for_order(
            JobKind::CancelInvoice,
            "BETA",
            &reference,
        ))
        .await;
    let detail = runs.last().unwrap().detail.clone().unwrap();
    assert_eq!(detail["submitted_first"], true, "{detail}");
    let doc = erp_invoices(&app, &reference).remove(0);
    assert_eq!(doc["docstatus"], 2);
    let counts = app.sim.erp_counts();
    assert_eq!((counts.submitted, counts.cancelled), (1, 1), "{counts:?}");
    assert_eq!(step(&app, &reference, "cancel").await.unwrap().0, "done");
    assert_eq!(step(&app, &reference, "submit").await.unwrap().0, "done");

    // Delivered again (a webhook and the scheduler both saw it): nothing more.
    let again = app
        .enqueue_one(NewJob::for_order(
            JobKind::CancelInvoice,
            "BETA",
            &reference,
        ))
        .await;
    assert_eq!(
        app.wait_final(again).await.last().unwrap().outcome,
        "skipped"
    );
    assert_eq!(app.sim.erp_counts().cancelled, 1);
    assert_no_violations(&app);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_before_the_invoice_leaves_no_live_invoice() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    let reference = app.import_new_orders("ALPH", 1, "cod").await.remove(0);
    shop_moves_to(&app, "ALPH", &reference, "cancelled").await;
    let runs = app
        .run_ok(NewJob::for_order(
            JobKind::CancelInvoice,
            "ALPH",
            &reference,
        ))
        .await;
    assert_eq!(
        runs.last().unwrap().detail.as_ref().unwrap()["voided"],
        true
    );
    // The shop re-opens it (or a stale invoice job arrives): still none is made.
    shop_moves_to(&app, "ALPH", &reference, "processing").await;
    let late = app
        .enqueue_one(NewJob::for_order(
            JobKind::CreateInvoice,
            "ALPH",
            &reference,
        ))
        .await;
    let last = app.wait_final(late).await.pop().unwrap();
    assert_eq!(last.outcome, "skipped");
    assert!(
        last.error_message
            .as_deref()
            .unwrap()
            .contains("cancelled before any invoice"),
        "{last:?}"
    );
    assert!(erp_invoices(&app, &reference).is_empty());
    let state: String = sqlx::query_scalar("SELECT state FROM invoices WHERE reference = $1")
        .bind(&reference)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(state, "voided");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kashier_payment_follows_the_invoice_once_and_a_refund_cancels_both() {
    let app = app_with_rules().await;
    let reference = app
        .import_new_orders("BETA", 1, "kashier_card")
        .await
        .remove(0);
    app.run_ok(NewJob::for_order(
        JobKind::CreateInvoice,
        "BETA",
        &reference,
    ))
    .await;
    let payment = ordersync::jobs::record_payment::job_for("BETA", &reference, "invoice")
        .job_id
        .unwrap();
    let runs = app.wait_final(payment).await;
    assert_eq!(runs.last().unwrap().outcome, "succeeded", "{runs:#?}");
    let entries = erp_payments(&app, &reference);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["paid_to"], "Kashier - SIM");
    assert_eq!(entries[0]["docstatus"], 1);
    let invoice = erp_invoices(&app, &reference).remove(0);
    assert_eq!(invoice["status"], "Paid", "{invoice}");
    assert_eq!(
        entries[0]["references"][0]["allocated_amount"], invoice["grand_total"],
        "the full amount is allocated"
    );

    // Double delivery of the payment step, two at once: no second entry.
    let ids = app
        .enqueue_ids(
            (0..4)
                .map(|_| NewJob::for_order(JobKind::RecordPayment, "BETA", &reference))
                .collect(),
        )
        .await;
    for id in ids {
        assert_eq!(app.wait_final(id).await.last().unwrap().outcome, "skipped");
    }
    assert_eq!(erp_payments(&app, &reference).len(), 1);

    // A refund after the payment: the payment is cancelled, then the invoice.
    shop_moves_to(&app, "BETA", &reference, "refunded").await;
    let runs = app
        .run_ok(NewJob::for_order(
            JobKind::CancelInvoice,
            "BETA",
            &reference,
        ))
        .await;
    let detail = runs.last().unwrap().detail.clone().unwrap();
    assert_eq!(
        detail["payments_cancelled"].as_array().unwrap().len(),
        1,
        "{detail}"
    );
    assert_eq!(erp_invoices(&app, &reference)[0]["docstatus"], 2);
    assert_eq!(erp_payments(&app, &reference)[0]["docstatus"], 2);
    let counts = app.sim.erp_counts();
    assert_eq!(
        (counts.payments, counts.payments_cancelled, counts.cancelled),
        (1, 1, 1),
        "{counts:?}"
    );
    // A payment job arriving after the cancellation stands down.
    let late = app
        .enqueue_one(NewJob::for_order(
            JobKind::RecordPayment,
            "BETA",
            &reference,
        ))
        .await;
    assert_eq!(
        app.wait_final(late).await.last().unwrap().outcome,
        "skipped"
    );
    assert_eq!(erp_payments(&app, &reference).len(), 1);
    assert_no_violations(&app);
    app.cleanup().await;
}

/// Imports and tracks one new COD order of `store` at the courier; its reference.
async fn tracked_cod_order(app: &TestApp, store: &str) -> String {
    let order = app.sim.add_shop_order(store, "cod", "processing", true);
    let reference = format!("{store}-{}", order["number"].as_str().unwrap());
    app.run_ok(NewJob::for_store(JobKind::ImportOrders, store))
        .await;
    app.run_ok(NewJob::for_store(JobKind::FetchTracking, store))
        .await;
    reference
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_records_the_cod_payment_and_completes_the_shop_order_once() {
    let app = app_with_rules().await;
    let reference = tracked_cod_order(&app, "ALPH").await;
    app.run_ok(NewJob::for_order(
        JobKind::CreateInvoice,
        "ALPH",
        &reference,
    ))
    .await;
    assert!(
        erp_payments(&app, &reference).is_empty(),
        "COD is paid on delivery"
    );
    assert!(app.sim.set_courier_status(&reference, 41));
    app.run_ok(NewJob::for_order(
        JobKind::RefreshStatus,
        "ALPH",
        &reference,
    ))
    .await;
    app.wait_idle().await;
    let entries = erp_payments(&app, &reference);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["paid_to"], "Cash - SIM");
    let id = shop_id(&app, "ALPH", &reference);
    assert_eq!(
        app.sim.shop_status_writes("ALPH"),
        vec![(id, "completed".to_owned())]
    );
    let (state, result, _) = step(&app, &reference, "write_back").await.unwrap();
    assert_eq!(
        (state.as_str(), result.as_deref()),
        ("done", Some("completed"))
    );

    // The write-back delivered again: the shop is not written twice.
    let again = app
        .enqueue_one(NewJob {
            args: json!({"status": "delivered"}),
            ..NewJob::for_order(JobKind::WriteBack, "ALPH", &reference)
        })
        .await;
    assert_eq!(
        app.wait_final(again).await.last().unwrap().outcome,
        "skipped"
    );
    assert_eq!(app.sim.shop_status_writes("ALPH").len(), 1);
    assert_no_violations(&app);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_never_overwrites_a_newer_shop_edit() {
    let mut app = TestApp::spawn_with(two_stores(5), FAST_POLICIES, with_store_rules).await;
    // Everything but the write-back runs, so the shop can move first.
    let kinds: Vec<JobKind> = JobKind::ALL
        .into_iter()
        .filter(|k| !matches!(k, JobKind::WriteBack | JobKind::Noop))
        .collect();
    app.start_worker(&kinds);
    let reference = tracked_cod_order(&app, "BETA").await;
    assert!(app.sim.set_courier_status(&reference, 41));
    app.run_ok(NewJob::for_order(
        JobKind::RefreshStatus,
        "BETA",
        &reference,
    ))
    .await;
    // The merchant edits the order after the courier delivered it. Each edit
    // moves the shop's time (whole seconds) at least a second forward: edit
    // until it is surely past the courier's (microseconds).
    let id = shop_id(&app, "BETA", &reference);
    let courier_at = chrono::DateTime::parse_from_rfc3339(
        app.sim.courier_order_by_ref(&reference).unwrap()["last_update"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    loop {
        assert!(app.sim.set_shop_order_status("BETA", id, "on-hold"));
        let order = app
            .sim
            .shop_orders("BETA")
            .into_iter()
            .find(|o| o["id"] == id)
            .unwrap();
        let shop_at = chrono::NaiveDateTime::parse_from_str(
            order["date_modified_gmt"].as_str().unwrap(),
            "%Y-%m-%dT%H:%M:%S",
        )
        .unwrap()
        .and_utc();
        if shop_at > courier_at {
            break;
        }
    }
    app.start_worker(&[JobKind::WriteBack]);
    let write_back = ordersync::jobs::write_back::job_for("BETA", &reference, "delivered")
        .job_id
        .unwrap();
    let last = app.wait_final(write_back).await.pop().unwrap();
    assert_eq!(last.outcome, "skipped", "{last:?}");
    assert!(
        last.error_message
            .as_deref()
            .unwrap()
            .contains("the shop changed the order"),
        "{last:?}"
    );
    assert!(app.sim.shop_status_writes("BETA").is_empty());
    let order = app
        .sim
        .shop_orders("BETA")
        .into_iter()
        .find(|o| o["id"] == id)
        .unwrap();
    assert_eq!(order["status"], "on-hold", "the shop's change stands");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_of_an_order_never_invoiced_records_no_payment_and_leaves_nothing_waiting() {
    let app = app_with_rules().await;
    let reference = tracked_cod_order(&app, "ALPH").await;
    shop_moves_to(&app, "ALPH", &reference, "cancelled").await;
    assert!(app.sim.set_courier_status(&reference, 41));
    app.run_ok(NewJob::for_order(
        JobKind::RefreshStatus,
        "ALPH",
        &reference,
    ))
    .await;
    let payment = ordersync::jobs::record_payment::job_for("ALPH", &reference, "delivered")
        .job_id
        .unwrap();
    let last = app.wait_final(payment).await.pop().unwrap();
    assert_eq!(last.outcome, "skipped", "{last:?}");
    assert!(
        last.error_message
            .as_deref()
            .unwrap()
            .contains("has no invoice"),
        "{last:?}"
    );
    app.wait_idle().await;
    assert!(erp_payments(&app, &reference).is_empty());
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_create_that_died_mid_call_records_the_live_invoice_and_its_payment() {
    let app = app_with_rules().await;
    let reference = app
        .import_new_orders("BETA", 1, "kashier_card")
        .await
        .remove(0);
    let (order_id, total): (i64, String) =
        sqlx::query_as("SELECT id, total::text FROM orders WHERE reference = $1")
            .bind(&reference)
            .fetch_one(&app.db)
            .await
            .unwrap();
    // A first attempt claimed the order, made the live invoice in the ERP
    // and died inside the call, before settling; its claim has expired.
    sqlx::query(
        "INSERT INTO invoices (order_id, reference, state, job_id, claimed_at)
         VALUES ($1, $2, 'creating', $3, now() - interval '1 day')",
    )
    .bind(order_id)
    .bind(&reference)
    .bind(uuid::Uuid::now_v7())
    .execute(&app.db)
    .await
    .unwrap();
    let total: f64 = total.parse().unwrap();
    let made = ordersync::providers::erpnext::SalesInvoice {
        customer: "Customer".into(),
        posting_date: chrono::Utc::now().date_naive(),
        due_date: chrono::Utc::now().date_naive(),
        po_no: reference.clone(),
        items: vec![ordersync::providers::erpnext::InvoiceItem {
            item_code: "ORDER".into(),
            item_name: format!("Order {reference}"),
            qty: 1.0,
            rate: total,
        }],
        payments: Vec::new(),
        is_pos: 0,
        update_stock: 0,
        docstatus: 0,
        custom_payment_method: "Kashier Card".into(),
        woo_order_id: 1,
        woo_order_number: "1".into(),
        custom_delivery_date: None,
        custom_delivery_time: None,
    }
    .with_kind(ordersync::providers::erpnext::InvoiceKind::Live, total);
    let name = app
        .deps
        .accounts
        .erp()
        .unwrap()
        .create_invoice(&made)
        .await
        .unwrap();

    let runs = app
        .run_ok(NewJob::for_order(
            JobKind::CreateInvoice,
            "BETA",
            &reference,
        ))
        .await;
    let detail = runs.last().unwrap().detail.clone().unwrap();
    assert_eq!(detail["invoice"], name.as_str(), "{detail}");
    assert_eq!(detail["made_by_an_earlier_attempt"], true, "{detail}");
    let (state, kind, docstatus): (String, Option<String>, Option<i16>) =
        sqlx::query_as("SELECT state, kind, docstatus FROM invoices WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        (state.as_str(), kind.as_deref(), docstatus),
        ("created", Some("live"), Some(1))
    );
    assert_eq!(step(&app, &reference, "submit").await.unwrap().0, "done");
    // Its Kashier payment follows, once, as after a first attempt that lived.
    let payment = ordersync::jobs::record_payment::job_for("BETA", &reference, "invoice")
        .job_id
        .unwrap();
    let runs = app.wait_final(payment).await;
    assert_eq!(runs.last().unwrap().outcome, "succeeded", "{runs:#?}");
    assert_eq!(erp_payments(&app, &reference).len(), 1);
    assert_eq!(erp_invoices(&app, &reference).len(), 1);
    assert_no_violations(&app);
    app.cleanup().await;
}
