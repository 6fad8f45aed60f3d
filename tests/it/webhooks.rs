//! The WooCommerce webhook receiver: signatures, the ping, bad input, dedupe.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::helpers::{serve_api_with, two_stores, ApiServer, TestApp, ADMIN_TOKEN};

/// The API with a 64 KiB webhook body limit (the 413 case sends 70 KiB).
async fn serve(app: &TestApp) -> ApiServer {
    serve_api_with(app, |state| state.webhook_body_limit = 64 * 1024).await
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

const BETA_SECRET: &str = "whsec_demo_beta";

async fn post(base: &str, store: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/webhooks/woocommerce/{store}"))
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_order_update_is_upserted_and_enqueues_its_invoice_once() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = serve(&app).await;
    let base = &api.base;
    let order = app.sim.add_shop_order("BETA", "cod", "processing", false);
    let body = serde_json::to_vec(&order).unwrap();
    let signature = sign(BETA_SECRET, &body);
    let headers = [
        ("content-type", "application/json"),
        ("x-wc-webhook-signature", signature.as_str()),
        ("x-wc-webhook-topic", "order.updated"),
    ];
    let (status, reply) = post(base, "BETA", &body, &headers).await;
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["enqueued"][0]["kind"], "create_invoice");
    let reference = format!("BETA-{}", order["number"].as_str().unwrap());
    let source: String = sqlx::query_scalar("SELECT source FROM jobs WHERE order_ref = $1")
        .bind(&reference)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(source, "webhook");
    let stored: String = sqlx::query_scalar("SELECT shop_status FROM orders WHERE reference = $1")
        .bind(&reference)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, "processing");
    // WooCommerce redelivers the same change: nothing new is enqueued.
    let before = app.count("SELECT count(*) FROM jobs").await;
    let (status, reply) = post(base, "BETA", &body, &headers).await;
    assert_eq!((status, reply["duplicate"].clone()), (200, json!(true)));
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, before);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_webhooks_get_a_clear_error_and_enqueue_nothing() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = serve(&app).await;
    let base = &api.base;
    let order = app.sim.add_shop_order("BETA", "cod", "processing", false);
    let body = serde_json::to_vec(&order).unwrap();
    let good = sign(BETA_SECRET, &body);
    let json_ct = ("content-type", "application/json");

    // (store, body, extra headers, expected status, text the error names)
    type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, String)>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "BETA",
            body.clone(),
            vec![],
            401,
            "missing X-WC-Webhook-Signature",
        ),
        (
            "BETA",
            body.clone(),
            vec![("x-wc-webhook-signature", "bm9wZQ==".into())],
            401,
            "does not match",
        ),
        (
            "BETA",
            body.clone(),
            vec![("x-wc-webhook-signature", sign("whsec_demo_alph", &body))],
            401,
            "does not match",
        ),
        (
            "NOPE",
            body.clone(),
            vec![("x-wc-webhook-signature", good.clone())],
            404,
            "unknown store 'NOPE'",
        ),
        (
            "BETA",
            b"{not json".to_vec(),
            vec![("x-wc-webhook-signature", sign(BETA_SECRET, b"{not json"))],
            400,
            "malformed JSON",
        ),
        (
            "BETA",
            br#"{"id": 5, "number": "5"}"#.to_vec(),
            vec![(
                "x-wc-webhook-signature",
                sign(BETA_SECRET, br#"{"id": 5, "number": "5"}"#),
            )],
            400,
            "missing field `status`",
        ),
        ("BETA", vec![b'x'; 70 * 1024], vec![], 413, "larger than"),
    ];
    for (store, body, extra, status, needle) in cases {
        let mut headers: Vec<(&str, &str)> = vec![json_ct];
        headers.extend(extra.iter().map(|(k, v)| (*k, v.as_str())));
        let (got, reply) = post(base, store, &body, &headers).await;
        assert_eq!(got, status, "{store} {needle}: {reply}");
        assert!(
            reply["error"].as_str().unwrap_or_default().contains(needle),
            "{needle}: {reply}"
        );
    }
    let (got, reply) = post(
        base,
        "BETA",
        &body,
        &[
            ("content-type", "text/plain"),
            ("x-wc-webhook-signature", good.as_str()),
        ],
    )
    .await;
    assert_eq!(got, 415, "{reply}");
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .contains("expected Content-Type application/json"));
    assert_eq!(
        app.count("SELECT count(*) FROM jobs").await,
        0,
        "no bad webhook enqueued anything"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unsigned_ping_gets_exactly_200() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = serve(&app).await;
    let base = &api.base;
    let (status, _) = post(
        base,
        "ALPH",
        b"webhook_id=42",
        &[("content-type", "application/x-www-form-urlencoded")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 0);
    // A tracked order's update also refreshes its courier status.
    let mut app = app;
    app.start_worker(&[]);
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "ALPH"))
        .await;
    app.wait_final(id).await;
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::FetchTracking, "ALPH"))
        .await;
    app.wait_final(id).await;
    let reference: String = sqlx::query_scalar("SELECT reference FROM orders WHERE store = 'ALPH' AND courier_order_id IS NOT NULL AND shop_status = 'processing' LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let number = reference.trim_start_matches("ALPH-");
    let order = app
        .sim
        .shop_orders("ALPH")
        .into_iter()
        .find(|o| o["number"] == number)
        .unwrap();
    let mut changed = order.clone();
    changed["date_modified_gmt"] = json!("2031-01-01T00:00:00");
    let body = serde_json::to_vec(&changed).unwrap();
    let signature = sign("whsec_demo_alph", &body);
    let (status, reply) = post(
        base,
        "ALPH",
        &body,
        &[
            ("content-type", "application/json"),
            ("x-wc-webhook-signature", signature.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 202, "{reply}");
    let kinds: Vec<&str> = reply["enqueued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["create_invoice", "refresh_status"]);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_courier_status_webhook_refreshes_the_matching_order() {
    let mut app = TestApp::spawn(two_stores(5)).await;
    app.start_worker(&[]);
    app.import_and_track().await;
    let api = serve(&app).await;
    let base = &api.base;
    let reference: String = sqlx::query_scalar(
        "SELECT reference FROM orders WHERE store = 'BETA' AND courier_order_id IS NOT NULL
          AND status NOT IN ('delivered', 'cancelled', 'returned') LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let event = json!({"event": "OrderStatusChanged", "payload": {"external_order_id": reference, "status": 41}});
    let body =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&event).unwrap());
    let (status, reply) = post_to(base, "courier/primary", body.as_bytes(), "text/plain").await;
    assert_eq!(
        (status, reply.clone()),
        (202, json!({"accepted": true})),
        "{reply}"
    );
    // The poll is enqueued after the answer, which is the same for every reference.
    let webhook_polls = |reference: String| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, uuid::Uuid>(
                "SELECT job_id FROM jobs WHERE kind = 'refresh_status' AND source = 'webhook' AND order_ref = $1",
            )
            .bind(reference)
            .fetch_all(&db)
            .await
            .unwrap()
        }
    };
    let job = app
        .eventually("the webhook's status poll", || {
            let polls = webhook_polls(reference.clone());
            async move { polls.await.first().copied() }
        })
        .await;
    let runs = app.wait_final(job).await;
    assert_eq!(runs.last().unwrap().outcome, "succeeded");
    // ALPH's account does not serve BETA's orders: the same answer, no poll.
    let (status, reply) = post_to(
        base,
        "courier/alph",
        serde_json::to_vec(&event).unwrap().as_slice(),
        "application/json",
    )
    .await;
    assert_eq!((status, reply), (202, json!({"accepted": true})));
    assert_eq!(webhook_polls(reference.clone()).await.len(), 1);
    let (status, reply) = post_to(base, "courier/nobody", b"{}", "application/json").await;
    assert_eq!(status, 404, "{reply}");
    let (status, reply) = post_to(
        base,
        "courier/primary",
        br#"{"event":"OrderStatusChanged","payload":{}}"#,
        "application/json",
    )
    .await;
    assert_eq!(status, 400);
    assert!(reply["error"]
        .as_str()
        .unwrap()
        .contains("payload.external_order_id"));
    app.cleanup().await;
}

async fn post_to(base: &str, path: &str, body: &[u8], content_type: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}/webhooks/{path}"))
        .header("content-type", content_type)
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_sync_trigger_enqueues_with_source_admin() {
    let mut app = TestApp::spawn(two_stores(3)).await;
    app.start_worker(&[]);
    let api = serve(&app).await;
    let base = &api.base;
    let http = reqwest::Client::new();
    let url = format!("{base}/admin/api/sync");
    let unauthorized = http
        .post(&url)
        .json(&json!({"store": "ALPH", "kind": "import_orders"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let reply: Value = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"store": "ALPH", "kind": "import_orders"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let job: uuid::Uuid = reply["job_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        app.wait_final(job).await.last().unwrap().outcome,
        "succeeded"
    );
    let source: String = sqlx::query_scalar("SELECT source FROM jobs WHERE job_id = $1")
        .bind(job)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(source, "admin");
    for (body, status, needle) in [
        (
            json!({"store": "NOPE", "kind": "import_orders"}),
            404,
            "unknown store 'NOPE'",
        ),
        (
            json!({"store": "ALPH", "kind": "fax"}),
            400,
            "unknown job kind 'fax'",
        ),
        (
            json!({"store": "ALPH", "kind": "refresh_status"}),
            400,
            "per-order job",
        ),
    ] {
        let resp = http
            .post(&url)
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        assert!(resp.text().await.unwrap().contains(needle), "{needle}");
    }
    app.cleanup().await;
}
