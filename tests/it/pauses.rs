//! Operators' pauses: a paused store's jobs wait (parked, no attempt used,
//! never dead-lettered) while other stores' run, and all run after resume;
//! an unknown store, account or kind is refused naming it.

use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use serde_json::json;

use crate::helpers::{noops, two_stores, TestApp};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_stores_jobs_wait_and_run_after_resume() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[JobKind::Noop]);
    let paused = app.cli(&["pause", "--store", "BETA", "--reason", "stock audit"]);
    assert!(paused.status.success(), "{}", text(&paused));
    assert!(
        text(&paused).contains("paused store BETA"),
        "{}",
        text(&paused)
    );

    let beta = app.enqueue_ids(noops(20, json!({}))).await;
    let alph = app
        .enqueue_one(NewJob::for_store(JobKind::Noop, "ALPH"))
        .await;
    // Another store is not held back.
    let runs = app.wait_final(alph).await;
    assert_eq!(runs.last().unwrap().outcome, "succeeded", "{runs:#?}");
    // Every BETA job is parked at least once, none ran.
    app.eventually("every BETA job parked by the pause", || async {
        let parked = app
            .count("SELECT count(DISTINCT job_id) FROM job_runs WHERE error_class = 'paused' AND outcome = 'deferred'")
            .await;
        (parked == beta.len() as i64).then_some(())
    })
    .await;
    for id in &beta {
        let runs = app.runs(*id).await;
        assert!(
            runs.iter().all(|r| r.outcome == "deferred"
                && r.error_class.as_deref() == Some("paused")
                && r.attempt == 1),
            "{runs:#?}"
        );
        let message = runs[0].error_message.as_deref().unwrap_or_default();
        assert!(
            message.contains("store BETA is paused by") && message.contains("stock audit"),
            "{message}"
        );
    }
    let list = app.cli(&["pause", "--list"]);
    assert!(list.status.success(), "{}", text(&list));
    assert!(
        text(&list)
            .lines()
            .any(|l| l.starts_with("paused: store BETA by") && l.ends_with(": stock audit")),
        "{}",
        text(&list)
    );
    let stores = app.cli(&["stores"]);
    assert!(
        text(&stores).contains("paused: store BETA by"),
        "{}",
        text(&stores)
    );

    let resumed = app.cli(&["resume", "--store", "BETA"]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert!(
        text(&resumed).contains("resumed store BETA"),
        "{}",
        text(&resumed)
    );
    for id in &beta {
        let runs = app.wait_final(*id).await;
        let last = runs.last().unwrap();
        assert_eq!(last.outcome, "succeeded", "{runs:#?}");
        assert_eq!(last.attempt, 1, "the pause used no attempt: {runs:#?}");
    }
    assert_eq!(app.count("SELECT count(*) FROM dead_letters").await, 0);
    let list = app.cli(&["pause", "--list"]);
    assert_eq!(text(&list).trim(), "paused: nothing");
    app.cleanup().await;
}

#[tokio::test]
async fn pausing_an_unknown_store_account_or_kind_is_refused_naming_it() {
    let app = TestApp::spawn(two_stores(1)).await;
    for (args, expected) in [
        (
            &["pause", "--store", "NOPE"][..],
            "unknown store 'NOPE' (configured: ALPH, BETA)",
        ),
        (
            &["pause", "--account", "courier:nobody"][..],
            "unknown courier account 'nobody'",
        ),
        (
            &["pause", "--account", "bank:x"][..],
            "unknown account role 'bank'",
        ),
        (&["pause", "--kind", "nap"][..], "unknown job kind 'nap'"),
        (&["resume", "--store", "NOPE"][..], "unknown store 'NOPE'"),
        (&["pause"][..], "name what to pause"),
    ] {
        let out = app.cli(args);
        assert!(
            !out.status.success(),
            "{args:?} was accepted: {}",
            text(&out)
        );
        assert!(text(&out).contains(expected), "{args:?}: {}", text(&out));
    }
    let list = app.cli(&["pause", "--list"]);
    assert_eq!(text(&list).trim(), "paused: nothing", "nothing was paused");
    // A known account pauses and resumes.
    let out = app.cli(&["pause", "--account", "erp:erpnext"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = app.cli(&["pause", "--account", "erp:erpnext"]);
    assert!(text(&out).contains("already paused"), "{}", text(&out));
    let out = app.cli(&["resume", "--account", "erp:erpnext"]);
    assert!(
        text(&out).contains("resumed account erp:erpnext"),
        "{}",
        text(&out)
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pauses_are_made_listed_and_lifted_over_the_admin_api() {
    use crate::helpers::{serve_api, ADMIN_TOKEN};
    use serde_json::Value;
    let app = TestApp::spawn(two_stores(1)).await;
    let api = serve_api(&app).await;
    let base = &api.base;
    let http = reqwest::Client::new();
    for (body, expected) in [
        (json!({"store": "NOPE"}), "unknown store 'NOPE'"),
        (
            json!({"account": "courier:nobody"}),
            "unknown courier account 'nobody'",
        ),
        (json!({"kind": "nap"}), "unknown job kind 'nap'"),
        (json!({"store": "ALPH", "kind": "noop"}), "exactly one of"),
    ] {
        let response = http
            .post(format!("{base}/admin/api/pause"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(expected),
            "{body}: {error}"
        );
    }
    let unauthorized = http
        .post(format!("{base}/admin/api/pause"))
        .json(&json!({"kind": "send_sms"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);

    let paused: Value = http
        .post(format!("{base}/admin/api/pause"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"kind": "send_sms", "reason": "provider outage", "by": "ops"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(paused["paused"]["scope"], "kind", "{paused}");
    assert_eq!(paused["paused"]["by"], "api:ops", "{paused}");
    assert_eq!(paused["already_paused"], false, "{paused}");
    let listed: Value = http
        .get(format!("{base}/admin/api/paused"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["paused"][0]["name"], "send_sms", "{listed}");
    assert_eq!(listed["paused"][0]["reason"], "provider outage", "{listed}");
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ordersync_paused{scope=\"kind\",name=\"send_sms\"} 1"),
        "{metrics}"
    );
    let resumed: Value = http
        .post(format!("{base}/admin/api/resume"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"kind": "send_sms"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resumed["was_paused"]["by"], "api:ops", "{resumed}");
    let listed: Value = http
        .get(format!("{base}/admin/api/paused"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["paused"], json!([]), "{listed}");
    app.cleanup().await;
}
