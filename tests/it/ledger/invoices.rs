//! `ledger::invoices`: the claim that makes one ERP invoice per order.

use std::time::Duration;

use ordersync::domain::{JobKind, Source};
use ordersync::ledger::invoices::{self, InvoiceClaim};
use sqlx::PgPool;
use uuid::Uuid;

use super::{dead_letter, imported, job};
use crate::helpers::TestDb;

const LEASE: Duration = Duration::from_secs(120);

async fn claim(db: &PgPool, order: i64, job: Uuid) -> InvoiceClaim {
    let reference = format!("order-{order}");
    invoices::claim(db, order, &reference, job, LEASE)
        .await
        .unwrap()
}

/// (state, holder, ERP name) of `order`'s invoice row.
async fn row(db: &PgPool, order: i64) -> Option<(String, Uuid, Option<String>)> {
    sqlx::query_as("SELECT state, job_id, erp_name FROM invoices WHERE order_id = $1")
        .bind(order)
        .fetch_optional(db)
        .await
        .unwrap()
}

const ACQUIRED: InvoiceClaim = InvoiceClaim::Acquired { taken_over: false };
const TAKEN_OVER: InvoiceClaim = InvoiceClaim::Acquired { taken_over: true };

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_holds_an_invoice_claim_until_it_is_settled() {
    let t = TestDb::create().await;
    let db = &t.db;
    let orders = imported(db, "ALPH", &[1, 2]).await;
    let (order, found) = (orders[0], orders[1]);
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());

    assert_eq!(claim(db, order, first).await, ACQUIRED);
    assert_eq!(claim(db, order, second).await, InvoiceClaim::HeldElsewhere);
    // The holder's own retry takes its claim back, and looks the ERP up first.
    assert_eq!(claim(db, order, first).await, TAKEN_OVER);
    assert_eq!(row(db, order).await, Some(("creating".into(), first, None)));

    // Only the holder settles or releases.
    invoices::settle(db, order, second, "SINV-X", true)
        .await
        .unwrap();
    invoices::release(db, order, second).await.unwrap();
    assert_eq!(row(db, order).await, Some(("creating".into(), first, None)));
    invoices::settle(db, order, first, "SINV-1", true)
        .await
        .unwrap();
    assert_eq!(
        row(db, order).await,
        Some(("created".into(), first, Some("SINV-1".into())))
    );
    let settled = InvoiceClaim::Settled {
        erp_name: "SINV-1".into(),
    };
    assert_eq!(claim(db, order, second).await, settled);
    assert_eq!(claim(db, order, first).await, settled);
    // A settled claim is not released, nor settled again.
    invoices::release(db, order, first).await.unwrap();
    invoices::settle(db, order, first, "SINV-2", false)
        .await
        .unwrap();
    assert_eq!(claim(db, order, second).await, settled);

    // Found already in the ERP: settled as existing.
    assert_eq!(claim(db, found, second).await, ACQUIRED);
    invoices::settle(db, found, second, "SINV-OLD", false)
        .await
        .unwrap();
    assert_eq!(
        row(db, found).await,
        Some(("existing".into(), second, Some("SINV-OLD".into())))
    );
    assert_eq!(
        claim(db, found, first).await,
        InvoiceClaim::Settled {
            erp_name: "SINV-OLD".into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_taken_over_after_its_lease_or_once_its_holder_failed_for_good() {
    let t = TestDb::create().await;
    let db = &t.db;
    let orders = imported(db, "ALPH", &[1, 2, 3]).await;

    // The holder's worker died: after the lease, another job takes over.
    let (dead, next) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(claim(db, orders[0], dead).await, ACQUIRED);
    sqlx::query("UPDATE invoices SET claimed_at = now() - interval '119 seconds'")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(
        claim(db, orders[0], next).await,
        InvoiceClaim::HeldElsewhere,
        "within the lease"
    );
    sqlx::query("UPDATE invoices SET claimed_at = now() - interval '121 seconds'")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(claim(db, orders[0], next).await, TAKEN_OVER);
    assert_eq!(row(db, orders[0]).await.unwrap().1, next);
    assert_eq!(
        claim(db, orders[0], dead).await,
        InvoiceClaim::HeldElsewhere,
        "the new claim is live"
    );

    // The holder failed for good (its dead letter exists): its replay takes over at once.
    let holder = job(
        db,
        JobKind::CreateInvoice,
        "ALPH",
        Some("ALPH-2"),
        Source::Cli,
    )
    .await;
    let replay = Uuid::now_v7();
    assert_eq!(claim(db, orders[1], holder).await, ACQUIRED);
    assert_eq!(
        claim(db, orders[1], replay).await,
        InvoiceClaim::HeldElsewhere
    );
    let letter = dead_letter(holder, JobKind::CreateInvoice, "ALPH", "ERP rejected it");
    ordersync::ledger::dead_letters::insert(db, &letter)
        .await
        .unwrap();
    assert_eq!(claim(db, orders[1], replay).await, TAKEN_OVER);

    // A released claim is gone: the next job acquires afresh.
    let (rejected, retry) = (Uuid::now_v7(), Uuid::now_v7());
    assert_eq!(claim(db, orders[2], rejected).await, ACQUIRED);
    invoices::release(db, orders[2], rejected).await.unwrap();
    assert_eq!(row(db, orders[2]).await, None);
    assert_eq!(claim(db, orders[2], retry).await, ACQUIRED);
}
