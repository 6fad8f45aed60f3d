//! Injected faults: `fail_next` queues, rate limits in each service's shape,
//! random error rates, latency and hangs (and shutdown cutting them).

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::Value;

use super::{boot, client, courier_get, erp_post, invoice, woo, ALPH_KEY};
use crate::{Knobs, Service, SimConfig};

#[tokio::test]
async fn fail_next_fails_exactly_that_many_requests_then_succeeds() {
    let sim = boot(SimConfig::demo(12)).await;
    sim.fail_next(Service::Erp, 2, 503, None);
    for _ in 0..2 {
        let res = erp_post(&sim, &invoice("DELT-1001", "Cash"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(res.json::<Value>().await.unwrap()["exc_type"].is_string());
    }
    assert_eq!(
        erp_post(&sim, &invoice("DELT-1001", "Cash"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(sim.request_count(Service::Erp), 3);
    assert_eq!(
        sim.invoice_count("DELT-1001"),
        1,
        "failed attempts create nothing"
    );

    sim.fail_next(Service::Erp, 1, 417, None);
    let body: Value = erp_post(&sim, &invoice("DELT-1002", "Cash"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["exc_type"], "TimestampMismatchError");
    // Other services are untouched by the ERP queue.
    assert_eq!(
        courier_get(&sim, ALPH_KEY, "/stores/orders/").await.0,
        StatusCode::OK
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn rate_limits_carry_retry_after_in_each_services_shape() {
    let sim = boot(SimConfig::demo(12)).await;
    sim.set_knobs(
        Service::Erp,
        Knobs {
            rate_limit_rate: 1.0,
            retry_after_secs: 7,
            ..Knobs::default()
        },
    );
    let res = erp_post(&sim, &invoice("EPSI-1001", "Cash"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "7");
    assert_eq!(
        res.json::<Value>().await.unwrap()["exc_type"],
        "TooManyRequestsError"
    );

    sim.fail_next(Service::Courier, 1, 429, Some(3));
    let res = client()
        .get(format!("{}/stores/orders/", sim.courier_url()))
        .header("Authorization", format!("Token {ALPH_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(res.headers()["retry-after"], "3");
    assert!(res.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("throttled"));
    sim.shutdown().await;
}

#[tokio::test]
async fn error_rate_fails_about_that_share_of_requests() {
    let sim = boot(SimConfig::demo(12)).await;
    sim.set_knobs(
        Service::Shop,
        Knobs {
            error_rate: 0.5,
            ..Knobs::default()
        },
    );
    let mut failed = 0;
    for _ in 0..200 {
        let status = woo(&sim, "ALPH", "/orders/1001")
            .send()
            .await
            .unwrap()
            .status();
        if status.is_server_error() {
            failed += 1;
        } else {
            assert_eq!(status, StatusCode::OK);
        }
    }
    assert!((60..=140).contains(&failed), "{failed} of 200 failed");
    assert_eq!(sim.request_count(Service::Shop), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn latency_and_hangs_delay_answers_and_shutdown_cuts_hangs() {
    let sim = boot(SimConfig::demo(12)).await;
    sim.set_knobs(
        Service::Courier,
        Knobs {
            latency: Duration::from_millis(40),
            ..Knobs::default()
        },
    );
    let t = Instant::now();
    assert_eq!(
        courier_get(&sim, ALPH_KEY, "/stores/orders/").await.0,
        StatusCode::OK
    );
    assert!(t.elapsed() >= Duration::from_millis(40));

    sim.set_knobs(
        Service::Courier,
        Knobs {
            timeout_rate: 1.0,
            ..Knobs::default()
        },
    );
    let impatient = Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let err = impatient
        .get(format!("{}/stores/orders/", sim.courier_url()))
        .header("Authorization", format!("Token {ALPH_KEY}"))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");

    // A 30 s hang in flight must not hold shutdown.
    let url = format!("{}/stores/orders/", sim.courier_url());
    let pending = tokio::spawn(async move {
        client()
            .get(url)
            .header("Authorization", format!("Token {ALPH_KEY}"))
            .send()
            .await
    });
    while sim.request_count(Service::Courier) < 3 {
        tokio::task::yield_now().await;
    }
    let t = Instant::now();
    sim.shutdown().await;
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        t.elapsed()
    );
    let _ = pending.await;
}
