//! ERPNext: Frappe's validation errors, duplicate `po_no`, and docstatus
//! transitions.

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{boot, client, erp_post, invoice};
use crate::SimConfig;

/// `_server_messages` is a JSON string of a list of JSON strings.
fn server_message(body: &Value) -> String {
    let outer: Vec<String> =
        serde_json::from_str(body["_server_messages"].as_str().unwrap()).unwrap();
    let inner: Value = serde_json::from_str(&outer[0]).unwrap();
    inner["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn erp_rejects_lowercase_cash_and_counts_duplicate_invoices() {
    let sim = boot(SimConfig::demo(12)).await;
    let res = erp_post(&sim, &invoice("ALPH-1001", "cash"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::EXPECTATION_FAILED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["exc_type"], "LinkValidationError");
    assert!(body["exception"]
        .as_str()
        .unwrap()
        .contains("Could not find Mode of Payment: cash"));
    assert!(server_message(&body).contains("Could not find Mode of Payment: cash"));
    let exc: Vec<String> = serde_json::from_str(body["exc"].as_str().unwrap()).unwrap();
    assert!(exc[0].contains("Traceback"));
    assert_eq!(sim.invoice_count("ALPH-1001"), 0);

    let mut no_customer = invoice("ALPH-1001", "Cash");
    no_customer["customer"] = json!("");
    let body: Value = erp_post(&sim, &no_customer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["exc_type"], "MandatoryError");

    let mut names = Vec::new();
    for _ in 0..2 {
        let res = erp_post(&sim, &invoice("ALPH-1001", "Cash"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let doc: Value = res.json().await.unwrap();
        assert_eq!(doc["data"]["docstatus"], 0);
        assert_eq!(
            doc["data"]["posting_date"], "2026-11-20",
            "set_posting_time keeps the date"
        );
        names.push(doc["data"]["name"].as_str().unwrap().to_string());
    }
    assert!(
        names[0].starts_with("ACC-SINV-") && names[0] < names[1],
        "{names:?}"
    );
    assert_eq!(sim.invoice_count("ALPH-1001"), 2);
    assert_eq!(sim.invoices().len(), 2);

    let res = client()
        .get(format!("{}/api/resource/Sales Invoice", sim.erp_url()))
        .header("Authorization", "token demo-erp-key:demo-erp-secret")
        .query(&[
            ("filters", r#"[["po_no","=","ALPH-1001"]]"#),
            ("fields", r#"["name","po_no"]"#),
            ("limit_page_length", "10"),
        ])
        .send()
        .await
        .unwrap();
    let data = res.json::<Value>().await.unwrap()["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(data.len(), 2);
    assert_eq!(
        data[0].as_object().unwrap().len(),
        2,
        "only requested fields"
    );
    assert_eq!(data[0]["po_no"], "ALPH-1001");

    let res = client()
        .get(format!("{}/api/resource/Sales%20Invoice", sim.erp_url()))
        .header("Authorization", "token demo-erp-key:wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.json::<Value>().await.unwrap()["exc_type"],
        "AuthenticationError"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn erp_with_unique_po_no_answers_409_on_the_second_invoice() {
    let config = SimConfig {
        erp_unique_po_no: true,
        ..SimConfig::demo(12)
    };
    let sim = boot(config).await;
    assert_eq!(
        erp_post(&sim, &invoice("BETA-1001", "Instapay"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let res = erp_post(&sim, &invoice("BETA-1001", "Instapay"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(
        res.json::<Value>().await.unwrap()["exc_type"],
        "DuplicateEntryError"
    );
    assert_eq!(sim.invoice_count("BETA-1001"), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn erp_submits_before_cancel_and_refuses_draft_to_cancelled() {
    let sim = boot(SimConfig::demo(12)).await;
    let doc: Value = erp_post(&sim, &invoice("GAMA-1001", "Kashier Card"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = format!(
        "{}/api/resource/Sales%20Invoice/{}",
        sim.erp_url(),
        doc["data"]["name"].as_str().unwrap()
    );
    let put = |docstatus: i64| {
        client()
            .put(&url)
            .header("Authorization", "token demo-erp-key:demo-erp-secret")
            .json(&json!({ "docstatus": docstatus }))
            .send()
    };
    let res = put(2).await.unwrap();
    assert_eq!(res.status(), StatusCode::EXPECTATION_FAILED);
    assert_eq!(
        res.json::<Value>().await.unwrap()["exc_type"],
        "DocstatusTransitionError"
    );
    assert_eq!(
        put(1).await.unwrap().json::<Value>().await.unwrap()["data"]["status"],
        "Paid"
    );
    assert_eq!(put(2).await.unwrap().status(), StatusCode::OK);
    assert_eq!(sim.invoices()[0]["docstatus"], 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn payments_link_to_invoices_and_every_move_is_counted() {
    let sim = boot(SimConfig::demo(12)).await;
    let auth = "token demo-erp-key:demo-erp-secret";
    let mut live = invoice("DELT-1001", "Kashier Card");
    live["is_pos"] = json!(0);
    live["update_stock"] = json!(1);
    live["docstatus"] = json!(1);
    live.as_object_mut().unwrap().remove("payments");
    let doc: Value = erp_post(&sim, &live)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let name = doc["data"]["name"].as_str().unwrap().to_string();
    assert_eq!(doc["data"]["status"], "Unpaid");
    let total = doc["data"]["grand_total"].as_f64().unwrap();
    let pay = |amount: f64, account: &str| {
        client()
            .post(format!("{}/api/resource/Payment%20Entry", sim.erp_url()))
            .header("Authorization", auth)
            .json(&json!({
                "payment_type": "Receive", "party_type": "Customer", "party": "Amina",
                "paid_to": account, "paid_amount": amount, "received_amount": amount,
                "reference_no": "DELT-1001", "docstatus": 1,
                "references": [{"reference_doctype": "Sales Invoice", "reference_name": name, "allocated_amount": amount}],
            }))
            .send()
    };
    let res = pay(total, "Kashier - NOWHERE").await.unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap()["exc_type"],
        "LinkValidationError"
    );
    let entry: Value = pay(total, "Kashier - SIM")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entry_name = entry["data"]["name"].as_str().unwrap().to_string();
    let res = pay(1.0, "Kashier - SIM").await.unwrap();
    assert_eq!(
        res.status(),
        StatusCode::EXPECTATION_FAILED,
        "nothing left to allocate"
    );
    assert_eq!(sim.invoices()[0]["status"], "Paid");

    let put = |path: String, docstatus: i64| {
        client()
            .put(format!("{}/api/resource/{path}", sim.erp_url()))
            .header("Authorization", auth)
            .json(&json!({ "docstatus": docstatus }))
            .send()
    };
    let res = put(format!("Sales%20Invoice/{name}"), 2).await.unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap()["exc_type"],
        "LinkExistsError"
    );
    let res = put(format!("Payment%20Entry/{entry_name}"), 2)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        sim.invoices()[0]["status"],
        "Unpaid",
        "the payment is undone"
    );
    let res = put(format!("Sales%20Invoice/{name}"), 2).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = put(format!("Sales%20Invoice/{name}"), 1).await.unwrap();
    assert_eq!(
        res.json::<Value>().await.unwrap()["exc_type"],
        "DocstatusTransitionError"
    );

    let listed: Value = client()
        .get(format!("{}/api/resource/Payment%20Entry", sim.erp_url()))
        .header("Authorization", auth)
        .query(&[
            ("filters", r#"[["reference_no","=","DELT-1001"]]"#),
            ("fields", r#"["name","docstatus"]"#),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["data"],
        json!([{"name": entry_name, "docstatus": 2}])
    );
    let counts = sim.erp_counts();
    assert_eq!(
        (
            counts.invoices,
            counts.submitted,
            counts.cancelled,
            counts.payments,
            counts.payments_cancelled,
            counts.stock_moves
        ),
        (1, 1, 1, 1, 1, 1),
        "{counts:?}"
    );
    assert!(counts.violations.is_empty(), "{:?}", counts.violations);
    sim.shutdown().await;
}
