//! `ledger::webhooks`: a WooCommerce redelivery is recognised by (store,
//! order, date_modified).

use chrono::{DateTime, Utc};
use ordersync::ledger::webhooks;

use crate::helpers::TestDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_is_first_once_until_it_is_forgotten() {
    let t = TestDb::create().await;
    let db = &t.db;
    let first = |store: &'static str, order: i64, modified: DateTime<Utc>, topic: &'static str| {
        let db = db.clone();
        async move {
            webhooks::first_delivery(&db, store, order, modified, topic)
                .await
                .unwrap()
        }
    };
    let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
    let (monday, tuesday) = (at("2024-01-01T10:00:00Z"), at("2024-01-02T10:00:00Z"));
    assert!(first("ALPH", 10, monday, "order.updated").await);
    assert!(
        !first("ALPH", 10, monday, "order.updated").await,
        "a redelivery"
    );
    assert!(
        !first("ALPH", 10, monday, "order.created").await,
        "the same change under another topic"
    );
    assert!(
        first("ALPH", 10, tuesday, "order.updated").await,
        "a new change"
    );
    assert!(
        first("ALPH", 11, monday, "order.updated").await,
        "another order"
    );
    assert!(
        first("BETA", 10, monday, "order.updated").await,
        "another store"
    );

    // Processing failed: forget it, so WooCommerce's retry is processed.
    webhooks::forget(db, "ALPH", 10, monday).await.unwrap();
    assert!(first("ALPH", 10, monday, "order.updated").await);
    assert!(
        !first("ALPH", 10, tuesday, "order.updated").await,
        "only that change was forgotten"
    );
    assert!(!first("BETA", 10, monday, "order.updated").await);
}
