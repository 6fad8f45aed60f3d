//! WooCommerce: paging headers, exclusive `modified_after`, per-store
//! credentials, and orders added while running.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{boot, client, woo};
use crate::SimConfig;

#[tokio::test]
async fn woo_lists_with_paging_headers_and_exclusive_modified_after() {
    let sim = boot(SimConfig::demo(60)).await;
    let res = woo(&sim, "ALPH", "/orders?per_page=4&orderby=id&order=asc")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-wp-total"], "10");
    assert_eq!(res.headers()["x-wp-totalpages"], "3");
    let link = res.headers()["link"].to_str().unwrap().to_string();
    assert!(
        link.contains("page=2") && link.contains("rel=\"next\"") && !link.contains("prev"),
        "{link}"
    );
    let page: Vec<Value> = res.json().await.unwrap();
    let ids: Vec<i64> = page.iter().map(|o| o["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![1001, 1002, 1003, 1004]);
    assert_eq!(page[0]["number"], "1001");
    assert!(page[0]["total"].as_str().unwrap().ends_with(".00"));

    // Exclusive: nothing is modified after the newest date_modified.
    let all = sim.shop_orders("ALPH");
    let newest = all
        .iter()
        .map(|o| o["date_modified"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    let list = |after: String| {
        let sim = sim.clone();
        async move {
            let res = woo(&sim, "ALPH", "/orders")
                .query(&[("modified_after", after)])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            res.json::<Vec<Value>>().await.unwrap()
        }
    };
    assert!(list(newest.clone()).await.is_empty());
    assert!(sim.set_shop_order_status("ALPH", 1003, "completed"));
    let changed = list(newest.clone()).await;
    assert_eq!(changed.len(), 1);
    assert_eq!(
        (changed[0]["id"].as_i64(), changed[0]["status"].as_str()),
        (Some(1003), Some("completed"))
    );
    assert!(changed[0]["date_modified"].as_str().unwrap() > newest.as_str());
    // The same instant in UTC with an explicit offset finds the same order.
    let gmt = all
        .iter()
        .find(|o| o["date_modified"] == newest.as_str())
        .unwrap()["date_modified_gmt"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(list(format!("{gmt}Z")).await.len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn woo_checks_credentials_params_and_ids() {
    let sim = boot(SimConfig::demo(60)).await;
    let url = format!("{}/wp-json/wc/v3/orders", sim.shop_url("BETA"));
    let by_query = client()
        .get(&url)
        .query(&[
            ("consumer_key", "ck_demo_beta"),
            ("consumer_secret", "cs_demo_beta"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(by_query.status(), StatusCode::OK);

    let wrong = client()
        .get(&url)
        .basic_auth("ck_demo_alph", Some("cs_demo_alph"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": "woocommerce_rest_cannot_view", "message": "Sorry, you cannot list resources.", "data": {"status": 401}})
    );
    sim.revoke_key("ck_demo_beta");
    assert_eq!(
        woo(&sim, "BETA", "/orders").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    sim.restore_key("ck_demo_beta");

    let res = woo(&sim, "BETA", "/orders?per_page=101")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "rest_invalid_param"
    );

    let res = woo(&sim, "BETA", "/orders/999999").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        res.json::<Value>().await.unwrap()["code"],
        "woocommerce_rest_shop_order_invalid_id"
    );
    let res = woo(&sim, "BETA", "/orders/1001").send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["id"], 1001);
    assert_eq!(
        woo(&sim, "NOPE", "/orders").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    let res = woo(
        &sim,
        "BETA",
        "/orders?status=completed,cancelled&per_page=100",
    )
    .send()
    .await
    .unwrap();
    let orders: Vec<Value> = res.json().await.unwrap();
    assert!(orders
        .iter()
        .all(|o| ["completed", "cancelled"].contains(&o["status"].as_str().unwrap())));
    sim.shutdown().await;
}

#[tokio::test]
async fn add_shop_order_creates_woo_and_courier_orders() {
    let sim = boot(SimConfig::demo(12)).await;
    let before = sim.shop_orders("ZETA").len();
    let order = sim.add_shop_order("ZETA", "kashier_wallet", "pending", true);
    assert_eq!(order["payment_method"], "kashier_wallet");
    assert_eq!(order["status"], "pending");
    assert_eq!(sim.shop_orders("ZETA").len(), before + 1);
    let reference = format!("ZETA-{}", order["id"]);
    let courier = sim.courier_order_by_ref(&reference).unwrap();
    assert_eq!(courier["status"], 4);
    assert_eq!(courier["customer_phone"], order["billing"]["phone"]);

    let local = sim.add_shop_order("ZETA", "cod", "processing", false);
    assert!(sim
        .courier_order_by_ref(&format!("ZETA-{}", local["id"]))
        .is_none());
    assert_eq!(
        sim.add_shop_order("NOPE", "cod", "processing", false),
        Value::Null
    );
    sim.shutdown().await;
}
