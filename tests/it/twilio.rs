//! Texts through a Twilio SMS account: sent with Basic auth, delivery
//! receipts from signed status callbacks (a forged one refused), and a send
//! whose reply was lost found at Twilio instead of being left unknown.

use ordersync::domain::{JobKind, Source};
use ordersync::queue::NewJob;
use ordersync::texts::{self, Resend, Selection};
use ordersync_simulator::{twilio_sms_section, SimConfig};
use serde_json::Value;

use crate::helpers::{serve_api, two_stores, TestApp, FAST_POLICIES};

/// Our public callback URL as Twilio knows it (behind a proxy, not the
/// test's local address: the signature covers this one).
const CALLBACK_URL: &str = "https://ordersync.example/webhooks/sms/twilio";
const SID: &str = "AC00000000000000000000000000000001";

fn with_twilio() -> SimConfig {
    let mut config = two_stores(20);
    config.twilio_account_sid = SID.into();
    config.twilio_auth_token = "sim-twilio-auth-token".into();
    config
}

/// The generated config with its mNotify `[sms]` swapped for Twilio's, and
/// the given HTTP timeout.
async fn spawn(timeout_ms: u32) -> TestApp {
    TestApp::spawn_with(with_twilio(), FAST_POLICIES, |toml| {
        let start = toml.find("[sms]\n").unwrap();
        let end = start + toml[start..].find("\n\n").unwrap();
        let base = toml[start..end]
            .lines()
            .find_map(|l| l.strip_prefix("base_url = \""))
            .unwrap()
            .trim_end_matches('"')
            .trim_end_matches("/mnotify")
            .to_owned();
        let section = twilio_sms_section(&format!("{base}/twilio"), CALLBACK_URL);
        toml.replace_range(start..end, section.trim_end());
        *toml = toml.replace("timeout_ms = 5000", &format!("timeout_ms = {timeout_ms}"));
    })
    .await
}

/// Deliver a status change of a tracked BETA order that texts its customer:
/// (order id, E.164 phone).
async fn text_a_delivery(app: &TestApp) -> (i64, String) {
    let (order_id, reference, phone): (i64, String, String) = sqlx::query_as(
        "SELECT id, reference, phone FROM orders
         WHERE store = 'BETA' AND courier_order_id IS NOT NULL AND phone IS NOT NULL
           AND status IN ('pending', 'processing') ORDER BY id LIMIT 1",
    )
    .fetch_one(&app.db)
    .await
    .expect("a tracked BETA order in an early status");
    assert!(app.sim.set_courier_status(&reference, 41));
    app.run_ok(NewJob::for_order(
        JobKind::RefreshStatus,
        "BETA",
        &reference,
    ))
    .await;
    app.wait_idle().await;
    (order_id, format!("+213{}", phone.trim_start_matches('0')))
}

async fn sms_row(app: &TestApp, order_id: i64) -> (String, Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT state, provider_message_id, delivery_status FROM sms_messages
         WHERE order_id = $1 AND status = 'delivered'",
    )
    .bind(order_id)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

async fn post_callback(
    base: &str,
    fields: &[(String, String)],
    signature: Option<&str>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/webhooks/sms/twilio"))
        .form(fields);
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_status_callback_records_the_receipt_and_a_forged_one_is_refused() {
    let mut app = spawn(5000).await;
    app.start_worker(&[]);
    app.import_and_track().await;
    let (order_id, phone) = text_a_delivery(&app).await;

    let sent: Vec<_> = app
        .sim
        .sms_log()
        .into_iter()
        .filter(|(to, _, _)| *to == phone)
        .collect();
    assert_eq!(sent.len(), 1, "one text, in E.164: {sent:?}");
    let sid = sent[0].1.clone();
    assert!(sid.starts_with("SM"), "{sid}");
    assert!(sent[0].2.contains("delivered"), "{sent:?}");
    assert_eq!(
        sms_row(&app, order_id).await,
        ("sent".into(), Some(sid.clone()), None)
    );

    let api = serve_api(&app).await;
    let (fields, signature) = app
        .sim
        .twilio_status_callback(CALLBACK_URL, &sid, "delivered");
    let (status, body) = post_callback(&api.base, &fields, Some(&signature)).await;
    assert_eq!(
        (status, &body["recorded"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    assert_eq!(
        sms_row(&app, order_id).await.2.as_deref(),
        Some("delivered")
    );

    // The same signature over other fields, none at all, or one made for
    // another URL: refused, and the receipt stands.
    let (undelivered, _) = app
        .sim
        .twilio_status_callback(CALLBACK_URL, &sid, "undelivered");
    let (status, body) = post_callback(&api.base, &undelivered, Some(&signature)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.to_string()
            .contains("X-Twilio-Signature does not match"),
        "{body}"
    );
    assert_eq!(post_callback(&api.base, &undelivered, None).await.0, 401);
    let (fields, elsewhere) =
        app.sim
            .twilio_status_callback("https://attacker.example/cb", &sid, "undelivered");
    assert_eq!(
        post_callback(&api.base, &fields, Some(&elsewhere)).await.0,
        401
    );
    assert_eq!(
        sms_row(&app, order_id).await.2.as_deref(),
        Some("delivered")
    );

    // A genuine callback about a message that is not ours changes nothing.
    let (fields, signature) = app
        .sim
        .twilio_status_callback(CALLBACK_URL, "SMnotours", "failed");
    let (status, body) = post_callback(&api.base, &fields, Some(&signature)).await;
    assert_eq!(
        (status, &body["recorded"]),
        (200, &Value::Bool(false)),
        "{body}"
    );
    drop(api);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_whose_reply_timed_out_is_found_at_twilio_not_left_unknown_or_resent() {
    let mut app = spawn(500).await;
    app.start_worker(&[]);
    app.import_and_track().await;
    // Twilio records the text, then answers after our 500 ms timeout.
    app.sim
        .set_twilio_reply_delay(std::time::Duration::from_millis(1500));
    let (order_id, phone) = text_a_delivery(&app).await;
    let texts_to = |app: &TestApp| {
        app.sim
            .sms_log()
            .into_iter()
            .filter(|(to, _, _)| *to == phone)
            .map(|(_, sid, _)| sid)
            .collect::<Vec<_>>()
    };
    let sent = texts_to(&app);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (outcome, detail): (String, Option<Value>) = sqlx::query_as(
        "SELECT r.outcome, r.detail FROM job_runs r JOIN jobs j ON j.job_id = r.job_id
         JOIN orders o ON o.reference = j.order_ref
         WHERE j.kind = 'send_sms' AND o.id = $1 ORDER BY r.run DESC LIMIT 1",
    )
    .bind(order_id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(outcome, "succeeded", "{detail:?}");
    assert_eq!(detail.unwrap()["found_after_timeout"], true);
    assert_eq!(
        sms_row(&app, order_id).await,
        ("sent".into(), Some(sent[0].clone()), None)
    );

    // Left unknown all the same (as a worker dying mid-send leaves it), a
    // resend asks Twilio first, finds it, and sends nothing.
    app.sim.set_twilio_reply_delay(std::time::Duration::ZERO);
    sqlx::query(
        "UPDATE sms_messages SET state = 'unknown', provider_message_id = NULL,
                claimed_at = now() - interval '10 seconds'
         WHERE order_id = $1 AND status = 'delivered'",
    )
    .bind(order_id)
    .execute(&app.db)
    .await
    .unwrap();
    let reference: String = sqlx::query_scalar("SELECT reference FROM orders WHERE id = $1")
        .bind(order_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let selection = Selection::One {
        reference,
        status: "delivered".into(),
    };
    let results = texts::resend(&app.deps, &selection, "test", Source::Cli, false)
        .await
        .unwrap();
    match &results[..] {
        [Resend::Skipped { reason, .. }] => assert!(
            reason.contains(&format!("the gateway has it (sent as {})", sent[0])),
            "{reason}"
        ),
        other => panic!("expected the text found, not resent: {other:?}"),
    }
    assert_eq!(sms_row(&app, order_id).await.0, "sent");
    app.wait_idle().await;
    assert_eq!(texts_to(&app).len(), 1, "never texted twice");
    app.cleanup().await;
}
