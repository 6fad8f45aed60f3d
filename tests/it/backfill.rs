//! Backfills: bulk lane, and a summary that equals the ledger.

use ordersync::domain::JobKind;
use ordersync::providers::erpnext::{InvoiceItem, InvoicePayment, SalesInvoice};
use ordersync::queue::NewJob;

use crate::helpers::{two_stores, TestApp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invoice_backfill_reports_what_the_ledger_holds() {
    let mut app = TestApp::spawn(two_stores(60)).await;
    app.start_worker(&[]);
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "BETA"))
        .await;
    app.wait_final(id).await;
    let completed: Vec<String> = sqlx::query_scalar("SELECT reference FROM orders WHERE store = 'BETA' AND shop_status = 'completed' ORDER BY id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert!(
        completed.len() >= 4,
        "the seed has completed orders: {}",
        completed.len()
    );
    // The old cron job already invoiced some of them.
    let erp = app.deps.accounts.erp().unwrap();
    let today = chrono::Utc::now().date_naive();
    for reference in completed.iter().take(3) {
        let invoice = SalesInvoice {
            customer: "Walk-in Customer".into(),
            posting_date: today,
            due_date: today,
            po_no: reference.clone(),
            items: vec![InvoiceItem {
                item_code: "X".into(),
                item_name: "X".into(),
                qty: 1.0,
                rate: 1.0,
            }],
            payments: vec![InvoicePayment {
                mode_of_payment: "Cash".into(),
                amount: 1.0,
            }],
            // As the old cron job made them: a paid POS draft.
            is_pos: 1,
            update_stock: 0,
            docstatus: 0,
            custom_payment_method: "Cash".into(),
            woo_order_id: 0,
            woo_order_number: reference.clone(),
            custom_delivery_date: None,
            custom_delivery_time: None,
        };
        erp.create_invoice(&invoice).await.unwrap();
    }
    let out = app.cli(&[
        "backfill",
        "invoices",
        "--store",
        "BETA",
        "--since",
        "2000-01-01",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT last.outcome, count(*) FROM jobs j
         JOIN LATERAL (SELECT outcome FROM job_runs r WHERE r.job_id = j.job_id ORDER BY run DESC LIMIT 1) last ON true
         WHERE j.source = 'backfill' GROUP BY 1",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let count = |o: &str| {
        rows.iter()
            .find(|(k, _)| k == o)
            .map(|(_, n)| *n)
            .unwrap_or(0)
    };
    let expected = format!(
        "created {}, skipped {}, failed {}",
        count("succeeded"),
        count("skipped"),
        count("failed")
    );
    assert!(stdout.contains(&expected), "{stdout} vs ledger {rows:?}");
    assert_eq!(count("skipped"), 3, "{rows:?}");
    assert_eq!(count("succeeded") as usize + 3, completed.len());
    for reference in &completed {
        assert_eq!(app.sim.invoice_count(reference), 1, "{reference}");
    }
    let bad = app.cli(&[
        "backfill",
        "invoices",
        "--store",
        "BETA",
        "--since",
        "yesterday",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("--since 'yesterday' is not a date (YYYY-MM-DD)"));
    app.cleanup().await;
}
