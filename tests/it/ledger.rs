//! The ledger's SQL (`src/ledger/*.rs`), called directly against a fresh
//! migrated database per test: no simulator, no Redis, no worker. One file
//! per ledger file; rows are written with the ledger's own functions where
//! it has them, by hand only for what the jobs never write (old timestamps).

mod dead_letters;
mod invoices;
mod jobs;
mod ops;
mod orders;
mod runs;
mod sms;
mod summary;
mod webhooks;

use std::sync::Arc;

use chrono::{DateTime, SubsecRound as _, Utc};
use ordersync::domain::{FailureClass, JobEnvelope, JobKind, RunOutcome, Source};
use ordersync::ledger::dead_letters::NewDeadLetter;
use ordersync::ledger::orders::{CourierObservation, ImportedOrder};
use ordersync::ledger::runs::RunRecord;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// The namespace the jobs of these tests are recorded under.
const NAMESPACE: &str = "ledger-test";

/// Now, to Postgres's precision (microseconds), so stored times compare equal.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A first delivery of a `kind` job, as the enqueuer makes it.
fn envelope(kind: JobKind, store: &str, order_ref: Option<&str>, source: Source) -> JobEnvelope {
    JobEnvelope {
        job_id: Uuid::now_v7(),
        kind,
        store: store.to_owned(),
        order_ref: order_ref.map(str::to_owned),
        args: serde_json::Value::Null,
        attempt: 1,
        run: 1,
        max_attempts: 5,
        enqueued_at: now(),
        source,
        replay_of: None,
        ready_at: None,
        infra_retries: 0,
    }
}

/// Record `envelopes` in `jobs` under [`NAMESPACE`].
async fn insert_jobs(db: &PgPool, envelopes: &[&JobEnvelope]) {
    let rows: Vec<_> = envelopes.iter().map(|e| (*e, None)).collect();
    let inserted = ordersync::ledger::jobs::insert(db, NAMESPACE, &rows)
        .await
        .unwrap();
    assert_eq!(inserted, envelopes.len() as u64);
}

/// A recorded `kind` job of `store` (and `order_ref`), enqueued by `source`: its id.
async fn job(
    db: &PgPool,
    kind: JobKind,
    store: &str,
    order_ref: Option<&str>,
    source: Source,
) -> Uuid {
    let envelope = envelope(kind, store, order_ref, source);
    insert_jobs(db, &[&envelope]).await;
    envelope.job_id
}

/// Delivery `run` of `job_id` that ended with `outcome` just now.
fn run(job_id: Uuid, run: u32, outcome: RunOutcome) -> RunRecord {
    let finished = now();
    RunRecord {
        job_id,
        run,
        attempt: run,
        worker: Arc::from("ledger-test-worker"),
        started_at: finished - chrono::Duration::milliseconds(5),
        finished_at: finished,
        outcome,
        error_class: None,
        error_message: None,
        http_status: None,
        next_run_at: None,
        next_envelope: None,
        detail: None,
    }
}

/// Store run rows.
async fn insert_runs(db: &PgPool, records: &[RunRecord]) {
    ordersync::ledger::runs::insert(db, records.iter())
        .await
        .unwrap();
}

/// Record `job_id`'s runs ending in `outcomes`, one delivery each, in order.
async fn runs_ending(db: &PgPool, job_id: Uuid, outcomes: &[RunOutcome]) {
    let records: Vec<RunRecord> = outcomes
        .iter()
        .enumerate()
        .map(|(i, outcome)| run(job_id, i as u32 + 1, *outcome))
        .collect();
    insert_runs(db, &records).await;
}

/// A dead letter of recorded job `job_id`.
fn dead_letter(job_id: Uuid, kind: JobKind, store: &str, message: &str) -> NewDeadLetter {
    NewDeadLetter {
        job_id,
        kind: kind.as_str().to_owned(),
        store: store.to_owned(),
        order_ref: None,
        payload: json!({"job_id": job_id}),
        raw_payload: None,
        attempts: 3,
        outcome: "failed",
        error_class: FailureClass::Test,
        error_message: message.to_owned(),
        http_status: None,
        fingerprint: format!("fp-{kind}"),
    }
}

/// A recorded job that failed for good with `message`: its id.
async fn failed_job(db: &PgPool, kind: JobKind, store: &str, message: &str) -> Uuid {
    let id = job(db, kind, store, None, Source::Cli).await;
    runs_ending(db, id, &[RunOutcome::Failed]).await;
    ordersync::ledger::dead_letters::insert(db, &dead_letter(id, kind, store, message))
        .await
        .unwrap();
    id
}

/// A shop order as import_orders reads it.
fn shop_order(shop_order_id: i64, reference: &str, shop_status: &str) -> ImportedOrder {
    ImportedOrder {
        shop_order_id,
        reference: reference.to_owned(),
        shop_status: shop_status.to_owned(),
        payment_method: "cod".to_owned(),
        total: "250.00".to_owned(),
        currency: Some("EGP".to_owned()),
        phone: Some("+201000000001".to_owned()),
        customer_name: Some("Test Customer".to_owned()),
        raw: json!({"id": shop_order_id, "number": reference}),
        shop_modified_at: Some(now()),
    }
}

/// Import processing orders `{store}-{number}` for `numbers`: their ids, in order.
async fn imported(db: &PgPool, store: &str, numbers: &[i64]) -> Vec<i64> {
    let orders: Vec<ImportedOrder> = numbers
        .iter()
        .map(|n| shop_order(*n, &format!("{store}-{n}"), "processing"))
        .collect();
    ordersync::ledger::orders::upsert(db, store, &orders)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for order in &orders {
        ids.push(order_id(db, &order.reference).await);
    }
    ids
}

/// Our id of the order `reference`.
async fn order_id(db: &PgPool, reference: &str) -> i64 {
    ordersync::ledger::orders::by_reference(db, reference)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no order {reference}"))
        .id
}

/// Apply a fetch_tracking's `observations` to `store`'s orders (a job of its own).
async fn observe(db: &PgPool, store: &str, observations: &[CourierObservation]) {
    ordersync::ledger::orders::observe_courier(
        db,
        store,
        observations,
        ordersync::ledger::orders::ObservedVia::List,
        Uuid::now_v7(),
    )
    .await
    .unwrap();
}

/// What the courier says about `reference`: status `code`, normalized `status`.
fn observation(reference: &str, code: i32, status: &str) -> CourierObservation {
    CourierObservation {
        reference: reference.to_owned(),
        tracking_number: Some(format!("TRK-{reference}")),
        courier_order_id: Some(9_000 + code as i64),
        code,
        label: format!("label {code}"),
        status: status.to_owned(),
        updated_at: None,
    }
}
