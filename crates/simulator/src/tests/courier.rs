//! Maystro: one account per key, page-number pagination, DRF errors, and
//! timelines that advance with `status_step`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{boot, client, courier_get, ALPH_KEY, PRIMARY_KEY};
use crate::state::ALL_STATUS_CODES;
use crate::{Service, SimConfig, SimHandle, DEFAULT_COURIER_PAGE_SIZE};

/// Upper bound for polling loops; tests normally finish far sooner.
const DEADLINE: Duration = Duration::from_secs(3);

/// Follows `next` links from page 1 and returns every order seen.
async fn walk_courier(sim: &SimHandle, key: &str) -> Vec<Value> {
    let mut url = format!("{}/stores/orders/", sim.courier_url());
    let mut seen = Vec::new();
    loop {
        let body: Value = client()
            .get(&url)
            .header("Authorization", format!("Token {key}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(body["list"]["results"].as_array().unwrap().iter().cloned());
        match body["list"]["next"].as_str() {
            Some(next) => url = next.to_string(),
            None => return seen,
        }
    }
}

#[tokio::test]
async fn alph_orders_are_visible_only_with_alph_key() {
    let sim = boot(SimConfig::demo(120)).await;
    let alph = walk_courier(&sim, ALPH_KEY).await;
    let primary = walk_courier(&sim, PRIMARY_KEY).await;
    assert!(!alph.is_empty() && !primary.is_empty());
    assert!(alph.iter().all(|o| o["external_order_id"]
        .as_str()
        .unwrap()
        .starts_with("ALPH-")));
    assert!(primary.iter().all(|o| !o["external_order_id"]
        .as_str()
        .unwrap()
        .starts_with("ALPH-")));

    let alph_id = alph[0]["id"].as_i64().unwrap();
    let (status, body) =
        courier_get(&sim, PRIMARY_KEY, &format!("/stores/orders/{alph_id}/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "Not found."}));
    let (status, body) = courier_get(&sim, ALPH_KEY, &format!("/stores/orders/{alph_id}/")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], alph_id);
    assert_eq!(
        body,
        sim.courier_order_by_ref(body["external_order_id"].as_str().unwrap())
            .unwrap()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn courier_next_links_walk_every_order_exactly_once() {
    let sim = boot(SimConfig::demo(300)).await;
    let (_, first) = courier_get(&sim, PRIMARY_KEY, "/stores/orders/").await;
    let count = first["list"]["count"].as_u64().unwrap() as usize;
    assert_eq!(
        first["list"]["results"].as_array().unwrap().len(),
        DEFAULT_COURIER_PAGE_SIZE
    );
    assert_eq!(first["list"]["previous"], Value::Null);

    let seen = walk_courier(&sim, PRIMARY_KEY).await;
    let ids: Vec<i64> = seen.iter().map(|o| o["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), count);
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        count,
        "no order twice"
    );
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ordered by id");
    let shop_total: usize = ["BETA", "GAMA", "DELT", "EPSI", "ZETA"]
        .iter()
        .map(|s| sim.shop_orders(s).len())
        .sum();
    let at_courier = ["BETA", "GAMA", "DELT", "EPSI", "ZETA"]
        .iter()
        .flat_map(|s| {
            sim.shop_orders(s)
                .into_iter()
                .map(move |o| format!("{s}-{}", o["id"]))
        })
        .filter(|r| sim.courier_order_by_ref(r).is_some())
        .count();
    assert_eq!(count, at_courier);
    assert!(
        count > shop_total * 8 / 10 && count < shop_total,
        "coverage about 0.9: {count} of {shop_total}"
    );

    let (_, page2) = courier_get(&sim, PRIMARY_KEY, "/stores/orders/?page=2").await;
    assert!(
        page2["list"]["previous"]
            .as_str()
            .unwrap()
            .ends_with("/stores/orders/"),
        "DRF drops page=1"
    );
    let pages = count.div_ceil(DEFAULT_COURIER_PAGE_SIZE);
    let (status, body) = courier_get(
        &sim,
        PRIMARY_KEY,
        &format!("/stores/orders/?page={}", pages + 1),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "Invalid page."}));
    sim.shutdown().await;
}

#[tokio::test]
async fn all_eighteen_status_codes_are_served_in_demo_data() {
    let sim = boot(SimConfig::demo(600)).await;
    let mut codes: HashSet<i64> = HashSet::new();
    for key in [ALPH_KEY, PRIMARY_KEY] {
        codes.extend(
            walk_courier(&sim, key)
                .await
                .iter()
                .map(|o| o["status"].as_i64().unwrap()),
        );
    }
    let expected: HashSet<i64> = ALL_STATUS_CODES.into_iter().collect();
    assert_eq!(codes, expected);
    sim.shutdown().await;
}

#[tokio::test]
async fn courier_rejects_missing_wrong_and_revoked_tokens() {
    let sim = boot(SimConfig::demo(60)).await;
    let res = client()
        .get(format!("{}/stores/orders/", sim.courier_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = courier_get(&sim, "nope", "/stores/orders/").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid token."})
        )
    );

    sim.revoke_key(PRIMARY_KEY);
    let (status, body) = courier_get(&sim, PRIMARY_KEY, "/stores/orders/").await;
    assert_eq!(
        (status, body),
        (
            StatusCode::UNAUTHORIZED,
            json!({"detail": "Invalid token."})
        )
    );
    assert_eq!(
        courier_get(&sim, ALPH_KEY, "/stores/orders/").await.0,
        StatusCode::OK
    );
    sim.restore_key(PRIMARY_KEY);
    assert_eq!(
        courier_get(&sim, PRIMARY_KEY, "/stores/orders/").await.0,
        StatusCode::OK
    );
    assert_eq!(sim.request_count(Service::Courier), 5);
    sim.shutdown().await;
}

#[tokio::test]
async fn courier_status_advances_with_status_step_and_pins_hold() {
    let config = SimConfig {
        status_step: Duration::from_millis(15),
        ..SimConfig::demo(12)
    };
    let sim = boot(config).await;
    let order = sim.add_shop_order("BETA", "cod", "processing", true);
    let reference = format!("BETA-{}", order["number"].as_str().unwrap());
    let first = sim.courier_order_by_ref(&reference).unwrap();
    let id = first["id"].as_i64().unwrap();
    let path = format!("/stores/orders/{id}/");
    let started = Instant::now();
    let moved = loop {
        let (_, now) = courier_get(&sim, PRIMARY_KEY, &path).await;
        if now["status"] != 4 {
            break now;
        }
        assert!(started.elapsed() < DEADLINE, "status never left 4");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_ne!(moved["last_update"], first["last_update"]);

    assert!(sim.set_courier_status(&reference, 42));
    let pinned_at = Instant::now();
    while pinned_at.elapsed() < Duration::from_millis(60) {
        assert_eq!(courier_get(&sim, PRIMARY_KEY, &path).await.1["status"], 42);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!sim.set_courier_status("BETA-424242", 41));
    sim.shutdown().await;
}
