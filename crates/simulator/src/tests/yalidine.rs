//! Yalidine: id and token headers, `has_more` pages, filters by tracking and
//! order id, histories, quota headers and 429 past a quota, injected faults.

use reqwest::StatusCode;
use serde_json::Value;

use super::{boot, client, courier_get, PRIMARY_KEY};
use crate::{CourierApi, Service, SimConfig, SimHandle, YalidineQuota};

const TOKEN: &str = "demo-yalidine-token";

/// The demo's stores, BETA and GAMA moved to a Yalidine account `yal`.
fn with_yalidine(orders: usize) -> SimConfig {
    let mut config = SimConfig::demo(orders);
    for store in &mut config.stores {
        if store.code == "BETA" || store.code == "GAMA" {
            store.courier_account = "yal".into();
            store.courier_key = TOKEN.into();
            store.courier_api = CourierApi::Yalidine;
        }
    }
    config
}

async fn yalidine_get(
    sim: &SimHandle,
    id: &str,
    token: &str,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let res = client()
        .get(format!("{}{path}", sim.yalidine_url()))
        .header("X-API-ID", id)
        .header("X-API-TOKEN", token)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn pages_walk_the_accounts_parcels_until_has_more_is_false() {
    let mut config = with_yalidine(120);
    config.yalidine_quota = YalidineQuota {
        per_second: 1000,
        per_minute: 1000,
        ..YalidineQuota::default()
    };
    let sim = boot(config).await;
    let (status, headers, first) = yalidine_get(&sim, "yal", TOKEN, "/parcels/?page_size=7").await;
    assert_eq!(status, StatusCode::OK);
    let total = first["total_data"].as_u64().unwrap() as usize;
    assert!(total > 7, "{total}");
    assert_eq!(first["has_more"], true);
    assert_eq!(headers["x-second-quota-left"], "999");
    let mut seen = Vec::new();
    for page in 1.. {
        let (_, _, body) = yalidine_get(
            &sim,
            "yal",
            TOKEN,
            &format!("/parcels/?page_size=7&page={page}"),
        )
        .await;
        seen.extend(body["data"].as_array().unwrap().iter().cloned());
        if body["has_more"] == false {
            break;
        }
    }
    assert_eq!(seen.len(), total);
    for parcel in &seen {
        let reference = parcel["order_id"].as_str().unwrap();
        assert!(
            reference.starts_with("BETA-") || reference.starts_with("GAMA-"),
            "{reference}"
        );
        let (tracking, label) = sim.yalidine_parcel_by_ref(reference).unwrap();
        assert_eq!(parcel["tracking"], tracking.as_str());
        assert_eq!(parcel["last_status"], label.as_str());
    }

    let one = &seen[3];
    let tracking = one["tracking"].as_str().unwrap();
    let (_, _, by_tracking) = yalidine_get(
        &sim,
        "yal",
        TOKEN,
        &format!("/parcels/?tracking={tracking}"),
    )
    .await;
    assert_eq!(by_tracking["total_data"], 1);
    assert_eq!(by_tracking["data"][0], *one);
    let (_, _, by_order) = yalidine_get(
        &sim,
        "yal",
        TOKEN,
        &format!("/parcels/?order_id={}", one["order_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(by_order["data"][0], *one);
    let (_, _, none) = yalidine_get(&sim, "yal", TOKEN, "/parcels/?tracking=yal-NOPE").await;
    assert_eq!(
        (none["total_data"].as_u64(), none["has_more"].as_bool()),
        (Some(0), Some(false))
    );

    assert!(sim.set_courier_status(one["order_id"].as_str().unwrap(), 53));
    let (_, _, history) = yalidine_get(
        &sim,
        "yal",
        TOKEN,
        &format!("/histories/?tracking={tracking}"),
    )
    .await;
    let last = history["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "Tentative échouée");
    assert_eq!(last["reason"], "Client absent");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_wrong_id_or_token_or_a_maystro_key_is_refused() {
    let sim = boot(with_yalidine(12)).await;
    for (id, token) in [("yal", "nope"), ("other", TOKEN), ("primary", PRIMARY_KEY)] {
        let (status, _, body) = yalidine_get(&sim, id, token, "/parcels/").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{id}");
        assert_eq!(body["error"]["code"], 401);
    }
    // And the Yalidine token is no Maystro key.
    assert_eq!(
        courier_get(&sim, TOKEN, "/stores/orders/").await.0,
        StatusCode::UNAUTHORIZED
    );
    sim.revoke_key(TOKEN);
    assert_eq!(
        yalidine_get(&sim, "yal", TOKEN, "/parcels/").await.0,
        StatusCode::UNAUTHORIZED
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn past_its_quota_an_account_gets_429_with_retry_after() {
    let mut config = with_yalidine(12);
    config.yalidine_quota = YalidineQuota {
        per_second: 1000,
        per_minute: 2,
        ..YalidineQuota::default()
    };
    let sim = boot(config).await;
    let (_, headers, _) = yalidine_get(&sim, "yal", TOKEN, "/parcels/").await;
    assert_eq!(headers["x-minute-quota-left"], "1");
    let (_, headers, _) = yalidine_get(&sim, "yal", TOKEN, "/parcels/").await;
    assert_eq!(headers["x-minute-quota-left"], "0");
    let (status, headers, body) = yalidine_get(&sim, "yal", TOKEN, "/parcels/").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(body["error"]["code"], 429);
    sim.shutdown().await;
}

#[tokio::test]
async fn injected_faults_answer_in_yalidines_shape_and_spare_maystro() {
    let sim = boot(with_yalidine(12)).await;
    sim.fail_next(Service::Yalidine, 1, 429, Some(9));
    sim.fail_next(Service::Yalidine, 1, 503, None);
    let (status, headers, body) = yalidine_get(&sim, "yal", TOKEN, "/parcels/").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers["retry-after"], "9");
    assert_eq!(body["error"]["code"], 429);
    let (status, _, _) = yalidine_get(&sim, "yal", TOKEN, "/parcels/").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        yalidine_get(&sim, "yal", TOKEN, "/parcels/").await.0,
        StatusCode::OK
    );
    assert_eq!(sim.request_count(Service::Yalidine), 3);
    assert_eq!(sim.request_count(Service::Courier), 0);
    sim.shutdown().await;
}
