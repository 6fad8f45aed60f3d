//! Order tracing: `ordersync orders trace|stuck` and `/admin/api/orders`,
//! over orders the real pipeline has worked on against the simulator.

use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use ordersync_simulator::Service;
use serde_json::Value;

use crate::helpers::{
    alph_on_the_primary_account, serve_api, two_stores, TestApp, ADMIN_TOKEN, FAST_POLICIES,
};

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

/// `ordersync ARGS --json`, parsed; panics with stderr on failure.
fn cli_json(app: &TestApp, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let out = app.cli(&args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Add an order to `store`'s shop (and the courier, pinned at `courier_status`).
fn add_order(app: &TestApp, store: &str, courier_status: Option<i64>) -> String {
    let order = app
        .sim
        .add_shop_order(store, "cod", "processing", courier_status.is_some());
    let reference = format!("{store}-{}", order["number"].as_str().unwrap());
    if let Some(status) = courier_status {
        assert!(app.sim.set_courier_status(&reference, status));
    }
    reference
}

fn references(orders: &Value) -> Vec<&str> {
    orders
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["reference"].as_str().unwrap())
        .collect()
}

fn without_clock(mut trace: Value) -> Value {
    trace.as_object_mut().unwrap().remove("generated_at");
    trace
}

async fn refresh(app: &TestApp, store: &str, reference: &str) {
    app.run_ok(NewJob::for_order(JobKind::RefreshStatus, store, reference))
        .await;
    app.wait_idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_shows_history_retries_a_replayed_failure_the_invoice_and_texts() {
    let mut app = TestApp::spawn(two_stores(3)).await;
    app.start_worker(&[]);
    let reference = add_order(&app, "BETA", Some(4));
    app.import_and_track().await;

    // An invoice whose first job fails for good (the ERP rejects the look-up)
    // and is replayed by an operator.
    app.sim.fail_next(Service::Erp, 1, 400, None);
    let failed = app
        .enqueue_one(NewJob::for_order(
            JobKind::CreateInvoice,
            "BETA",
            &reference,
        ))
        .await;
    assert_eq!(
        app.wait_final(failed).await.last().unwrap().outcome,
        "failed"
    );
    let out = app.cli(&["jobs", "replay", &failed.to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replay: uuid::Uuid =
        sqlx::query_scalar("SELECT replayed_as FROM dead_letters WHERE job_id = $1")
            .bind(failed)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        app.wait_final(replay).await.last().unwrap().outcome,
        "succeeded"
    );

    // In transit (its text fails once and is retried), then delivered.
    assert!(app.sim.set_courier_status(&reference, 9));
    app.sim.fail_next(Service::Sms, 1, 503, None);
    refresh(&app, "BETA", &reference).await;
    assert!(app.sim.set_courier_status(&reference, 41));
    refresh(&app, "BETA", &reference).await;

    let phone: String = sqlx::query_scalar("SELECT phone FROM orders WHERE reference = $1")
        .bind(&reference)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(app.sim.sms_messages_to(&phone).len(), 2);

    let trace = cli_json(&app, &["orders", "trace", &reference]);
    let api = serve_api(&app).await;
    let base = &api.base;
    let (status, over_http) = get(&format!("{base}/admin/api/orders/{reference}")).await;
    assert_eq!(status, 200, "{over_http}");
    assert_eq!(
        without_clock(trace.clone()),
        without_clock(over_http.clone()),
        "the CLI and the API serve the same trace"
    );

    let order = &trace["order"];
    assert_eq!(order["reference"], reference.as_str());
    assert_eq!(order["store"], "BETA");
    assert_eq!(order["status"], "delivered");
    assert_eq!(order["status_is_final"], true);
    assert_eq!(order["courier_code"], 41);
    let courier = app.sim.courier_order_by_ref(&reference).unwrap();
    assert_eq!(
        order["tracking_number"].as_str(),
        courier["display_id"].as_str()
    );
    let masked = order["phone_masked"].as_str().unwrap();
    assert!(
        masked.contains('•') && masked.ends_with(&phone[phone.len() - 4..]),
        "{masked}"
    );
    for body in [trace.to_string(), over_http.to_string()] {
        assert!(!body.contains(&phone), "the full phone number leaked");
    }

    let history: Vec<&str> = trace["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["pending", "in_transit", "delivered"]);

    let jobs = trace["jobs"].as_array().unwrap();
    let of_kind =
        |kind: &str| -> Vec<&Value> { jobs.iter().filter(|j| j["kind"] == kind).collect() };
    let invoices = of_kind("create_invoice");
    assert_eq!(invoices.len(), 2, "{jobs:#?}");
    assert_eq!(invoices[0]["job_id"], failed.to_string());
    assert_eq!(invoices[0]["state"], "failed");
    assert_eq!(invoices[0]["runs"][0]["http_status"], 400);
    assert_eq!(invoices[0]["dead_letter"]["state"], "replayed");
    assert_eq!(
        invoices[0]["dead_letter"]["replayed_as"],
        replay.to_string()
    );
    assert_eq!(invoices[1]["job_id"], replay.to_string());
    assert_eq!(invoices[1]["replay_of"], failed.to_string());
    assert_eq!(invoices[1]["state"], "succeeded");
    let texts = of_kind("send_sms");
    assert_eq!(texts.len(), 2, "{jobs:#?}");
    let in_transit = texts
        .iter()
        .find(|j| j["args"]["status"] == "in_transit")
        .unwrap();
    let outcomes: Vec<&str> = in_transit["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "succeeded"]);
    assert_eq!(in_transit["runs"][0]["http_status"], 503);
    assert!(in_transit["runs"][0]["next_run_at"].is_string());
    assert_eq!(of_kind("refresh_status").len(), 2);
    assert_eq!(trace["job_totals"]["create_invoice"], 2);

    assert_eq!(trace["invoice"]["state"], "created");
    assert_eq!(trace["invoice"]["job_id"], replay.to_string());
    let erp_name = trace["invoice"]["erp_name"].as_str().unwrap();
    let sms = trace["sms"].as_array().unwrap();
    assert_eq!(sms.len(), 2);
    for text in sms {
        assert_eq!(text["state"], "sent");
        assert!(text["provider_message_id"].is_string());
        assert_eq!(text["phone_masked"], masked);
    }
    let syncs = &trace["store_syncs"];
    assert!(
        syncs["fetch_tracking"]["last_run"]["latest_run"]["detail"]["matched"]
            .as_i64()
            .unwrap()
            > 0,
        "{syncs}"
    );
    assert_eq!(syncs["import_orders"]["last_run"]["state"], "succeeded");
    assert!(syncs["import_orders"]["last_success_at"].is_string());

    assert_eq!(trace["needs_attention"], false);
    assert_eq!(
        trace["diagnosis"][0],
        format!("all good: delivered (final) and invoiced ({erp_name})")
    );

    let out = app.cli(&["orders", "trace", &reference]);
    assert!(out.status.success());
    let report = String::from_utf8(out.stdout).unwrap();
    let at = |title: &str| {
        report
            .find(&format!("\n{title}"))
            .unwrap_or_else(|| panic!("no {title} section: {report}"))
    };
    assert!(at("Diagnosis") < at("Order\n"));
    for title in [
        "Status history",
        "Jobs (",
        "Store syncs (BETA)",
        "Invoice",
        "SMS",
    ] {
        assert!(at("Order\n") < at(title), "{report}");
    }
    assert!(report.contains("all good: delivered"), "{report}");
    assert!(
        report.contains(masked) && !report.contains(&phone),
        "{report}"
    );
    assert!(
        report.contains(&format!("replayed as {replay}")),
        "{report}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_of_an_order_the_courier_does_not_know_names_the_wrong_account() {
    let mut app =
        TestApp::spawn_with(two_stores(10), FAST_POLICIES, alph_on_the_primary_account).await;
    app.start_worker(&[]);
    for kind in [JobKind::ImportOrders, JobKind::FetchTracking] {
        app.run_ok(NewJob::for_store(kind, "ALPH")).await;
    }
    let refs: Vec<String> =
        sqlx::query_scalar("SELECT reference FROM orders WHERE store = 'ALPH' ORDER BY id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let untracked = &refs[0];

    let trace = cli_json(&app, &["orders", "trace", untracked]);
    assert_eq!(trace["needs_attention"], true);
    let first = trace["diagnosis"][0].as_str().unwrap();
    assert!(
        first.starts_with("no tracking number: the store's last fetch_tracking"),
        "{first}"
    );
    for part in [
        "orders of courier account 'primary'",
        "matched 0 of ALPH's orders",
        "mapped to the wrong courier account",
        "domain.md §1",
    ] {
        assert!(first.contains(part), "missing '{part}' in: {first}");
    }
    assert_eq!(
        trace["store_syncs"]["fetch_tracking"]["last_run"]["latest_run"]["detail"]["unknown_refs"],
        10
    );

    // The field report's other symptom: an order tracked under the right key,
    // now polled with the wrong one, is "not found".
    let polled = refs
        .iter()
        .find(|r| *r != untracked && app.sim.courier_order_by_ref(r).is_some())
        .unwrap();
    let courier_id = app.sim.courier_order_by_ref(polled).unwrap()["id"]
        .as_i64()
        .unwrap();
    sqlx::query(
        "UPDATE orders SET courier_order_id = $1, status = 'in_transit', status_changed_at = now(),
                           last_polled_at = now() WHERE reference = $2",
    )
    .bind(courier_id)
    .bind(polled)
    .execute(&app.db)
    .await
    .unwrap();
    let poll = app
        .enqueue_one(NewJob::for_order(JobKind::RefreshStatus, "ALPH", polled))
        .await;
    assert_eq!(
        app.wait_final(poll).await.last().unwrap().outcome,
        "not_found"
    );

    let api = serve_api(&app).await;
    let base = &api.base;
    let (status, trace) = get(&format!("{base}/admin/api/orders/{polled}")).await;
    assert_eq!(status, 200);
    let first = trace["diagnosis"][0].as_str().unwrap();
    assert!(
        first.starts_with(&format!(
            "the courier does not know this order: refresh_status job {poll} got not_found"
        )),
        "{first}"
    );
    assert!(
        first.contains("courier account 'primary' does not know order"),
        "{first}"
    );
    assert!(
        first.contains(&format!("`ordersync jobs replay {poll}`")),
        "{first}"
    );
    let job = trace["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == poll.to_string())
        .unwrap();
    assert_eq!(job["dead_letter"]["state"], "pending");
    assert_eq!(job["dead_letter"]["outcome"], "not_found");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_stuck_lists_exactly_the_aged_unsettled_orders_per_store() {
    let mut app = TestApp::spawn(two_stores(2)).await;
    app.start_worker(&[]);
    let alph_stuck = [
        add_order(&app, "ALPH", Some(4)),
        add_order(&app, "ALPH", Some(9)),
    ];
    let alph_delivered = add_order(&app, "ALPH", Some(41));
    let _alph_fresh = add_order(&app, "ALPH", Some(4));
    let beta_stuck = add_order(&app, "BETA", Some(4));
    let beta_untracked = add_order(&app, "BETA", None);
    let _beta_untracked_fresh = add_order(&app, "BETA", None);
    app.import_and_track().await;

    let age = |refs: Vec<String>, column: &'static str, days: i32| {
        let db = app.db.clone();
        async move {
            let done = sqlx::query(&format!(
                "UPDATE orders SET {column} = now() - make_interval(days => $2) WHERE reference = ANY($1)"
            ))
            .bind(&refs)
            .bind(days)
            .execute(&db)
            .await
            .unwrap();
            assert_eq!(done.rows_affected(), refs.len() as u64);
        }
    };
    age(alph_stuck.to_vec(), "status_changed_at", 5).await;
    age(vec![alph_delivered], "status_changed_at", 10).await;
    age(vec![beta_stuck.clone()], "status_changed_at", 4).await;
    age(vec![beta_untracked.clone()], "imported_at", 6).await;
    let mut alph_sorted = alph_stuck.to_vec();
    alph_sorted.sort();

    let stuck = cli_json(&app, &["orders", "stuck"]);
    assert_eq!(stuck["days"], 3);
    assert_eq!(stuck["total"], 4, "{stuck:#}");
    assert_eq!(stuck["truncated"], false);
    let expected = [
        beta_untracked.as_str(),
        alph_sorted[0].as_str(),
        alph_sorted[1].as_str(),
        beta_stuck.as_str(),
    ];
    assert_eq!(
        references(&stuck["orders"]),
        expected,
        "longest-stuck first"
    );
    let days: Vec<i64> = stuck["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["days_in_status"].as_i64().unwrap())
        .collect();
    assert_eq!(days, [6, 5, 5, 4]);
    assert_eq!(stuck["orders"][0]["status"], "untracked");
    assert_eq!(stuck["orders"][0]["tracking_number"], Value::Null);
    let per_store = stuck["per_store"].as_array().unwrap();
    assert_eq!(per_store.len(), 2);
    assert_eq!(per_store[0]["store"], "ALPH");
    assert_eq!(per_store[0]["stuck"], 2);
    assert_eq!(
        per_store[0]["by_status"],
        serde_json::json!({"pending": 1, "in_transit": 1})
    );
    assert_eq!(per_store[1]["store"], "BETA");
    assert_eq!(
        per_store[1]["by_status"],
        serde_json::json!({"pending": 1, "untracked": 1})
    );

    let beta = cli_json(&app, &["orders", "stuck", "--store", "BETA"]);
    assert_eq!(
        references(&beta["orders"]),
        [beta_untracked.as_str(), beta_stuck.as_str()]
    );
    let five = cli_json(&app, &["orders", "stuck", "--days", "5"]);
    assert_eq!(references(&five["orders"]), expected[..3]);
    let one = cli_json(&app, &["orders", "stuck", "--limit", "1"]);
    assert_eq!(references(&one["orders"]), expected[..1]);
    assert_eq!(one["total"], 4);
    assert_eq!(one["truncated"], true);

    let out = app.cli(&["orders", "stuck"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("more than 3 day(s)") && table.contains(": 4\n"),
        "{table}"
    );
    for reference in expected {
        assert!(table.contains(reference), "{table}");
    }
    let bad = app.cli(&["orders", "stuck", "--days", "-1"]);
    assert!(!bad.status.success());
    let bad = app.cli(&["orders", "stuck", "--store", "NOPE"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("no orders of store 'NOPE' in the database; stores with orders: ALPH, BETA"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // The order itself tells the same story.
    let trace = cli_json(&app, &["orders", "trace", &alph_sorted[0]]);
    assert!(
        trace["diagnosis"][0]
            .as_str()
            .unwrap()
            .contains("unchanged for 5 days"),
        "{:#}",
        trace["diagnosis"]
    );

    let api = serve_api(&app).await;
    let base = &api.base;
    let (status, over_http) = get(&format!("{base}/admin/api/orders/stuck?days=3")).await;
    assert_eq!(
        status, 200,
        "`stuck` is not taken for a reference: {over_http}"
    );
    assert_eq!(references(&over_http["orders"]), expected);
    assert_eq!(over_http["per_store"], stuck["per_store"]);
    let (_, beta) = get(&format!("{base}/admin/api/orders/stuck?store=BETA&limit=1")).await;
    assert_eq!(references(&beta["orders"]), expected[..1]);
    assert_eq!(beta["total"], 2);
    for (query, status, message) in [
        ("days=abc", 400, "days 'abc' is not a whole number of days"),
        ("limit=0", 400, "limit '0' is not a number from 1 to 10000"),
        ("store=NOPE", 404, "no orders of store 'NOPE'"),
        ("dayz=3", 400, "unknown field `dayz`"),
    ] {
        let (got, body) = get(&format!("{base}/admin/api/orders/stuck?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(message),
            "{query}: {body}"
        );
    }
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_reference_is_a_404_and_a_failed_command_with_hints() {
    let mut app = TestApp::spawn(two_stores(2)).await;
    app.start_worker(&[]);
    app.import_and_track().await;
    let existing: String =
        sqlx::query_scalar("SELECT reference FROM orders WHERE store = 'BETA' ORDER BY id LIMIT 1")
            .fetch_one(&app.db)
            .await
            .unwrap();

    let stderr = |args: &[&str]| {
        let out = app.cli(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        String::from_utf8(out.stderr).unwrap()
    };
    let missing = stderr(&["orders", "trace", "BETA-999999"]);
    assert!(
        missing.contains("no order with reference 'BETA-999999'"),
        "{missing}"
    );
    assert!(
        missing.contains("hint: store BETA's last import_orders finished"),
        "{missing}"
    );
    let lower = existing.to_lowercase();
    let typo = stderr(&["orders", "trace", &lower]);
    assert!(
        typo.contains(&format!("no order with reference '{lower}'"))
            && typo.contains(&format!("did you mean {existing}?")),
        "{typo}"
    );
    let store = stderr(&["orders", "trace", "ZZZZ-1"]);
    assert!(
        store.contains("no orders of store 'ZZZZ' in the database; stores with orders: ALPH, BETA"),
        "{store}"
    );
    let empty = stderr(&["orders", "trace", " "]);
    assert!(empty.contains("the order reference is empty"), "{empty}");

    let api = serve_api(&app).await;
    let base = &api.base;
    let (status, body) = get(&format!("{base}/admin/api/orders/BETA-999999")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "no order with reference 'BETA-999999'");
    assert!(!body["hints"].as_array().unwrap().is_empty(), "{body}");
    let (status, body) = get(&format!("{base}/admin/api/orders/{lower}")).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["hints"][0],
        format!("did you mean {existing}? (references are case-sensitive)")
    );
    let anonymous = reqwest::get(format!("{base}/admin/api/orders/{existing}"))
        .await
        .unwrap();
    assert_eq!(
        anonymous.status(),
        401,
        "the trace is behind the bearer token"
    );
    app.cleanup().await;
}
