//! The `/_sim/` admin routes do what the handle does, and are never counted.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{boot, client, erp_post, invoice};
use crate::{Service, SimConfig, DEFAULT_HANG};

#[tokio::test]
async fn admin_routes_mirror_the_handle() {
    let sim = boot(SimConfig::demo(12)).await;
    let admin = |path: &str| format!("{}/_sim{path}", sim.base_url());
    let c = client();

    let res = c
        .post(admin("/knobs/erp"))
        .body(r#"{"latency_ms":5,"retry_after_secs":2}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let knobs = sim.knobs(Service::Erp);
    assert_eq!(
        (knobs.latency, knobs.retry_after_secs, knobs.hang),
        (Duration::from_millis(5), 2, DEFAULT_HANG)
    );
    let res = c
        .post(admin("/knobs/erp"))
        .body(r#"{"latency":5}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "typos are refused");
    assert_eq!(
        c.post(admin("/knobs/fax"))
            .body("{}")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );

    let res = c
        .post(admin("/fail_next/erp"))
        .body(r#"{"count":1,"status":429}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = erp_post(&sim, &invoice("ALPH-1001", "Cash"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (res.status(), res.headers()["retry-after"].to_str().unwrap()),
        (StatusCode::TOO_MANY_REQUESTS, "2")
    );
    assert_eq!(
        erp_post(&sim, &invoice("ALPH-1001", "Cash"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let invoices: Vec<Value> = c
        .get(admin("/invoices?po_no=ALPH-1001"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(invoices.len(), 1);

    c.post(admin("/revoke"))
        .body(r#"{"key":"demo-erp-key"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        erp_post(&sim, &invoice("ALPH-1002", "Cash"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    c.post(admin("/restore"))
        .body(r#"{"key":"demo-erp-key"}"#)
        .send()
        .await
        .unwrap();

    let reference = sim
        .shop_orders("ALPH")
        .iter()
        .map(|o| format!("ALPH-{}", o["id"]))
        .find(|r| sim.courier_order_by_ref(r).is_some())
        .unwrap();
    let res = c
        .post(admin("/courier/status"))
        .json(&json!({"external_order_id": reference, "status": 53}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], 53);
    assert_eq!(sim.courier_order_by_ref(&reference).unwrap()["status"], 53);
    let res = c
        .post(admin("/courier/status"))
        .json(&json!({"external_order_id": "ALPH-1", "status": 53}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    let res = c
        .post(admin("/shop/ALPH/orders/1001/status"))
        .json(&json!({"status": "on-hold"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["status"], "on-hold");
    let res = c
        .post(admin("/shop/ALPH/orders"))
        .json(&json!({"payment_method": "cod", "status": "processing", "at_courier": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);

    let stats: Value = c
        .get(admin("/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["requests"]["erp"], 3, "admin calls are not counted");
    assert_eq!(stats["requests"]["courier"], 0);
    assert_eq!(
        (stats["invoices"].as_u64(), stats["sms"].as_u64()),
        (Some(1), Some(0))
    );
    sim.shutdown().await;
}
