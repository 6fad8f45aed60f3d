//! mNotify: accepted texts are recorded per recipient; bad keys and bodies
//! are refused and record nothing.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{boot, client};
use crate::SimConfig;

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
