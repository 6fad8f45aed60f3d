//! The rows of the trace's statements as Postgres returns them, and how each
//! becomes the model: phones masked, outer-joined columns folded into
//! `Option`s, a job's state taken from its latest run.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::NormalizedStatus;
use crate::ledger::runs::RunRow;
use crate::redact::mask_phone;
use crate::trace::model::{StoreJob, TracedDeadLetter, TracedJob, TracedOrder, TracedSms};

/// A row of [`super::ORDER_SQL`].
#[derive(sqlx::FromRow)]
pub(super) struct OrderRecord {
    pub(super) generated_at: DateTime<Utc>,
    pub(super) id: i64,
    store: String,
    shop_order_id: i64,
    reference: String,
    shop_status: String,
    payment_method: String,
    total: String,
    currency: Option<String>,
    phone: Option<String>,
    customer_name: Option<String>,
    tracking_number: Option<String>,
    courier_order_id: Option<i64>,
    courier_code: Option<i32>,
    courier_label: Option<String>,
    status: Option<String>,
    status_changed_at: Option<DateTime<Utc>>,
    last_polled_at: Option<DateTime<Utc>>,
    imported_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    shop_modified_at: Option<DateTime<Utc>>,
}

impl OrderRecord {
    /// The order as a trace shows it: the phone masked, the days in its
    /// status counted on the database's clock.
    pub(super) fn into_traced_order(self) -> TracedOrder {
        let status_is_final = self
            .status
            .as_deref()
            .and_then(NormalizedStatus::parse)
            .is_some_and(|s| s.is_final());
        TracedOrder {
            days_in_status: self
                .status_changed_at
                .map(|since| (self.generated_at - since).num_days()),
            store: self.store,
            reference: self.reference,
            shop_order_id: self.shop_order_id,
            shop_status: self.shop_status,
            payment_method: self.payment_method,
            total: self.total,
            currency: self.currency,
            customer_name: self.customer_name,
            phone_masked: self.phone.as_deref().map(mask_phone),
            tracking_number: self.tracking_number,
            courier_order_id: self.courier_order_id,
            courier_code: self.courier_code,
            courier_label: self.courier_label,
            status: self.status,
            status_is_final,
            status_changed_at: self.status_changed_at,
            last_polled_at: self.last_polled_at,
            imported_at: self.imported_at,
            updated_at: self.updated_at,
            shop_modified_at: self.shop_modified_at,
        }
    }
}

/// A row of [`super::JOBS_SQL`]: a job, its kind's total, and its dead
/// letter's columns (all `NULL` when it has none).
#[derive(sqlx::FromRow)]
pub(super) struct JobRecord {
    pub(super) job_id: Uuid,
    pub(super) kind: String,
    source: String,
    enqueued_at: DateTime<Utc>,
    max_attempts: i32,
    replay_of: Option<Uuid>,
    args: serde_json::Value,
    pub(super) of_kind: i64,
    failed_at: Option<DateTime<Utc>>,
    dead_outcome: Option<String>,
    attempts: Option<i32>,
    error_class: Option<String>,
    error_message: Option<String>,
    http_status: Option<i32>,
    fingerprint: Option<String>,
    resolution: Option<String>,
    replayed_as: Option<Uuid>,
    resolved_at: Option<DateTime<Utc>>,
    resolved_by: Option<String>,
}

impl JobRecord {
    /// The job with its `runs`; its state is the latest run's outcome,
    /// `queued` before the first.
    pub(super) fn into_traced_job(self, runs: Vec<RunRow>) -> TracedJob {
        TracedJob {
            dead_letter: self.dead_letter(),
            state: runs
                .last()
                .map_or_else(|| "queued".to_owned(), |r| r.outcome.clone()),
            job_id: self.job_id,
            kind: self.kind,
            args: self.args,
            source: self.source,
            enqueued_at: self.enqueued_at,
            max_attempts: self.max_attempts,
            replay_of: self.replay_of,
            runs,
        }
    }

    fn dead_letter(&self) -> Option<TracedDeadLetter> {
        Some(TracedDeadLetter {
            failed_at: self.failed_at?,
            outcome: self.dead_outcome.clone()?,
            attempts: self.attempts.unwrap_or_default(),
            error_class: self.error_class.clone().unwrap_or_default(),
            error_message: self.error_message.clone().unwrap_or_default(),
            http_status: self.http_status,
            fingerprint: self.fingerprint.clone().unwrap_or_default(),
            state: self
                .resolution
                .clone()
                .unwrap_or_else(|| "pending".to_owned()),
            replayed_as: self.replayed_as,
            resolved_at: self.resolved_at,
            resolved_by: self.resolved_by.clone(),
        })
    }
}

/// A row of [`super::RUNS_SQL`].
#[derive(sqlx::FromRow)]
pub(super) struct RunRecord {
    pub(super) job_id: Uuid,
    #[sqlx(flatten)]
    pub(super) run: RunRow,
}

/// A row of [`super::STORE_JOBS_SQL`]: a job and its latest run's columns
/// (all `NULL` before its first run).
#[derive(sqlx::FromRow)]
pub(super) struct StoreJobRecord {
    job_id: Uuid,
    source: String,
    enqueued_at: DateTime<Utc>,
    run: Option<i32>,
    attempt: Option<i32>,
    worker: Option<String>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    outcome: Option<String>,
    error_class: Option<String>,
    error_message: Option<String>,
    http_status: Option<i32>,
    next_run_at: Option<DateTime<Utc>>,
    detail: Option<serde_json::Value>,
}

impl StoreJobRecord {
    pub(super) fn into_store_job(self) -> StoreJob {
        let latest_run = match (
            self.run,
            self.attempt,
            self.worker,
            self.started_at,
            self.finished_at,
            self.outcome,
        ) {
            (
                Some(run),
                Some(attempt),
                Some(worker),
                Some(started_at),
                Some(finished_at),
                Some(outcome),
            ) => Some(RunRow {
                run,
                attempt,
                worker,
                started_at,
                finished_at,
                outcome,
                error_class: self.error_class,
                error_message: self.error_message,
                http_status: self.http_status,
                next_run_at: self.next_run_at,
                detail: self.detail,
            }),
            _ => None,
        };
        StoreJob {
            job_id: self.job_id,
            source: self.source,
            enqueued_at: self.enqueued_at,
            state: latest_run
                .as_ref()
                .map_or_else(|| "queued".to_owned(), |r| r.outcome.clone()),
            latest_run,
        }
    }
}

/// A text to the customer, as `sms_messages` holds it.
#[derive(sqlx::FromRow)]
pub(super) struct SmsRecord {
    status: String,
    state: String,
    phone: String,
    message: String,
    provider_message_id: Option<String>,
    job_id: Uuid,
    claimed_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

impl SmsRecord {
    /// The text with its recipient masked.
    pub(super) fn into_traced_sms(self) -> TracedSms {
        TracedSms {
            status: self.status,
            state: self.state,
            phone_masked: mask_phone(&self.phone),
            message: self.message,
            provider_message_id: self.provider_message_id,
            job_id: self.job_id,
            claimed_at: self.claimed_at,
            sent_at: self.sent_at,
        }
    }
}
