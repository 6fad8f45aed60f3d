//! The simulator over real HTTP, one module per service or concern: each test
//! starts its own server on port 0.

mod admin;
mod config;
mod courier;
mod erp;
mod faults;
mod shop;
mod sms;
mod twilio;
mod yalidine;

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::{start, SimConfig, SimHandle};

const ALPH_KEY: &str = "demo-maystro-alph-token";
const PRIMARY_KEY: &str = "demo-maystro-primary-token";

async fn boot(config: SimConfig) -> SimHandle {
    start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn courier_get(sim: &SimHandle, key: &str, path: &str) -> (StatusCode, Value) {
    let res = client()
        .get(format!("{}{path}", sim.courier_url()))
        .header("Authorization", format!("Token {key}"))
        .send()
        .await
        .unwrap();
    (res.status(), res.json().await.unwrap_or(Value::Null))
}

fn woo(sim: &SimHandle, store: &str, path: &str) -> reqwest::RequestBuilder {
    let lower = store.to_lowercase();
    client()
        .get(format!("{}/wp-json/wc/v3{path}", sim.shop_url(store)))
        .basic_auth(format!("ck_demo_{lower}"), Some(format!("cs_demo_{lower}")))
}

fn erp_post(sim: &SimHandle, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/api/resource/Sales%20Invoice", sim.erp_url()))
        .header("Authorization", "token demo-erp-key:demo-erp-secret")
        .json(body)
}

fn invoice(po_no: &str, mode: &str) -> Value {
    json!({
        "customer": "Amine Benali", "posting_date": "2026-11-20", "set_posting_time": 1,
        "due_date": "2026-11-20", "items": [{"item_code": "TSH-001", "qty": 2, "rate": 1800}],
        "docstatus": 0, "po_no": po_no, "is_pos": 1,
        "payments": [{"mode_of_payment": mode, "amount": 3600}],
    })
}
