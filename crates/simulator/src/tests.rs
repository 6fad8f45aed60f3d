//! The simulator over real HTTP: each test starts its own server on port 0.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use super::*;

const ALPH_KEY: &str = "demo-maystro-alph-token";
const PRIMARY_KEY: &str = "demo-maystro-primary-token";
/// Upper bound for polling loops; tests normally finish far sooner.
const DEADLINE: Duration = Duration::from_secs(3);

async fn boot(config: SimConfig) -> SimHandle {
    start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn courier_get(sim: &SimHandle, key: &str, path: &str) -> (StatusCode, Value) {
    let res = client()
        .get(format!("{}{path}", sim.courier_url()))
        .header("Authorization", format!("Token {key}"))
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

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

fn woo(sim: &SimHandle, store: &str, path: &str) -> reqwest::RequestBuilder {
    let lower = store.to_lowercase();
    client()
        .get(format!("{}/wp-json/wc/v3{path}", sim.shop_url(store)))
        .basic_auth(format!("ck_demo_{lower}"), Some(format!("cs_demo_{lower}")))
}

fn erp_post(sim: &SimHandle, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/api/resource/Sales%20Invoice", sim.erp_url()))
        .header("Authorization", "token demo-erp-key:demo-erp-secret")
        .json(body)
}

fn invoice(po_no: &str, mode: &str) -> Value {
    json!({
        "customer": "Amine Benali", "posting_date": "2026-11-20", "set_posting_time": 1,
        "due_date": "2026-11-20", "items": [{"item_code": "TSH-001", "qty": 2, "rate": 1800}],
        "docstatus": 0, "po_no": po_no, "is_pos": 1,
        "payments": [{"mode_of_payment": mode, "amount": 3600}],
    })
}

/// `_server_messages` is a JSON string of a list of JSON strings.
fn server_message(body: &Value) -> String {
    let outer: Vec<String> =
        serde_json::from_str(body["_server_messages"].as_str().unwrap()).unwrap();
    let inner: Value = serde_json::from_str(&outer[0]).unwrap();
    inner["message"].as_str().unwrap().to_string()
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
    let expected: HashSet<i64> = state::ALL_STATUS_CODES.into_iter().collect();
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
async fn erp_rejects_lowercase_cash_and_counts_duplicate_invoices() {
    let sim = boot(SimConfig::demo(12)).await;
    let res = erp_post(&sim, &invoice("ALPH-1001", "cash"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::EXPECTATION_FAILED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["exc_type"], "LinkValidationError");
    assert!(body["exception"]
        .as_str()
        .unwrap()
        .contains("Could not find Mode of Payment: cash"));
    assert!(server_message(&body).contains("Could not find Mode of Payment: cash"));
    let exc: Vec<String> = serde_json::from_str(body["exc"].as_str().unwrap()).unwrap();
    assert!(exc[0].contains("Traceback"));
    assert_eq!(sim.invoice_count("ALPH-1001"), 0);

    let mut no_customer = invoice("ALPH-1001", "Cash");
    no_customer["customer"] = json!("");
    let body: Value = erp_post(&sim, &no_customer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["exc_type"], "MandatoryError");

    let mut names = Vec::new();
    for _ in 0..2 {
        let res = erp_post(&sim, &invoice("ALPH-1001", "Cash"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["data"]["docstatus"], 0);
        assert_eq!(
            doc["data"]["posting_date"], "2026-11-20",
            "set_posting_time keeps the date"
        );
        names.push(doc["data"]["name"].as_str().unwrap().to_string());
    }
    assert!(
        names[0].starts_with("ACC-SINV-") && names[0] < names[1],
        "{names:?}"
    );
    assert_eq!(sim.invoice_count("ALPH-1001"), 2);
    assert_eq!(sim.invoices().len(), 2);

    let res = client()
        .get(format!("{}/api/resource/Sales Invoice", sim.erp_url()))
        .header("Authorization", "token demo-erp-key:demo-erp-secret")
        .query(&[
            ("filters", r#"[["po_no","=","ALPH-1001"]]"#),
            ("fields", r#"["name","po_no"]"#),
            ("limit_page_length", "10"),
        ])
        .send()
        .await
        .unwrap();
    let data = res.json::<Value>().await.unwrap()["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(data.len(), 2);
    assert_eq!(
        data[0].as_object().unwrap().len(),
        2,
        "only requested fields"
    );
    assert_eq!(data[0]["po_no"], "ALPH-1001");

    let res = client()
        .get(format!("{}/api/resource/Sales%20Invoice", sim.erp_url()))
        .header("Authorization", "token demo-erp-key:wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.json::<Value>().await.unwrap()["exc_type"],
        "AuthenticationError"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn erp_with_unique_po_no_answers_409_on_the_second_invoice() {
    let config = SimConfig {
        erp_unique_po_no: true,
        ..SimConfig::demo(12)
    };
    let sim = boot(config).await;
    assert_eq!(
        erp_post(&sim, &invoice("BETA-1001", "Instapay"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let res = erp_post(&sim, &invoice("BETA-1001", "Instapay"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(
        res.json::<Value>().await.unwrap()["exc_type"],
        "DuplicateEntryError"
    );
    assert_eq!(sim.invoice_count("BETA-1001"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn erp_submits_before_cancel_and_refuses_draft_to_cancelled() {
    let sim = boot(SimConfig::demo(12)).await;
    let doc: Value = erp_post(&sim, &invoice("GAMA-1001", "Kashier Card"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{}/api/resource/Sales%20Invoice/{}",
        sim.erp_url(),
        doc["data"]["name"].as_str().unwrap()
    );
    let put = |docstatus: i64| {
        client()
            .put(&url)
            .header("Authorization", "token demo-erp-key:demo-erp-secret")
            .json(&json!({ "docstatus": docstatus }))
            .send()
    };
    let res = put(2).await.unwrap();
    assert_eq!(res.status(), StatusCode::EXPECTATION_FAILED);
    assert_eq!(
        res.json::<Value>().await.unwrap()["exc_type"],
        "DocstatusTransitionError"
    );
    assert_eq!(
        put(1).await.unwrap().json::<Value>().await.unwrap()["data"]["status"],
        "Paid"
    );
    assert_eq!(put(2).await.unwrap().status(), StatusCode::OK);
    assert_eq!(sim.invoices()[0]["docstatus"], 2);
    sim.shutdown().await;
}

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

#[tokio::test]
async fn sms_records_accepted_texts_and_rejects_bad_keys_and_bodies() {
    let sim = boot(SimConfig::demo(12)).await;
    let url = format!("{}/api/sms/quick", sim.sms_url());
    let send = |key: &str, body: Value| {
        client()
            .post(&url)
            .query(&[("key", key)])
            .json(&body)
            .send()
    };
    let body = json!({"recipient": ["0555123456", "0666123456"], "sender": "OrderSync",
                      "message": "Votre commande est livrée", "is_schedule": false, "schedule_date": ""});
    let res = send("demo-mnotify-key", body.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let ok: Value = res.json().await.unwrap();
    assert_eq!(
        (ok["status"].as_str(), ok["code"].as_str()),
        (Some("success"), Some("2000"))
    );
    assert_eq!(ok["summary"]["total_sent"], 2);
    assert_eq!(
        ok["summary"]["numbers_sent"],
        json!(["0555123456", "0666123456"])
    );
    assert_eq!(
        sim.sms_messages_to("0555123456"),
        vec!["Votre commande est livrée".to_string()]
    );
    assert_eq!(sim.sms_total(), 2);

    let res = send("wrong", body.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid api key"));
    sim.revoke_key("demo-mnotify-key");
    assert_eq!(
        send("demo-mnotify-key", body.clone())
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    sim.restore_key("demo-mnotify-key");

    let res = send(
        "demo-mnotify-key",
        json!({"recipient": [], "sender": "X", "message": "hi"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.json::<Value>().await.unwrap()["message"]
        .as_str()
        .unwrap()
        .contains("recipient"));
    let res = send(
        "demo-mnotify-key",
        json!({"recipient": ["0555"], "sender": "X"}),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sim.sms_total(), 2, "rejected texts are not recorded");
    sim.shutdown().await;
}

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

#[test]
fn knobs_and_config_json_use_milliseconds() {
    let knobs: Knobs = serde_json::from_str(r#"{"latency_ms":250,"error_rate":0.1}"#).unwrap();
    assert_eq!(knobs.latency, Duration::from_millis(250));
    assert_eq!(knobs.hang, DEFAULT_HANG);
    assert_eq!(
        serde_json::to_value(Knobs::default()).unwrap()["hang_ms"],
        30_000
    );
    let config = SimConfig::demo(6);
    let round: SimConfig = serde_json::from_value(serde_json::to_value(&config).unwrap()).unwrap();
    assert_eq!(round, config);
    let stepped: SimConfig = serde_json::from_str(r#"{"status_step_ms":1000}"#).unwrap();
    assert_eq!(
        (stepped.status_step, stepped.courier_page_size),
        (Duration::from_secs(1), 20)
    );
}

#[test]
fn demo_maps_five_stores_to_one_primary_key_and_alph_to_its_own() {
    let config = SimConfig::demo(100);
    let codes: Vec<&str> = config.stores.iter().map(|s| s.code.as_str()).collect();
    assert_eq!(codes, ["ALPH", "BETA", "GAMA", "DELT", "EPSI", "ZETA"]);
    assert_eq!(config.stores.iter().map(|s| s.orders).sum::<usize>(), 100);
    let primary: HashSet<_> = config.stores[1..]
        .iter()
        .map(|s| (&s.courier_account, &s.courier_key))
        .collect();
    assert_eq!(primary.len(), 1);
    assert_eq!(config.stores[0].courier_account, "alph");
    assert_ne!(config.stores[0].courier_key, config.stores[1].courier_key);
    assert_eq!(config.status_step, Duration::ZERO);
}

#[tokio::test]
async fn start_refuses_ambiguous_configs() {
    let mut config = SimConfig::demo(6);
    config.stores[1].code = "ALPH".into();
    let err = start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("ALPH"), "{err:#}");
    let mut config = SimConfig::demo(6);
    config.stores[0].courier_key = PRIMARY_KEY.into();
    assert!(start(config, "127.0.0.1:0".parse().unwrap()).await.is_err());
}
