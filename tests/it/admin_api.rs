//! The admin JSON API over failed jobs, behind its bearer token.

use ordersync::domain::JobKind;
use serde_json::{json, Value};

use crate::helpers::{serve_api, two_stores, TestApp, ADMIN_TOKEN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_the_bearer_token() {
    let app = TestApp::spawn(two_stores(1)).await;
    let api = serve_api(&app).await;
    let base = &api.base;
    let http = reqwest::Client::new();
    let none = http
        .get(format!("{base}/admin/api/jobs/failed"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    let wrong = http
        .get(format!("{base}/admin/api/jobs/failed"))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"], "missing or invalid bearer token");
    let ok = http
        .get(format!("{base}/admin/api/jobs/failed"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_jobs_can_be_listed_shown_replayed_and_discarded_over_http() {
    let mut app = TestApp::spawn(two_stores(1)).await;
    app.start_worker(&[JobKind::Noop]);
    let first = app.failed_noop().await;
    let second = app.failed_noop().await;
    let api = serve_api(&app).await;
    let base = &api.base;
    let http = reqwest::Client::new();

    let groups: Value = http
        .get(format!("{base}/admin/api/jobs/failed?kind=noop"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(groups[0]["count"], 2, "{groups}");
    let fingerprint = groups[0]["fingerprint"].as_str().unwrap().to_owned();
    let jobs: Value = http
        .get(format!("{base}/admin/api/jobs/failed?ungrouped=true"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs.as_array().unwrap().len(), 2);

    let bad = http
        .get(format!("{base}/admin/api/jobs/failed?kind=fax"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("unknown job kind 'fax'"));

    let history: Value = http
        .get(format!("{base}/admin/api/jobs/{first}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(history["job"]["state"], "failed");
    assert_eq!(history["failed"]["fingerprint"], fingerprint.as_str());
    let missing = http
        .get(format!("{base}/admin/api/jobs/{}", uuid::Uuid::nil()))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let discarded: Value = http
        .post(format!("{base}/admin/api/jobs/discard"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"ids": [second], "by": "ops"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discarded["summary"],
        json!({"resolved": 1, "skipped": 0, "errors": 0})
    );

    let replayed: Value = http
        .post(format!("{base}/admin/api/jobs/replay"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"fingerprint": fingerprint}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        replayed["summary"],
        json!({"resolved": 1, "skipped": 0, "errors": 0}),
        "{replayed}"
    );
    let new_job: uuid::Uuid = replayed["results"][0]["new_job"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let runs = app.wait_final(new_job).await;
    assert_eq!(runs.len(), 1, "the replay ran with a fresh budget");
    let again: Value = http
        .post(format!("{base}/admin/api/jobs/replay"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"ids": [first]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["results"][0]["result"], "skipped");
    let resolved_by: String =
        sqlx::query_scalar("SELECT resolved_by FROM dead_letters WHERE job_id = $1")
            .bind(second)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(resolved_by, "api:ops");
    let nothing = http
        .post(format!("{base}/admin/api/jobs/replay"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(nothing.status(), 400);
    app.cleanup().await;
}
