//! Hostile traffic and bad data (issue 10), against the real `ordersync api`
//! process: one test (or more) per numbered case of the issue.
//!
//! 1. poison orders: `poison_orders_are_refused_one_by_one_and_the_import_moves_past_them`,
//!    `a_signed_poison_order_is_answered_2xx_and_recorded_never_5xx`
//! 2. out of order: `an_older_update_never_rolls_back_a_newer_one`,
//!    `courier_statuses_observed_out_of_order_keep_the_newest`
//! 3. exhaustion: `stalled_and_slow_connections_are_timed_out_and_capped`,
//!    `unauthenticated_bodies_in_flight_stay_within_the_budget`
//! 4. credentials echoed: `a_provider_echoing_credentials_is_stored_and_shown_redacted`
//! 5. courier webhook: `the_courier_webhook_needs_its_token_dedupes_and_answers_alike`,
//!    `the_courier_webhook_is_rate_limited_per_account`
//! 6. throttling: `failed_logins_and_bearer_guesses_are_throttled_per_client`,
//!    `a_short_admin_token_is_refused_at_start_up`
//! 7. admin filters: `out_of_range_durations_and_nuls_are_400s_naming_the_parameter`
//! 8. dedupe and pruning: `the_same_instant_with_and_without_z_is_one_delivery`,
//!    `deliveries_older_than_the_window_are_pruned_at_start_up`
//! 9. 413, media types, headers: `an_oversized_signed_body_always_gets_its_413`,
//!    `jsonp_is_not_json_and_every_response_has_security_headers`

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{redis_url, two_stores, TestApp};

/// 40 characters: above the 32 the api requires.
const ADMIN_TOKEN: &str = "hostile-test-admin-token-0123456789abcdef";
const BETA_SECRET: &str = "whsec_demo_beta";
const COURIER_SECRET: &str = "courier-secret-for-primary-0123";

// ---------------------------------------------------------------------------
// Harness: the api as its own process, and a shop we control.
// ---------------------------------------------------------------------------

/// `ordersync api` running as a child process against a test's services.
struct ApiProcess {
    child: Child,
    base: String,
    addr: SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ApiProcess {
    /// Start it with the test's config plus an `[admin]` token, `edit`
    /// applied to the TOML, `envs` added and `args` after `api`.
    async fn start(
        app: &TestApp,
        edit: impl Fn(&mut String),
        envs: &[(&str, &str)],
        args: &[&str],
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut toml = std::fs::read_to_string(&app.config_path).unwrap();
        toml.push_str("\n[admin]\ntoken_env = \"HOSTILE_ADMIN_TOKEN\"\n");
        edit(&mut toml);
        let config = dir.path().join("api.toml");
        std::fs::write(&config, toml).unwrap();
        let log = dir.path().join("api.log");
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut child = Command::new(env!("CARGO_BIN_EXE_ordersync"))
                .arg("api")
                .arg("--listen")
                .arg(addr.to_string())
                .args(args)
                .arg("--config")
                .arg(&config)
                .env("DATABASE_URL", app.database_url())
                .env("REDIS_URL", redis_url())
                .env("ORDERSYNC_NAMESPACE", &app.namespace)
                .env("RUST_LOG", "info")
                .env("HOSTILE_ADMIN_TOKEN", ADMIN_TOKEN)
                .envs(app.secrets.iter().map(|(k, v)| (k, v)))
                .envs(envs.iter().copied())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("starting ordersync api");
            let base = format!("http://{addr}");
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    // Another test took the port between our probe and the bind.
                    eprintln!(
                        "api exited with {status}: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                let up = reqwest::get(format!("{base}/healthz")).await;
                if up.is_ok_and(|r| r.status() == 200) {
                    return Self {
                        child,
                        base,
                        addr,
                        log,
                        _dir: dir,
                    };
                }
                assert!(Instant::now() < deadline, "the api did not start in time");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("could not start the api on a free port");
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Peak resident memory, MiB.
    fn peak_rss_mb(&self) -> f64 {
        rss_field(self.child.id(), "VmHWM:")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rss_field(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// A WooCommerce shop whose orders the test writes: serves
/// `GET /wp-json/wc/v3/orders` paged by modification time, or, with
/// `echo_auth`, refuses every request echoing its credentials back.
#[derive(Clone, Default)]
struct FakeShop {
    orders: Arc<Mutex<Vec<Value>>>,
    echo_auth: Arc<Mutex<bool>>,
}

impl FakeShop {
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = axum::Router::new()
            .route("/wp-json/wc/v3/orders", axum::routing::get(shop_orders))
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
        base
    }

    fn set(&self, orders: Vec<Value>) {
        *self.orders.lock().unwrap() = orders;
    }
}

async fn shop_orders(
    State(shop): State<FakeShop>,
    Query(q): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if *shop.echo_auth.lock().unwrap() {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        // What a debugging proxy or a badly written plugin answers.
        let message = format!(
            "Sorry, you cannot list resources. Request was GET {uri}?consumer_key=ck_echoed_123 with Authorization: {auth}"
        );
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"code": "woocommerce_rest_cannot_view", "message": message, "data": {"status": 401}})),
        )
            .into_response();
    }
    let after = q
        .get("modified_after")
        .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S").ok());
    let modified = |o: &Value| {
        o["date_modified_gmt"].as_str().and_then(|t| {
            chrono::NaiveDateTime::parse_from_str(t.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S").ok()
        })
    };
    let mut orders: Vec<Value> = shop
        .orders
        .lock()
        .unwrap()
        .iter()
        .filter(|o| match (after, modified(o)) {
            (Some(after), Some(m)) => m > after,
            _ => true,
        })
        .cloned()
        .collect();
    orders.sort_by_key(|o| modified(o));
    let per_page: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(10);
    let page: usize = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    let total = orders.len();
    let pages = total.div_ceil(per_page).max(1);
    let slice: Vec<Value> = orders
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    (
        [
            ("x-wp-total", total.to_string()),
            ("x-wp-totalpages", pages.to_string()),
        ],
        axum::Json(slice),
    )
        .into_response()
}

/// A WooCommerce order JSON.
fn woo_order(id: i64, number: &str, status: &str, total: &str, modified: &str) -> Value {
    json!({
        "id": id, "number": number, "status": status, "currency": "DZD",
        "payment_method": "cod", "payment_method_title": "Cash on delivery",
        "total": total, "date_created_gmt": "2026-01-01T00:00:00",
        "date_modified_gmt": modified,
        "billing": {"first_name": "Amina", "last_name": "B", "phone": "0555000000"},
        "meta_data": []
    })
}

/// The test's config with ALPH's shop at `shop_url`.
fn alph_shop_at(shop_url: String) -> impl FnOnce(&mut String) {
    move |toml: &mut String| {
        let marker = "code = \"ALPH\"\nshop_url = \"";
        let start = toml.find(marker).expect("ALPH's store block") + marker.len();
        let end = start + toml[start..].find('"').unwrap();
        toml.replace_range(start..end, &shop_url);
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn post_webhook(api: &ApiProcess, store: &str, body: &[u8]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(api.url(&format!("/webhooks/woocommerce/{store}")))
        .header("content-type", "application/json")
        .header("x-wc-webhook-signature", sign(BETA_SECRET, body))
        .header("x-wc-webhook-topic", "order.updated")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn admin_get(api: &ApiProcess, path: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(api.url(path))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn shop_status(app: &TestApp, reference: &str) -> String {
    sqlx::query_scalar("SELECT shop_status FROM orders WHERE reference = $1")
        .bind(reference)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

async fn import_detail(app: &TestApp, store: &str) -> Value {
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, store))
        .await;
    let runs = app.wait_final(id).await;
    let last = runs.last().unwrap();
    assert_eq!(last.outcome, "succeeded", "{runs:#?}");
    last.detail.clone().unwrap()
}

/// Read what the server sends until it closes (or `within` passes).
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

// ---------------------------------------------------------------------------
// 1. Poison orders
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_orders_are_refused_one_by_one_and_the_import_moves_past_them() {
    let shop = FakeShop::default();
    let shop_url = shop.start().await;
    let mut app = TestApp::spawn_with(
        two_stores(1),
        crate::helpers::FAST_POLICIES,
        alph_shop_at(shop_url),
    )
    .await;
    app.start_worker(&[JobKind::ImportOrders]);
    let mut nul = woo_order(2, "9002", "processing", "20.00", "2026-03-01T10:00:02");
    nul["billing"]["first_name"] = json!("Am\u{0}ina");
    nul["meta_data"] = json!([{"key": "gift\u{0}note", "value": "for\u{0}you"}]);
    let unreadable = json!({"id": 6, "number": "9006", "total": "1.00",
                            "date_modified_gmt": "2026-03-01T10:00:06"});
    shop.set(vec![
        woo_order(1, "9001", "processing", "10.00", "2026-03-01T10:00:01"),
        nul,
        woo_order(3, "9003", "processing", "inf", "2026-03-01T10:00:03"),
        woo_order(
            4,
            "9004",
            "processing",
            "1000000000000",
            "2026-03-01T10:00:04",
        ),
        // A second shop order reusing number 9001 (a numbering plugin reset).
        woo_order(5, "9001", "processing", "50.00", "2026-03-01T10:00:05"),
        unreadable,
        woo_order(7, "9007", "completed", "70.00", "2026-03-01T10:00:07"),
    ]);
    let detail = import_detail(&app, "ALPH").await;
    assert_eq!(detail["rejected"], 4, "{detail}");
    assert_eq!(detail["inserted"], 3, "{detail}");
    let mut fields: Vec<(i64, String)> = detail["rejected_sample"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["shop_order_id"].as_i64().unwrap(),
                r["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            (3, "total".to_owned()),
            (4, "total".to_owned()),
            (5, "number".to_owned()),
            (6, "status".to_owned())
        ]
    );
    // The good orders are stored, the NUL one sanitized.
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT reference FROM orders WHERE store = 'ALPH' ORDER BY reference")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(stored, vec!["ALPH-9001", "ALPH-9002", "ALPH-9007"]);
    let (name, raw): (String, Value) =
        sqlx::query_as("SELECT customer_name, raw FROM orders WHERE reference = 'ALPH-9002'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(name, "Amina B");
    assert_eq!(raw["meta_data"][0]["key"], "giftnote");
    // The cursor moved past every order of the page, refused ones included.
    let cursor: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT cursor FROM store_sync_state WHERE store = 'ALPH' AND kind = 'import_orders'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(cursor.to_rfc3339(), "2026-03-01T10:00:07+00:00");

    // Visible in the CLI, the admin API and /metrics.
    let out = app.cli(&["orders", "rejected", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["open"]["ALPH"], 4, "{listed}");
    let collision = listed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["shop_order_id"] == 5)
        .unwrap();
    assert_eq!(collision["reference"], "ALPH-9001");
    assert!(
        collision["reason"]
            .as_str()
            .unwrap()
            .contains("already used by shop order id 1"),
        "{collision}"
    );
    let out = app.cli(&["orders", "rejected"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("4 open rejected order(s)"), "{text}");
    assert!(text.contains("is not a finite amount"), "{text}");
    let api = ApiProcess::start(&app, |_| {}, &[], &[]).await;
    let (status, reply) = admin_get(&api, "/admin/api/orders/rejected?store=ALPH").await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["orders"].as_array().unwrap().len(), 4);
    let metrics = reqwest::get(api.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ordersync_rejected_orders{store=\"ALPH\"} 4"),
        "{metrics}"
    );

    // The shop fixes the total: the next import stores it and resolves it.
    shop.set(vec![woo_order(
        3,
        "9003",
        "processing",
        "30.00",
        "2026-03-01T11:00:00",
    )]);
    let detail = import_detail(&app, "ALPH").await;
    assert_eq!(
        (detail["inserted"].clone(), detail["rejected"].clone()),
        (json!(1), json!(0))
    );
    let (_, reply) = admin_get(&api, "/admin/api/orders/rejected").await;
    assert_eq!(reply["open"]["ALPH"], 3, "{reply}");
    drop(api);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_poison_order_is_answered_2xx_and_recorded_never_5xx() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = ApiProcess::start(&app, |_| {}, &[], &[]).await;
    let good = woo_order(501, "7501", "processing", "10.00", "2026-04-01T00:00:01");
    let (status, reply) = post_webhook(&api, "BETA", &serde_json::to_vec(&good).unwrap()).await;
    assert_eq!(status, 202, "{reply}");
    let mut nul = woo_order(
        502,
        "75\u{0}02",
        "processing",
        "10.00",
        "2026-04-01T00:00:02",
    );
    nul["billing"]["last_name"] = json!("\u{0}");
    let cases = [
        (
            woo_order(503, "7503", "processing", "inf", "2026-04-01T00:00:03"),
            "total",
        ),
        (
            woo_order(504, "7504", "processing", "1e12", "2026-04-01T00:00:04"),
            "total",
        ),
        (
            woo_order(505, "7501", "processing", "10.00", "2026-04-01T00:00:05"),
            "number",
        ),
        (
            woo_order(506, "7506", "processing", "1.00", "the day after"),
            "date_modified_gmt",
        ),
    ];
    // Several deliveries each (WooCommerce disables a webhook after 5 failures).
    for round in 0..3 {
        for (order, field) in &cases {
            let (status, reply) =
                post_webhook(&api, "BETA", &serde_json::to_vec(order).unwrap()).await;
            assert!(status < 500, "round {round}: {status} {reply}");
            if round == 0 {
                assert_eq!(
                    (status, reply["rejected"]["field"].as_str()),
                    (200, Some(*field)),
                    "{reply}"
                );
                assert!(reply["error"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("(shop id {})", order["id"])));
            }
        }
    }
    let (status, reply) = post_webhook(&api, "BETA", &serde_json::to_vec(&nul).unwrap()).await;
    assert_eq!(status, 202, "NUL is stripped, the order stored: {reply}");
    assert_eq!(shop_status(&app, "BETA-7502").await, "processing");
    let rows: Vec<(i64, String, String, i32)> = sqlx::query_as(
        "SELECT shop_order_id, field, source, times_seen FROM rejected_orders ORDER BY shop_order_id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.0, r.1.as_str(), r.2.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (503, "total", "webhook"),
            (504, "total", "webhook"),
            (505, "number", "webhook"),
            (506, "date_modified_gmt", "webhook")
        ]
    );
    // Redeliveries of the same change are duplicates; the undated one has no
    // instant to dedupe on and is counted again.
    assert_eq!(rows[3].3, 3);
    drop(api);
    app.cleanup().await;
}

// ---------------------------------------------------------------------------
// 2. Out of order
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_update_never_rolls_back_a_newer_one() {
    let shop = FakeShop::default();
    let shop_url = shop.start().await;
    let mut app = TestApp::spawn_with(
        two_stores(1),
        crate::helpers::FAST_POLICIES,
        alph_shop_at(shop_url),
    )
    .await;
    app.start_worker(&[JobKind::ImportOrders]);
    let api = ApiProcess::start(&app, |_| {}, &[], &[]).await;
    let newer = woo_order(801, "8801", "completed", "10.00", "2026-05-01T12:00:00");
    let older = woo_order(801, "8801", "processing", "10.00", "2026-05-01T11:00:00");
    let (status, reply) = post_webhook(&api, "BETA", &serde_json::to_vec(&newer).unwrap()).await;
    assert_eq!(status, 202, "{reply}");
    let (status, reply) = post_webhook(&api, "BETA", &serde_json::to_vec(&older).unwrap()).await;
    assert_eq!(
        (status, reply["stale"].clone()),
        (200, json!(true)),
        "{reply}"
    );
    assert_eq!(shop_status(&app, "BETA-8801").await, "completed");

    // An import page read before the newer change reached the shop's list.
    let alph_newer = woo_order(802, "8802", "completed", "10.00", "2026-05-01T12:00:00");
    let (status, _) = post_webhook_for(&api, "ALPH", "whsec_demo_alph", &alph_newer).await;
    assert_eq!(status, 202);
    shop.set(vec![woo_order(
        802,
        "8802",
        "processing",
        "10.00",
        "2026-05-01T11:00:00",
    )]);
    let detail = import_detail(&app, "ALPH").await;
    assert_eq!(
        (detail["stale"].clone(), detail["updated"].clone()),
        (json!(1), json!(0)),
        "{detail}"
    );
    assert_eq!(shop_status(&app, "ALPH-8802").await, "completed");
    drop(api);
    app.cleanup().await;
}

async fn post_webhook_for(
    api: &ApiProcess,
    store: &str,
    secret: &str,
    order: &Value,
) -> (u16, Value) {
    let body = serde_json::to_vec(order).unwrap();
    let resp = reqwest::Client::new()
        .post(api.url(&format!("/webhooks/woocommerce/{store}")))
        .header("content-type", "application/json")
        .header("x-wc-webhook-signature", sign(secret, &body))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn courier_statuses_observed_out_of_order_keep_the_newest() {
    use ordersync::ledger::orders::{observe_courier, CourierObservation, ObservedVia};
    let app = TestApp::spawn(two_stores(1)).await;
    let order = woo_order(901, "9901", "processing", "10.00", "2026-05-01T12:00:00");
    let order: ordersync::providers::woocommerce::WooOrder = serde_json::from_value(order).unwrap();
    ordersync::intake::store_orders(
        &app.db,
        "BETA",
        &[order],
        &[],
        ordersync::ledger::rejected::RejectionSource::Import,
        None,
    )
    .await
    .unwrap();
    let at = |h: u32| {
        chrono::DateTime::parse_from_rfc3339(&format!("2026-05-02T{h:02}:00:00+01:00"))
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let seen = |code: i32, label: &str, status: &str, hour: u32| CourierObservation {
        reference: "BETA-9901".into(),
        tracking_number: Some("T-9901".into()),
        courier_order_id: Some(77),
        code,
        label: label.into(),
        status: status.into(),
        updated_at: Some(at(hour)),
    };
    let job = uuid::Uuid::new_v4();
    let (changes, matched, stale) = observe_courier(
        &app.db,
        "BETA",
        &[seen(31, "EXPÉDIÉ", "shipped", 12)],
        ObservedVia::Poll,
        job,
    )
    .await
    .unwrap();
    assert_eq!((changes.len(), matched, stale), (1, 1, 0));
    // A page read before that change, applied after it.
    let (changes, matched, stale) = observe_courier(
        &app.db,
        "BETA",
        &[seen(22, "ASSIGNÉ", "assigned", 10)],
        ObservedVia::List,
        job,
    )
    .await
    .unwrap();
    assert_eq!((changes.len(), matched, stale), (0, 0, 1));
    let (status, code): (String, i32) =
        sqlx::query_as("SELECT status, courier_code FROM orders WHERE reference = 'BETA-9901'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((status.as_str(), code), ("shipped", 31));
    app.cleanup().await;
}

// ---------------------------------------------------------------------------
// 3. Exhaustion
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_slow_connections_are_timed_out_and_capped() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = ApiProcess::start(
        &app,
        |_| {},
        &[],
        &[
            "--header-timeout",
            "1s",
            "--body-timeout",
            "1s",
            "--max-connections",
            "8",
        ],
    )
    .await;
    // A head that never ends, and a connection that says nothing: closed.
    let mut partial = TcpStream::connect(api.addr).await.unwrap();
    partial
        .write_all(b"POST /webhooks/woocommerce/BETA HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(api.addr).await.unwrap();
    let started = Instant::now();
    assert!(read_until_closed(&mut partial, Duration::from_secs(5))
        .await
        .is_some());
    assert!(read_until_closed(&mut silent, Duration::from_secs(5))
        .await
        .is_some());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // A body that stops arriving: 408, and the connection is freed.
    let mut slow = TcpStream::connect(api.addr).await.unwrap();
    slow.write_all(
        b"POST /webhooks/woocommerce/BETA HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          X-WC-Webhook-Signature: AAAA\r\nContent-Length: 1000\r\n\r\n{\"id\":",
    )
    .await
    .unwrap();
    let answer = read_until_closed(&mut slow, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A declared body over the limit: 413 before a byte of it is sent.
    let mut large = TcpStream::connect(api.addr).await.unwrap();
    large
        .write_all(
            b"POST /webhooks/woocommerce/BETA HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              X-WC-Webhook-Signature: AAAA\r\nContent-Length: 2000000000\r\n\r\n",
        )
        .await
        .unwrap();
    let answer = read_until_closed(&mut large, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // A login form far over its 4 KiB.
    let resp = reqwest::Client::new()
        .post(api.url("/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", "x".repeat(64 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // Eight connections hold every slot; a ninth waits until the header
    // timeout frees them, then is served.
    let mut hogs = Vec::new();
    for _ in 0..8 {
        hogs.push(TcpStream::connect(api.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let resp = reqwest::get(api.url("/healthz")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "the ninth connection was served at once ({:?}): no cap",
        started.elapsed()
    );
    drop(hogs);
    drop(api);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_bodies_in_flight_stay_within_the_budget() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = ApiProcess::start(
        &app,
        |_| {},
        &[],
        &["--body-budget-mb", "4", "--body-timeout", "3s"],
    )
    .await;
    let baseline = rss_field(api.child.id(), "VmRSS:");
    // 100 forged webhooks, each sending 900 KiB of its declared 1,000,000
    // bytes and then stalling: before, 100 MiB held until they gave up.
    let chunk = vec![b'x'; 900 * 1024];
    let mut senders = Vec::new();
    for _ in 0..100 {
        let addr = api.addr;
        let chunk = chunk.clone();
        senders.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(
                b"POST /webhooks/woocommerce/BETA HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                  X-WC-Webhook-Signature: AAAA\r\nContent-Length: 1000000\r\n\r\n",
            )
            .await
            .unwrap();
            let _ = s.write_all(&chunk).await;
            read_until_closed(&mut s, Duration::from_secs(20)).await
        }));
    }
    let mut answers = Vec::new();
    for s in senders {
        answers.push(s.await.unwrap().unwrap_or_default());
    }
    let busy = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503"))
        .count();
    let timed_out = answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 408"))
        .count();
    assert_eq!(
        busy + timed_out,
        100,
        "{:?}",
        answers.iter().map(|a| a.lines().next()).collect::<Vec<_>>()
    );
    assert!(
        busy >= 90,
        "at most 4 MiB of bodies are held: {busy} got 503"
    );
    assert!(answers
        .iter()
        .filter(|a| a.starts_with("HTTP/1.1 503"))
        .all(|a| a.contains("retry-after: 5")));
    let peak = api.peak_rss_mb();
    assert!(
        peak < baseline + 48.0,
        "peak RSS {peak:.1} MiB from {baseline:.1} MiB: bodies were buffered past the budget"
    );
    // And it still serves a signed webhook.
    let order = woo_order(601, "7601", "processing", "10.00", "2026-04-01T00:00:01");
    let (status, reply) = post_webhook(&api, "BETA", &serde_json::to_vec(&order).unwrap()).await;
    assert_eq!(status, 202, "{reply}");
    drop(api);
    app.cleanup().await;
}

// ---------------------------------------------------------------------------
// 4. Credentials echoed by a provider
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_echoing_credentials_is_stored_and_shown_redacted() {
    let shop = FakeShop::default();
    *shop.echo_auth.lock().unwrap() = true;
    let shop_url = shop.start().await;
    let app = TestApp::spawn_with(
        two_stores(1),
        crate::helpers::FAST_POLICIES,
        alph_shop_at(shop_url),
    )
    .await;
    let (key, secret) = {
        let alph = app.config.store("ALPH").unwrap();
        use secrecy::ExposeSecret as _;
        (
            alph.shop_key.expose_secret().to_owned(),
            alph.shop_secret.expose_secret().to_owned(),
        )
    };
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{key}:{secret}"));
    // A worker process, so its log can be read.
    let dir = tempfile::tempdir().unwrap();
    let worker_log = dir.path().join("worker.log");
    let mut worker = Command::new(env!("CARGO_BIN_EXE_ordersync-worker"))
        .arg("--config")
        .arg(&app.config_path)
        .args([
            "--metrics-listen",
            "127.0.0.1:0",
            "--kinds",
            "import_orders",
        ])
        .env("DATABASE_URL", app.database_url())
        .env("REDIS_URL", redis_url())
        .env("ORDERSYNC_NAMESPACE", &app.namespace)
        .env("RUST_LOG", "info,ordersync=debug")
        .envs(app.secrets.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&worker_log).unwrap())
        .spawn()
        .unwrap();
    let id = app
        .enqueue_one(NewJob::for_store(JobKind::ImportOrders, "ALPH"))
        .await;
    let runs = app.wait_final(id).await;
    let _ = worker.kill();
    let _ = worker.wait();
    assert_eq!(runs.last().unwrap().outcome, "failed");
    let api = ApiProcess::start(&app, |_| {}, &[], &[]).await;
    let (_, failed) = admin_get(&api, "/admin/api/jobs/failed?ungrouped=true").await;
    let (_, groups) = admin_get(&api, "/admin/api/jobs/failed").await;
    let (_, history) = admin_get(&api, &format!("/admin/api/jobs/{id}")).await;
    let (_, trace) = admin_get(&api, "/admin/api/stores").await;
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT error_message FROM job_runs WHERE error_message IS NOT NULL
         UNION ALL SELECT error_message FROM dead_letters",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(!stored.is_empty());
    assert!(
        stored
            .iter()
            .all(|m| m.contains("Authorization: [REDACTED]")),
        "{stored:?}"
    );
    let cli_failed = app.cli(&["jobs", "failed", "--ungrouped", "--json"]);
    let cli_show = app.cli(&["jobs", "show", &id.to_string()]);
    let everywhere = [
        ("ledger", stored.join("\n")),
        ("admin API failed", failed.to_string()),
        ("admin API groups", groups.to_string()),
        ("admin API job", history.to_string()),
        ("admin API stores", trace.to_string()),
        (
            "CLI failed",
            String::from_utf8_lossy(&cli_failed.stdout).into_owned(),
        ),
        (
            "CLI show",
            String::from_utf8_lossy(&cli_show.stdout).into_owned(),
        ),
        ("worker log", std::fs::read_to_string(&worker_log).unwrap()),
        ("api log", api.log()),
    ];
    for (place, text) in &everywhere {
        for leaked in [
            basic.as_str(),
            key.as_str(),
            secret.as_str(),
            "ck_echoed_123",
        ] {
            assert!(!text.contains(leaked), "{place} shows a credential: {text}");
        }
    }
    assert!(
        everywhere[1].1.contains("[REDACTED]"),
        "{}",
        everywhere[1].1
    );
    drop(api);
    app.cleanup().await;
}

// ---------------------------------------------------------------------------
// 5. The courier webhook
// ---------------------------------------------------------------------------

fn with_courier_secret(toml: &mut String) {
    *toml = toml.replace(
        "name = \"primary\"\n",
        "name = \"primary\"\nwebhook_secret_env = \"HOSTILE_COURIER_SECRET\"\n",
    );
}

async fn courier_post(
    api: &ApiProcess,
    path: &str,
    token_header: Option<&str>,
    reference: &str,
) -> (u16, String) {
    let event = json!({"event": "OrderStatusChanged", "payload": {"external_order_id": reference, "status": 31}});
    let mut req = reqwest::Client::new()
        .post(api.url(path))
        .header("content-type", "application/json")
        .body(event.to_string());
    if let Some(token) = token_header {
        req = req.header("x-ordersync-token", token);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

async fn webhook_polls(app: &TestApp, reference: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'refresh_status' AND source = 'webhook' AND order_ref = $1",
    )
    .bind(reference)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_courier_webhook_needs_its_token_dedupes_and_answers_alike() {
    let mut app = TestApp::spawn(two_stores(10)).await;
    app.start_worker(&[JobKind::ImportOrders, JobKind::FetchTracking]);
    app.import_and_track().await;
    app.stop_workers().await;
    let refs: Vec<String> = sqlx::query_scalar(
        "SELECT reference FROM orders WHERE store = 'BETA' AND courier_order_id IS NOT NULL ORDER BY id LIMIT 2",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(refs.len(), 2, "the simulator tracks two BETA orders");
    let api = ApiProcess::start(
        &app,
        with_courier_secret,
        &[("HOSTILE_COURIER_SECRET", COURIER_SECRET)],
        &[],
    )
    .await;
    let path = "/webhooks/courier/primary";
    let with_token = format!("{path}/{COURIER_SECRET}");
    assert_eq!(courier_post(&api, path, None, &refs[0]).await.0, 401);
    assert_eq!(
        courier_post(&api, path, Some("wrong"), &refs[0]).await.0,
        401
    );
    assert_eq!(
        courier_post(&api, &format!("{path}/wrong"), None, &refs[0])
            .await
            .0,
        401
    );
    // Known, unknown, and another store's reference: one answer.
    let known = courier_post(&api, &with_token, None, &refs[0]).await;
    let unknown = courier_post(&api, &with_token, None, "BETA-999999").await;
    let header = courier_post(&api, path, Some(COURIER_SECRET), "ALPH-1").await;
    assert_eq!(known, (202, r#"{"accepted":true}"#.to_owned()));
    assert_eq!(unknown, known);
    assert_eq!(header, known);
    // Within the window a second event about the same order enqueues nothing.
    assert_eq!(courier_post(&api, &with_token, None, &refs[0]).await, known);
    assert_eq!(courier_post(&api, &with_token, None, &refs[1]).await, known);
    app.eventually("both polls", || async {
        (webhook_polls(&app, &refs[0]).await >= 1 && webhook_polls(&app, &refs[1]).await == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        webhook_polls(&app, &refs[0]).await,
        1,
        "the duplicate event was enqueued"
    );
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE source = 'webhook'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(total, 2, "unknown references enqueue nothing");
    drop(api);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_courier_webhook_is_rate_limited_per_account() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = ApiProcess::start(&app, |_| {}, &[], &["--courier-webhook-rate", "5"]).await;
    let client = reqwest::Client::new();
    let mut sent = Vec::new();
    for i in 0..40 {
        let req = client
            .post(api.url("/webhooks/courier/primary"))
            .header("content-type", "application/json")
            .body(json!({"event": "OrderStatusChanged", "payload": {"external_order_id": format!("BETA-{i}")}}).to_string());
        sent.push(tokio::spawn(async move { req.send().await.unwrap() }));
    }
    let mut limited = 0;
    for s in sent {
        let resp = s.await.unwrap();
        if resp.status() == 429 {
            assert_eq!(resp.headers()["retry-after"], "1");
            limited += 1;
        } else {
            assert_eq!(resp.status(), 202);
        }
    }
    // 40 events in at most a few one-second windows of 5.
    assert!(limited >= 20, "only {limited} of 40 were limited");
    // Another account has its own budget.
    let (status, _) = courier_post(&api, "/webhooks/courier/alph", None, "ALPH-1").await;
    assert_eq!(status, 202);
    drop(api);
    app.cleanup().await;
}

// ---------------------------------------------------------------------------
// 6. Throttling and the token's length
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_and_bearer_guesses_are_throttled_per_client() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = ApiProcess::start(&app, |_| {}, &[], &["--trust-forwarded-for"]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let bearer = |from: &'static str, token: &'static str| {
        http.get(api.url("/admin/api/queues"))
            .header("x-forwarded-for", from)
            .bearer_auth(token)
            .send()
    };
    for _ in 0..10 {
        assert_eq!(bearer("10.0.0.1", "guess").await.unwrap().status(), 401);
    }
    let refused = bearer("10.0.0.1", "guess").await.unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&wait), "{wait}");
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("too many failed attempts"));
    // Blocked means blocked: even the right token waits, so a guesser cannot
    // tell a hit from the 429s.
    assert_eq!(bearer("10.0.0.1", ADMIN_TOKEN).await.unwrap().status(), 429);
    // Another client, and the right token from anywhere else, are unaffected.
    assert_eq!(bearer("10.0.0.3", ADMIN_TOKEN).await.unwrap().status(), 200);
    assert_eq!(bearer("10.0.0.3", "guess").await.unwrap().status(), 401);

    let login = |token: &'static str| {
        http.post(api.url("/dashboard/login"))
            .header("x-forwarded-for", "10.0.0.2")
            .form(&[("token", token)])
            .send()
    };
    for _ in 0..10 {
        assert_eq!(login("not-the-token").await.unwrap().status(), 401);
    }
    let refused = login(ADMIN_TOKEN).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    // About 3,000 guesses a second before: now a burst, then one per 6 s.
    let started = Instant::now();
    let mut answered_401 = 0;
    while started.elapsed() < Duration::from_secs(1) {
        if bearer("10.0.0.4", "guess").await.unwrap().status() == 401 {
            answered_401 += 1;
        }
    }
    assert!(
        answered_401 <= 11,
        "{answered_401} guesses were checked in a second"
    );
    drop(api);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_admin_token_is_refused_at_start_up() {
    let app = TestApp::spawn(two_stores(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut toml = std::fs::read_to_string(&app.config_path).unwrap();
    toml.push_str("\n[admin]\ntoken_env = \"SHORT_ADMIN_TOKEN\"\n");
    let config = dir.path().join("api.toml");
    std::fs::write(&config, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ordersync"))
        .args(["api", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env("DATABASE_URL", app.database_url())
        .env("REDIS_URL", redis_url())
        .env("SHORT_ADMIN_TOKEN", "admin12345")
        .envs(app.secrets.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SHORT_ADMIN_TOKEN holds an admin token of 10 characters")
            && stderr.contains("at least 32"),
        "{stderr}"
    );
    assert!(!stderr.contains("admin12345"), "{stderr}");
    app.cleanup().await;
}

// ---------------------------------------------------------------------------
// 7. Admin filters
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_durations_and_nuls_are_400s_naming_the_parameter() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = ApiProcess::start(&app, |_| {}, &[], &[]).await;
    for (path, needle) in [
        (
            "/admin/api/jobs/failed?since=300000y",
            "since '300000y' is out of range",
        ),
        (
            "/admin/api/jobs/failed?since=99999999999999999999s",
            "since '99999999999999999999s'",
        ),
        (
            "/admin/api/jobs/failed?store=AL%00PH",
            "parameter 'store' contains the control character",
        ),
        (
            "/admin/api/jobs/failed?ungrouped=true&grep=a%00b",
            "parameter 'grep'",
        ),
        ("/admin/api/orders/stuck?store=%00", "parameter 'store'"),
        ("/admin/api/orders/rejected?store=%00", "parameter 'store'"),
        (
            "/admin/api/orders/AL%00PH-1",
            "the path contains a control character",
        ),
    ] {
        let (status, reply) = admin_get(&api, path).await;
        assert_eq!(status, 400, "{path}: {reply}");
        assert!(
            reply["error"].as_str().unwrap_or_default().contains(needle),
            "{path}: {reply}"
        );
    }
    let resp = reqwest::Client::new()
        .post(api.url("/admin/api/jobs/replay"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"all": true, "grep": "a\u{0}b", "dry_run": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let reply: Value = resp.json().await.unwrap();
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .starts_with("grep contains"),
        "{reply}"
    );
    assert!(!api.log().contains("panicked"), "{}", api.log());

    let out = app.cli(&["jobs", "failed", "--since", "300000y"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--since '300000y' is out of range"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = app.cli(&["jobs", "prune", "--older-than", "300000y"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--older-than '300000y' is out of range"));
    drop(api);
    app.cleanup().await;
}

// ---------------------------------------------------------------------------
// 8. Dedupe on the instant; pruning
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_instant_with_and_without_z_is_one_delivery() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = ApiProcess::start(&app, |_| {}, &[], &[]).await;
    let plain = woo_order(701, "7701", "processing", "10.00", "2026-06-01T08:00:00");
    let (status, reply) = post_webhook(&api, "BETA", &serde_json::to_vec(&plain).unwrap()).await;
    assert_eq!(status, 202, "{reply}");
    for spelling in [
        "2026-06-01T08:00:00Z",
        "2026-06-01T09:00:00+01:00",
        "2026-06-01T08:00:00.000Z",
    ] {
        let mut same = plain.clone();
        same["date_modified_gmt"] = json!(spelling);
        let (status, reply) = post_webhook(&api, "BETA", &serde_json::to_vec(&same).unwrap()).await;
        assert_eq!(
            (status, reply["duplicate"].clone()),
            (200, json!(true)),
            "{spelling}: {reply}"
        );
    }
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE order_ref = 'BETA-7701'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(jobs, 1);
    drop(api);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_older_than_the_window_are_pruned_at_start_up() {
    let app = TestApp::spawn(two_stores(1)).await;
    sqlx::query(
        "INSERT INTO webhook_deliveries (store, shop_order_id, date_modified, topic, received_at) VALUES
         ('BETA', 1, '2026-01-01T00:00:00Z', 'order.updated', now() - interval '8 days'),
         ('BETA', 2, '2026-01-02T00:00:00Z', 'order.updated', now() - interval '6 days')",
    )
    .execute(&app.db)
    .await
    .unwrap();
    let api = ApiProcess::start(&app, |_| {}, &[], &[]).await;
    let left: Vec<i64> = app
        .eventually("the old delivery pruned", || async {
            let ids: Vec<i64> =
                sqlx::query_scalar("SELECT shop_order_id FROM webhook_deliveries ORDER BY 1")
                    .fetch_all(&app.db)
                    .await
                    .unwrap();
            (ids.len() == 1).then_some(ids)
        })
        .await;
    assert_eq!(left, vec![2]);
    drop(api);
    app.cleanup().await;
}

// ---------------------------------------------------------------------------
// 9. 413, media types, security headers
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_signed_body_always_gets_its_413() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = ApiProcess::start(&app, |_| {}, &[], &[]).await;
    let body = vec![b' '; 5 * 1024 * 1024];
    let signature = sign(BETA_SECRET, &body);
    for attempt in 0..20 {
        // A fresh connection each time: the first answer on it is the one at risk.
        let client = reqwest::Client::new();
        let chunked = attempt % 2 == 1;
        let mut req = client
            .post(api.url("/webhooks/woocommerce/BETA"))
            .header("content-type", "application/json")
            .header("x-wc-webhook-signature", &signature);
        req = if chunked {
            let frames: Vec<Result<hyper::body::Frame<axum::body::Bytes>, std::io::Error>> = body
                .chunks(64 * 1024)
                .map(|c| {
                    Ok(hyper::body::Frame::data(
                        axum::body::Bytes::copy_from_slice(c),
                    ))
                })
                .collect();
            let stream = http_body_util::StreamBody::new(futures::stream::iter(frames));
            req.body(reqwest::Body::wrap(stream))
        } else {
            req.body(body.clone())
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("attempt {attempt} (chunked: {chunked}): {e:?}"));
        assert_eq!(resp.status(), 413, "attempt {attempt} (chunked: {chunked})");
        let reply: Value = resp.json().await.unwrap();
        assert!(reply["error"].as_str().unwrap().contains("larger than"));
    }
    drop(api);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonp_is_not_json_and_every_response_has_security_headers() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = ApiProcess::start(&app, |_| {}, &[], &[]).await;
    let order = woo_order(401, "7401", "processing", "10.00", "2026-04-01T00:00:01");
    let body = serde_json::to_vec(&order).unwrap();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (content_type, expected) in [
        ("application/jsonp", 415),
        ("application/json-patch+json", 415),
        ("text/json", 415),
        ("Application/JSON; charset=UTF-8", 202),
    ] {
        let resp = http
            .post(api.url("/webhooks/woocommerce/BETA"))
            .header("content-type", content_type)
            .header("x-wc-webhook-signature", sign(BETA_SECRET, &body))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), expected, "{content_type}");
    }
    let requests = [
        http.get(api.url("/healthz")),
        http.get(api.url("/metrics")),
        http.get(api.url("/no/such/page")),
        http.get(api.url("/admin/api/queues")),
        http.get(api.url("/")),
        http.get(api.url("/dashboard/login")),
        http.post(api.url("/webhooks/woocommerce/BETA")),
        http.post(api.url("/webhooks/courier/nobody")),
    ];
    for request in requests {
        let resp = request.send().await.unwrap();
        let url = resp.url().to_string();
        let headers = resp.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{url}");
        assert_eq!(headers["x-frame-options"], "DENY", "{url}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{url}");
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'"),
            "{url}"
        );
    }
    drop(api);
    app.cleanup().await;
}
