//! Texts of unknown fate: listed (CLI, admin API, metric), never re-sent by
//! themselves or by a replay, and resent on purpose once, recorded.

use std::time::Duration;

use ordersync::domain::JobKind;
use ordersync::queue::NewJob;
use ordersync_simulator::{Knobs, Service};
use serde_json::{json, Value};

use crate::helpers::{serve_api, two_stores, TestApp, ADMIN_TOKEN, FAST_POLICIES};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_of_unknown_fate_is_listed_and_resent_only_on_purpose() {
    // A gateway that takes longer than our timeout: the send may have happened.
    let mut app = TestApp::spawn_with(two_stores(2), FAST_POLICIES, |toml| {
        *toml = toml.replace("timeout_ms = 5000", "timeout_ms = 300");
    })
    .await;
    app.start_worker(&[]);
    app.import_and_track().await;
    let (reference, store, phone): (String, String, String) = sqlx::query_as(
        "SELECT reference, store, phone FROM orders
         WHERE courier_order_id IS NOT NULL AND phone IS NOT NULL
           AND status NOT IN ('delivered', 'cancelled', 'returned')
         ORDER BY id LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(app.sim.set_courier_status(&reference, 41));
    app.sim.set_knobs(
        Service::Sms,
        Knobs {
            timeout_rate: 1.0,
            hang: Duration::from_millis(800),
            ..Knobs::default()
        },
    );
    app.enqueue_one(NewJob::for_order(
        JobKind::RefreshStatus,
        &store,
        &reference,
    ))
    .await;
    app.eventually("the text's fate to be unknown", || async {
        let state: Option<String> = sqlx::query_scalar(
            "SELECT m.state FROM sms_messages m JOIN orders o ON o.id = m.order_id
             WHERE o.reference = $1 AND m.status = 'delivered'",
        )
        .bind(&reference)
        .fetch_optional(&app.db)
        .await
        .unwrap();
        (state.as_deref() == Some("unknown")).then_some(())
    })
    .await;
    app.sim.set_knobs(Service::Sms, Knobs::default());
    // Whatever the hung request left at the gateway, a resend adds one.
    let before = app.sim.sms_messages_to(&phone).len();

    let api = serve_api(&app).await;
    let client = reqwest::Client::new();
    let listed: Value = client
        .get(format!("{}/admin/api/sms/unknown", api.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["reference"], reference.as_str());
    assert_eq!(listed[0]["status"], "delivered");
    let masked = listed[0]["phone"].as_str().unwrap();
    assert!(masked.contains('•') && masked != phone, "{masked}");
    let metrics = client
        .get(format!("{}/metrics", api.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!("ordersync_sms_unknown{{store=\"{store}\"}} 1")),
        "{metrics}"
    );

    // A replay of the failed job would only meet the unknown claim again: it
    // is refused with the way to resend on purpose.
    let out = app.cli(&["jobs", "replay", "--all", "--kind", "send_sms", "--json"]);
    let replay: Value = serde_json::from_slice(&out.stdout).unwrap();
    let reason = replay["results"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("ordersync sms resend --order"), "{replay}");

    let out = app.cli(&[
        "sms",
        "resend",
        "--order",
        &reference,
        "--status",
        "delivered",
        "--dry-run",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("would resend 1 of 1"), "{text}");
    assert_eq!(
        app.sim.sms_messages_to(&phone).len(),
        before,
        "a dry run sends nothing"
    );

    let resent: Value = client
        .post(format!("{}/admin/api/sms/resend", api.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"order": reference, "status": "delivered", "by": "ops-anna"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resent["results"][0]["result"], "resent", "{resent}");
    let new_job: uuid::Uuid = resent["results"][0]["job_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        app.wait_final(new_job).await.last().unwrap().outcome,
        "succeeded"
    );
    assert_eq!(app.sim.sms_messages_to(&phone).len(), before + 1);
    let (state, resends, by): (String, i32, Option<String>) = sqlx::query_as(
        "SELECT m.state, m.resends, m.resend_requested_by FROM sms_messages m JOIN orders o ON o.id = m.order_id
         WHERE o.reference = $1 AND m.status = 'delivered'",
    )
    .bind(&reference)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(
        (state.as_str(), resends, by.as_deref()),
        ("sent", 1, Some("api:ops-anna"))
    );
    let replayed_as: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT replayed_as FROM dead_letters WHERE kind = 'send_sms' AND order_ref = $1",
    )
    .bind(&reference)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(replayed_as, Some(new_job));

    // Sent now: a second request resends nothing.
    let out = app.cli(&[
        "sms",
        "resend",
        "--order",
        &reference,
        "--status",
        "delivered",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("resent 0 of 1"), "{text}");
    assert_eq!(app.sim.sms_messages_to(&phone).len(), before + 1);
    drop(api);
    app.cleanup().await;
}
