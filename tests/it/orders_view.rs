//! The orders view (issue 12): `GET /admin/api/orders` (filters, search,
//! keyset pages), `GET /admin/api/orders/stats`, `ordersync orders
//! list|stats`, and the store sync buttons' `POST /admin/api/stores/.../sync`,
//! checked against the ledger the real pipeline filled from the simulator.

use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use serde_json::Value;

use crate::helpers::{serve_api, two_stores, TestApp, ADMIN_TOKEN};

async fn get(url: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn post(url: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

fn references(page: &Value) -> Vec<String> {
    page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["reference"].as_str().unwrap().to_owned())
        .collect()
}

/// Every page of `query` (`limit` orders each), following `next_cursor`.
async fn all_pages(base: &str, query: &str, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{base}/admin/api/orders?limit={limit}&{query}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get(&url).await;
        assert_eq!(status, 200, "{page}");
        let refs = references(&page);
        assert!(refs.len() <= limit);
        out.extend(refs);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

async fn ledger_refs(app: &TestApp, condition: &str) -> Vec<String> {
    sqlx::query_scalar(&format!(
        "SELECT reference FROM orders WHERE {condition} ORDER BY id DESC"
    ))
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_searches_and_pages_through_every_order_once() {
    let mut app = TestApp::spawn(two_stores(7)).await;
    app.start_worker(&[]);
    for store in ["ALPH", "BETA"] {
        app.run_ok(NewJob::for_store(JobKind::ImportOrders, store))
            .await;
    }
    let invoiced = app.import_new_orders("BETA", 1, "cod").await.remove(0);
    app.run_ok(NewJob::for_order(JobKind::CreateInvoice, "BETA", &invoiced))
        .await;
    let api = serve_api(&app).await;
    let base = &api.base;

    // Pages of 4 across all orders: each once, newest first, none missing.
    let everything = ledger_refs(&app, "true").await;
    assert!(everything.len() >= 14, "{everything:?}");
    assert_eq!(all_pages(base, "", 4).await, everything);

    // Each filter alone, and two together, give exactly the ledger's orders.
    let (shop_status,): (String,) = sqlx::query_as("SELECT shop_status FROM orders LIMIT 1")
        .fetch_one(&app.db)
        .await
        .unwrap();
    for (query, condition) in [
        ("store=BETA".to_owned(), "store = 'BETA'".to_owned()),
        (
            format!("shop_status={shop_status}"),
            format!("shop_status = '{shop_status}'"),
        ),
        ("courier_status=none".into(), "status IS NULL".into()),
        (
            format!("store=ALPH&shop_status={shop_status}"),
            format!("store = 'ALPH' AND shop_status = '{shop_status}'"),
        ),
        ("invoice_state=none".into(), "true".into()),
    ] {
        let mut expected = ledger_refs(&app, &condition).await;
        if query == "invoice_state=none" {
            expected.retain(|r| *r != invoiced);
        }
        assert_eq!(all_pages(base, &query, 5).await, expected, "{query}");
    }
    let (_, page) = get(&format!("{base}/admin/api/orders?invoice_state=submitted")).await;
    assert_eq!(references(&page), std::slice::from_ref(&invoiced), "{page}");
    assert_eq!(page["orders"][0]["invoice_state"], "submitted");

    // Search: reference, a name in another case, a phone fragment.
    let (name, phone): (String, String) =
        sqlx::query_as("SELECT customer_name, phone FROM orders WHERE reference = $1")
            .bind(&invoiced)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let phone_fragment = &phone[phone.len() - 6..];
    for q in [
        invoiced.to_lowercase(),
        name.to_uppercase(),
        phone_fragment.to_owned(),
    ] {
        let (status, page) = get(&format!("{base}/admin/api/orders?q={}", urlencoding(&q))).await;
        assert_eq!(status, 200, "{page}");
        let found = references(&page);
        assert!(found.contains(&invoiced), "{q}: {found:?}");
        let needle = q.to_lowercase();
        for o in page["orders"].as_array().unwrap() {
            let text = format!(
                "{} {} {}",
                o["reference"].as_str().unwrap(),
                o["customer_name"].as_str().unwrap_or(""),
                o["phone"].as_str().unwrap_or("")
            )
            .to_lowercase();
            assert!(text.contains(&needle), "{q} matched {o}");
        }
    }
    let (_, page) = get(&format!("{base}/admin/api/orders?q=no%25such_order")).await;
    assert_eq!(
        references(&page),
        Vec::<String>::new(),
        "wildcards are literal"
    );

    // A bad value is refused, naming the parameter and the value.
    for (query, named) in [
        ("courier_status=lost", "courier_status 'lost'"),
        ("invoice_state=maybe", "invoice_state 'maybe'"),
        ("store=NOPE", "store 'NOPE'"),
        ("q=ab", "q 'ab'"),
        ("limit=0", "limit '0'"),
        ("cursor=1234", "cursor '1234'"),
        ("colour=red", "colour"),
    ] {
        let (status, body) = get(&format!("{base}/admin/api/orders?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(named), "{query}: {error}");
    }

    // The trace and the stuck report still answer beside the list.
    let (status, trace) = get(&format!("{base}/admin/api/orders/{invoiced}")).await;
    assert_eq!(
        (status, trace["order"]["reference"].as_str()),
        (200, Some(invoiced.as_str())),
        "{trace}"
    );
    assert_eq!(get(&format!("{base}/admin/api/orders/stuck")).await.0, 200);

    // Without the token: refused.
    for path in ["orders", "orders/stats"] {
        let status = reqwest::get(format!("{base}/admin/api/{path}"))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401, "{path}");
    }
    app.cleanup().await;
}

/// `s` percent-encoded for a query string.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_count_what_the_ledger_holds_and_follow_its_changes() {
    let mut app = TestApp::spawn(two_stores(6)).await;
    app.start_worker(&[]);
    for store in ["ALPH", "BETA"] {
        app.run_ok(NewJob::for_store(JobKind::ImportOrders, store))
            .await;
    }
    let api = serve_api(&app).await;
    let check = |stats: Value| {
        let db = app.db.clone();
        async move {
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
                .fetch_one(&db)
                .await
                .unwrap();
            assert_eq!(stats["orders"], total, "{stats}");
            let revenue: String = sqlx::query_scalar(
                "SELECT COALESCE(sum(total), 0)::numeric(18, 2)::text FROM orders
                 WHERE shop_status NOT IN ('cancelled', 'refunded', 'failed')",
            )
            .fetch_one(&db)
            .await
            .unwrap();
            assert_eq!(stats["revenue"], revenue, "{stats}");
            let by_store: Vec<(String, i64, String)> = sqlx::query_as(
                "SELECT store, count(*), shop_status FROM orders GROUP BY store, shop_status ORDER BY 1, 3",
            )
            .fetch_all(&db)
            .await
            .unwrap();
            for (store, n, shop_status) in by_store {
                let entry = stats["stores"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["store"] == store.as_str())
                    .unwrap();
                assert_eq!(
                    entry["by_shop_status"][&shop_status], n,
                    "{store} {shop_status}"
                );
                assert!(entry["last_import_at"].is_string(), "{entry}");
            }
            let untracked: i64 =
                sqlx::query_scalar("SELECT count(*) FROM orders WHERE status IS NULL")
                    .fetch_one(&db)
                    .await
                    .unwrap();
            assert_eq!(
                stats["by_courier_status"]["none"].as_i64().unwrap_or(0),
                untracked
            );
        }
    };
    let (status, stats) = get(&format!("{}/admin/api/orders/stats", api.base)).await;
    assert_eq!(status, 200, "{stats}");
    check(stats).await;

    // New orders, an invoice, a cancelled order: the counts follow.
    let refs = app.import_new_orders("ALPH", 2, "cod").await;
    app.run_ok(NewJob::for_order(JobKind::CreateInvoice, "ALPH", &refs[0]))
        .await;
    let shop_id = app
        .sim
        .shop_orders("ALPH")
        .iter()
        .find(|o| format!("ALPH-{}", o["number"].as_str().unwrap()) == refs[1])
        .and_then(|o| o["id"].as_i64())
        .unwrap();
    assert!(app.sim.set_shop_order_status("ALPH", shop_id, "cancelled"));
    app.run_ok(NewJob::for_store(JobKind::ImportOrders, "ALPH"))
        .await;
    let (_, stats) = get(&format!("{}/admin/api/orders/stats", api.base)).await;
    assert_eq!(stats["by_invoice_state"]["submitted"], 1, "{stats}");
    check(stats.clone()).await;

    // The CLI answers the same figures.
    let out = app.cli(&["orders", "stats", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(from_cli["orders"], stats["orders"]);
    assert_eq!(from_cli["revenue"], stats["revenue"]);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_sync_enqueues_one_import_and_never_stacks_a_second() {
    // No worker: the first import stays queued, so the second click finds it.
    let app = TestApp::spawn(two_stores(2)).await;
    let api = serve_api(&app).await;
    let (status, body) = post(&format!("{}/admin/api/stores/BETA/sync", api.base)).await;
    assert_eq!(status, 202, "{body}");
    assert!(body["stores"][0]["job_id"].is_string(), "{body}");
    let (_, again) = post(&format!("{}/admin/api/stores/BETA/sync", api.base)).await;
    assert!(again["stores"][0]["job_id"].is_null(), "{again}");
    assert!(again["stores"][0]["skipped"]
        .as_str()
        .unwrap()
        .contains("still pending"));
    let (_, all) = post(&format!("{}/admin/api/stores/sync", api.base)).await;
    let started: Vec<&str> = all["stores"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["job_id"].is_string())
        .map(|s| s["store"].as_str().unwrap())
        .collect();
    assert_eq!(started, ["ALPH"], "{all}");
    assert_eq!(
        app.count("SELECT count(*) FROM jobs WHERE kind = 'import_orders' AND source = 'admin'")
            .await,
        2
    );
    let (status, body) = post(&format!("{}/admin/api/stores/NOPE/sync", api.base)).await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"].as_str().unwrap().contains("'NOPE'"));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_list_on_the_command_line_pages_and_names_a_bad_flag() {
    let mut app = TestApp::spawn(two_stores(3)).await;
    app.start_worker(&[]);
    app.run_ok(NewJob::for_store(JobKind::ImportOrders, "BETA"))
        .await;
    let expected = ledger_refs(&app, "store = 'BETA'").await;
    let out = app.cli(&[
        "orders", "list", "--store", "BETA", "--limit", "2", "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: Value = serde_json::from_slice(&out.stdout).unwrap();
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let out = app.cli(&[
        "orders", "list", "--store", "BETA", "--limit", "2", "--cursor", &cursor, "--json",
    ]);
    let second: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut seen = references(&first);
    seen.extend(references(&second));
    assert_eq!(seen, expected[..seen.len()]);
    assert_eq!(seen.len(), expected.len().min(4));

    let out = app.cli(&["orders", "list", "--courier-status", "lost"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--courier-status 'lost'"), "{stderr}");
    let out = app.cli(&["orders", "list", "--store", "BETA"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&expected[0]), "{stdout}");
    app.cleanup().await;
}
