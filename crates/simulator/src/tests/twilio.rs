//! Twilio: Basic auth per account, 21211 for a number that is not E.164,
//! texts listed newest first by recipient, errors in Twilio's shape.

use reqwest::StatusCode;
use serde_json::Value;

use super::{boot, client};
use crate::{Service, SimConfig, SimHandle};

const SID: &str = "AC00000000000000000000000000000009";
const TOKEN: &str = "sim-twilio-token";

async fn twilio() -> SimHandle {
    let mut config = SimConfig::demo(12);
    config.twilio_account_sid = SID.into();
    config.twilio_auth_token = TOKEN.into();
    boot(config).await
}

async fn send(sim: &SimHandle, token: &str, to: &str, body: &str) -> (StatusCode, Value) {
    let res = client()
        .post(format!(
            "{}/2010-04-01/Accounts/{SID}/Messages.json",
            sim.twilio_url()
        ))
        .basic_auth(SID, Some(token))
        .form(&[("To", to), ("From", "+15005550006"), ("Body", body)])
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap())
}

#[tokio::test]
async fn sends_lists_and_refuses_in_twilios_shapes() {
    let sim = twilio().await;
    let (status, first) = send(&sim, TOKEN, "+213555000001", "one").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(first["status"], "queued");
    send(&sim, TOKEN, "+213555000001", "two").await;
    send(&sim, TOKEN, "+213555000002", "other").await;

    let (status, bad) = send(&sim, TOKEN, "0555000001", "x").await;
    assert_eq!(
        (status, bad["code"].as_u64()),
        (StatusCode::BAD_REQUEST, Some(21211))
    );
    let (status, refused) = send(&sim, "wrong", "+213555000001", "x").await;
    assert_eq!(
        (status, refused["code"].as_u64()),
        (StatusCode::UNAUTHORIZED, Some(20003))
    );

    let listed: Value = client()
        .get(format!(
            "{}/2010-04-01/Accounts/{SID}/Messages.json?To=%2B213555000001",
            sim.twilio_url()
        ))
        .basic_auth(SID, Some(TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let bodies: Vec<&str> = listed["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["two", "one"], "newest first, that recipient only");
    assert_eq!(listed["messages"][1]["sid"], first["sid"]);
    assert!(chrono::DateTime::parse_from_rfc2822(
        listed["messages"][0]["date_created"].as_str().unwrap()
    )
    .is_ok());

    sim.fail_next(Service::Twilio, 1, 429, Some(4));
    let (status, limited) = send(&sim, TOKEN, "+213555000001", "three").await;
    assert_eq!(
        (status, limited["code"].as_u64()),
        (StatusCode::TOO_MANY_REQUESTS, Some(20429))
    );
    assert_eq!(
        sim.sms_messages_to("+213555000001").len(),
        2,
        "a refused text is not sent"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_status_callback_is_signed_over_the_url_and_sorted_fields() {
    let sim = twilio().await;
    let (_, sent) = send(&sim, TOKEN, "+213555000001", "one").await;
    let sid = sent["sid"].as_str().unwrap();
    let (fields, signature) =
        sim.twilio_status_callback("https://o.example/cb", sid, "undelivered");
    let field = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(field("MessageSid"), Some(sid));
    assert_eq!(field("MessageStatus"), Some("undelivered"));
    assert_eq!(field("ErrorCode"), Some("30003"));
    assert_eq!(field("To"), Some("+213555000001"));
    let (_, again) = sim.twilio_status_callback("https://o.example/cb", sid, "undelivered");
    assert_eq!(signature, again, "deterministic");
    let (_, other_url) = sim.twilio_status_callback("https://o.example/other", sid, "undelivered");
    assert_ne!(signature, other_url);
    sim.shutdown().await;
}
