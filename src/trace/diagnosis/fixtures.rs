//! Hand-built traces for the rules' tests: a healthy, delivered and
//! invoiced order, and the pieces to break it with. The clock stands still
//! at [`now`].

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use super::diagnose;
use crate::ledger::runs::RunRow;
use crate::trace::model::{
    OrderTrace, StatusHistoryEntry, StoreJob, StoreSync, StoreSyncs, TracedDeadLetter,
    TracedInvoice, TracedJob, TracedOrder, TracedSms,
};

pub(super) fn now() -> DateTime<Utc> {
    "2026-03-10T12:00:00Z".parse().unwrap()
}

pub(super) fn hours_ago(h: i64) -> DateTime<Utc> {
    now() - Duration::hours(h)
}

/// A delivered, invoiced order with a clean history.
pub(super) fn healthy() -> OrderTrace {
    OrderTrace {
        generated_at: now(),
        needs_attention: false,
        diagnosis: Vec::new(),
        findings: Vec::new(),
        order: TracedOrder {
            store: "BETA".into(),
            reference: "BETA-1001".into(),
            shop_order_id: 1001,
            shop_status: "completed".into(),
            payment_method: "cod".into(),
            total: "1200.00".into(),
            currency: Some("DZD".into()),
            customer_name: Some("Amina B".into()),
            phone_masked: Some("••••••4567".into()),
            tracking_number: Some("12345678".into()),
            courier_order_id: Some(77),
            courier_code: Some(41),
            courier_label: Some("LIVRÉ".into()),
            status: Some("delivered".into()),
            status_is_final: true,
            status_changed_at: Some(hours_ago(30)),
            days_in_status: Some(1),
            last_polled_at: Some(hours_ago(30)),
            imported_at: hours_ago(100),
            updated_at: hours_ago(30),
            shop_modified_at: None,
        },
        status_history: vec![
            history("pending", 80),
            history("in_transit", 60),
            history("delivered", 30),
        ],
        jobs: vec![
            job("create_invoice", json!(null), 99, &["succeeded"]),
            job(
                "send_sms",
                json!({"status": "in_transit"}),
                60,
                &["succeeded"],
            ),
            job(
                "send_sms",
                json!({"status": "delivered"}),
                30,
                &["succeeded"],
            ),
        ],
        job_totals: BTreeMap::new(),
        store_syncs: StoreSyncs {
            store: "BETA".into(),
            fetch_tracking: StoreSync::default(),
            import_orders: StoreSync::default(),
        },
        invoice: Some(TracedInvoice {
            state: "created".into(),
            erp_name: Some("ACC-SINV-2026-00001".into()),
            job_id: Uuid::nil(),
            claimed_at: hours_ago(99),
            settled_at: Some(hours_ago(99)),
        }),
        sms: vec![sms("in_transit", "sent"), sms("delivered", "sent")],
    }
}

pub(super) fn history(status: &str, hours: i64) -> StatusHistoryEntry {
    StatusHistoryEntry {
        status: status.into(),
        courier_code: 0,
        courier_label: status.to_uppercase(),
        observed_at: hours_ago(hours),
        job_id: None,
    }
}

pub(super) fn sms(status: &str, state: &str) -> TracedSms {
    TracedSms {
        status: status.into(),
        state: state.into(),
        phone_masked: "••••••4567".into(),
        message: format!("Order BETA-1001 {status}"),
        provider_message_id: Some("m1".into()),
        job_id: Uuid::nil(),
        claimed_at: hours_ago(30),
        sent_at: Some(hours_ago(30)),
    }
}

pub(super) fn run(n: i32, outcome: &str, hours: i64) -> RunRow {
    let failed = !matches!(outcome, "succeeded" | "skipped");
    RunRow {
        run: n,
        attempt: n,
        worker: "host-1-abc".into(),
        started_at: hours_ago(hours),
        finished_at: hours_ago(hours),
        outcome: outcome.into(),
        error_class: failed.then(|| "server_error".into()),
        error_message: failed.then(|| "erpnext/erpnext server_error (HTTP 503)".into()),
        http_status: failed.then_some(503),
        next_run_at: (outcome == "retry" || outcome == "deferred")
            .then(|| hours_ago(hours) + Duration::minutes(2)),
        detail: None,
    }
}

pub(super) fn job(kind: &str, args: serde_json::Value, hours: i64, outcomes: &[&str]) -> TracedJob {
    let runs: Vec<RunRow> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| run(i as i32 + 1, o, hours))
        .collect();
    let last = outcomes.last().copied().unwrap_or("queued");
    TracedJob {
        job_id: Uuid::now_v7(),
        kind: kind.into(),
        args,
        source: "scheduler".into(),
        enqueued_at: hours_ago(hours),
        max_attempts: 5,
        replay_of: None,
        state: last.into(),
        dead_letter: matches!(last, "failed" | "not_found").then(|| TracedDeadLetter {
            failed_at: hours_ago(hours),
            outcome: last.into(),
            attempts: outcomes.len() as i32,
            error_class: if last == "not_found" {
                "not_found"
            } else {
                "server_error"
            }
            .into(),
            error_message: "courier account 'primary' does not know order BETA-1001".into(),
            http_status: None,
            fingerprint: "abc123".into(),
            state: "pending".into(),
            replayed_as: None,
            resolved_at: None,
            resolved_by: None,
        }),
        runs,
    }
}

pub(super) fn fetch_tracking(hours: i64, detail: serde_json::Value) -> StoreSync {
    let mut r = run(1, "succeeded", hours);
    r.detail = Some(detail);
    let job = StoreJob {
        job_id: Uuid::nil(),
        source: "scheduler".into(),
        enqueued_at: hours_ago(hours),
        state: "succeeded".into(),
        latest_run: Some(r),
    };
    StoreSync {
        last_success_at: Some(hours_ago(hours)),
        in_progress: None,
        last_run: Some(job.clone()),
        last_success: Some(job),
    }
}

/// Imported, never found at the courier, payable, not yet invoiced.
pub(super) fn untracked() -> OrderTrace {
    let mut t = healthy();
    let o = &mut t.order;
    o.tracking_number = None;
    o.courier_order_id = None;
    o.courier_code = None;
    o.courier_label = None;
    o.status = None;
    o.status_is_final = false;
    o.status_changed_at = None;
    o.last_polled_at = None;
    o.imported_at = hours_ago(200);
    t.status_history.clear();
    t.sms.clear();
    t.jobs.retain(|j| j.kind == "create_invoice");
    t
}

pub(super) fn messages(t: &OrderTrace) -> Vec<String> {
    diagnose(t).into_iter().map(|f| f.message).collect()
}
