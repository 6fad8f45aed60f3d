//! `ledger::sms`: one text per (order, status), never sent twice.

use std::time::Duration;

use ordersync::ledger::sms::{self, SmsClaim};
use sqlx::PgPool;
use uuid::Uuid;

use super::imported;
use crate::helpers::TestDb;

const LEASE: Duration = Duration::from_secs(120);

async fn claim(db: &PgPool, order: i64, status: &str, job: Uuid) -> SmsClaim {
    sms::claim(
        db,
        order,
        status,
        "+201000000001",
        "Your order is on its way",
        job,
        LEASE,
    )
    .await
    .unwrap()
}

/// (state, provider message id) of the text for (`order`, `status`).
async fn row(db: &PgPool, order: i64, status: &str) -> Option<(String, Option<String>)> {
    sqlx::query_as(
        "SELECT state, provider_message_id FROM sms_messages WHERE order_id = $1 AND status = $2",
    )
    .bind(order)
    .bind(status)
    .fetch_optional(db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_is_claimed_once_per_order_and_status_and_sent_once() {
    let t = TestDb::create().await;
    let db = &t.db;
    let orders = imported(db, "BETA", &[1, 2]).await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());

    assert_eq!(
        claim(db, orders[0], "in_transit", first).await,
        SmsClaim::Acquired
    );
    assert_eq!(
        claim(db, orders[0], "in_transit", second).await,
        SmsClaim::HeldElsewhere
    );
    assert_eq!(
        claim(db, orders[0], "delivered", second).await,
        SmsClaim::Acquired,
        "another status is another text"
    );
    assert_eq!(
        claim(db, orders[1], "in_transit", second).await,
        SmsClaim::Acquired,
        "another order is another text"
    );

    sms::mark_sent(db, orders[0], "in_transit", "msg-1")
        .await
        .unwrap();
    assert_eq!(
        row(db, orders[0], "in_transit").await,
        Some(("sent".into(), Some("msg-1".into())))
    );
    let sent_at: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT sent_at FROM sms_messages WHERE order_id = $1 AND status = 'in_transit'",
    )
    .bind(orders[0])
    .fetch_one(db)
    .await
    .unwrap();
    assert!(sent_at.is_some());
    assert_eq!(
        claim(db, orders[0], "in_transit", second).await,
        SmsClaim::Sent
    );
    assert_eq!(
        claim(db, orders[0], "in_transit", first).await,
        SmsClaim::Sent
    );
    // Neither a late "unknown" nor a release undoes a sent text.
    sms::mark_unknown(db, orders[0], "in_transit")
        .await
        .unwrap();
    sms::release(db, orders[0], "in_transit", first)
        .await
        .unwrap();
    assert_eq!(
        claim(db, orders[0], "in_transit", second).await,
        SmsClaim::Sent
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_fate_is_unknown_is_never_repeated() {
    let t = TestDb::create().await;
    let db = &t.db;
    let order = imported(db, "BETA", &[1]).await[0];
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());

    // The same job finds its own claim still 'sending': its previous
    // delivery died mid-send.
    assert_eq!(
        claim(db, order, "in_transit", first).await,
        SmsClaim::Acquired
    );
    assert_eq!(
        claim(db, order, "in_transit", first).await,
        SmsClaim::Unknown
    );
    assert_eq!(
        row(db, order, "in_transit").await,
        Some(("unknown".into(), None))
    );
    assert_eq!(
        claim(db, order, "in_transit", second).await,
        SmsClaim::Unknown
    );
    sms::release(db, order, "in_transit", first).await.unwrap();
    assert_eq!(
        claim(db, order, "in_transit", second).await,
        SmsClaim::Unknown,
        "an unknown claim is not released"
    );

    // Another job's claim past its lease: its attempt died, the text may be out.
    assert_eq!(
        claim(db, order, "delivered", first).await,
        SmsClaim::Acquired
    );
    sqlx::query("UPDATE sms_messages SET claimed_at = now() - interval '119 seconds' WHERE status = 'delivered'")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(
        claim(db, order, "delivered", second).await,
        SmsClaim::HeldElsewhere,
        "within the lease"
    );
    sqlx::query("UPDATE sms_messages SET claimed_at = now() - interval '121 seconds' WHERE status = 'delivered'")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(
        claim(db, order, "delivered", second).await,
        SmsClaim::Unknown
    );
    assert_eq!(
        row(db, order, "delivered").await,
        Some(("unknown".into(), None))
    );

    // A send the provider surely refused is released by its holder only;
    // then a retry may send.
    assert_eq!(
        claim(db, order, "returned", first).await,
        SmsClaim::Acquired
    );
    sms::release(db, order, "returned", second).await.unwrap();
    assert_eq!(
        claim(db, order, "returned", second).await,
        SmsClaim::HeldElsewhere
    );
    sms::release(db, order, "returned", first).await.unwrap();
    assert_eq!(row(db, order, "returned").await, None);
    assert_eq!(
        claim(db, order, "returned", second).await,
        SmsClaim::Acquired
    );
}
