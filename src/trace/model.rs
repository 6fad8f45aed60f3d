//! The data of a trace and of the stuck orders: what the SQL reads
//! ([`super::query`]), the rules diagnose ([`super::diagnosis`]) and the admin
//! API and `--json` serve; with the limits and defaults that bound them.
//!
//! The serialized field names and order are the admin API's contract.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::ledger::runs::RunRow;
use crate::trace::diagnosis::Finding;

/// Days in one non-final status after which an order counts as stuck, unless
/// the operator asks otherwise. Courier statuses normally move within a day
/// or two (a parcel is picked up, shipped, out for delivery); three days
/// spans a weekend without flagging healthy parcels, and still surfaces a
/// store on the wrong courier key (domain.md §1) within the week.
pub const DEFAULT_STUCK_DAYS: u32 = 3;
/// The largest threshold `orders stuck` accepts (ten years).
pub const MAX_STUCK_DAYS: u32 = 3650;
/// Rows `orders stuck` lists unless asked otherwise.
pub const DEFAULT_STUCK_LIMIT: i64 = 100;
/// The most rows `orders stuck` lists at once.
pub const MAX_STUCK_LIMIT: i64 = 10_000;
/// The longest reference accepted (ours are `{STORE}-{number}`).
pub const MAX_REFERENCE_LEN: usize = 100;
/// Newest jobs of each kind a trace shows. An order polled every five
/// minutes for a month has thousands of `refresh_status` jobs; the newest
/// ones and every open failure tell its story, the rest are counted.
pub const JOBS_SHOWN_PER_KIND: i64 = 20;
/// How `stuck` (and `summary`) name orders the courier never reported.
pub const UNTRACKED: &str = "untracked";

/// Everything about one order, and what it means.
#[derive(Debug, Clone, Serialize)]
pub struct OrderTrace {
    /// When the trace was read (the database's clock).
    pub generated_at: DateTime<Utc>,
    /// Whether a finding calls for an operator (a failure, a stall), as
    /// opposed to work that is merely scheduled or in progress.
    pub needs_attention: bool,
    /// Plain-English findings, most important first.
    pub diagnosis: Vec<String>,
    /// The same findings with their severity, for the terminal report.
    #[serde(skip)]
    pub findings: Vec<Finding>,
    /// The order row (phone masked).
    pub order: TracedOrder,
    /// Normalized status changes, oldest first.
    pub status_history: Vec<StatusHistoryEntry>,
    /// Jobs naming this order, oldest first: the newest
    /// [`JOBS_SHOWN_PER_KIND`] of each kind plus any open failure.
    pub jobs: Vec<TracedJob>,
    /// How many jobs of each kind named this order, shown or not.
    pub job_totals: BTreeMap<String, i64>,
    /// The store's own periodic jobs, which fill tracking and import orders.
    pub store_syncs: StoreSyncs,
    /// The ERP invoice claim, if any.
    pub invoice: Option<TracedInvoice>,
    /// Texts to the customer, one per status.
    pub sms: Vec<TracedSms>,
}

/// The order row as an operator needs it.
#[derive(Debug, Clone, Serialize)]
pub struct TracedOrder {
    /// Store code.
    pub store: String,
    /// `{STORE}-{number}`.
    pub reference: String,
    /// The shop's order id.
    pub shop_order_id: i64,
    /// The shop's status (`processing`, `pending`, ...).
    pub shop_status: String,
    /// The shop's payment method code.
    pub payment_method: String,
    /// Total, two decimals.
    pub total: String,
    /// Currency code.
    pub currency: Option<String>,
    /// Billing name.
    pub customer_name: Option<String>,
    /// Billing phone with all but its prefix and last digits hidden.
    pub phone_masked: Option<String>,
    /// The courier's tracking number (`display_id`).
    pub tracking_number: Option<String>,
    /// The courier's order id.
    pub courier_order_id: Option<i64>,
    /// Raw courier status code.
    pub courier_code: Option<i32>,
    /// Raw courier status label.
    pub courier_label: Option<String>,
    /// Normalized status; `None` until the courier reports the order.
    pub status: Option<String>,
    /// Whether the status is final (polling stopped).
    pub status_is_final: bool,
    /// When the normalized status last changed.
    pub status_changed_at: Option<DateTime<Utc>>,
    /// Whole days since then.
    pub days_in_status: Option<i64>,
    /// When the courier was last asked about it.
    pub last_polled_at: Option<DateTime<Utc>>,
    /// When it was first imported.
    pub imported_at: DateTime<Utc>,
    /// When its row last changed.
    pub updated_at: DateTime<Utc>,
    /// The shop's last modification time.
    pub shop_modified_at: Option<DateTime<Utc>>,
}

/// One normalized status change.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StatusHistoryEntry {
    /// Normalized status.
    pub status: String,
    /// Raw courier code.
    pub courier_code: i32,
    /// Raw courier label.
    pub courier_label: String,
    /// When we saw it.
    pub observed_at: DateTime<Utc>,
    /// The job that saw it.
    pub job_id: Option<Uuid>,
}

/// A job that named the order, with every delivery.
#[derive(Debug, Clone, Serialize)]
pub struct TracedJob {
    /// The job id.
    pub job_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its arguments (for `send_sms`, the status it texts about).
    pub args: serde_json::Value,
    /// Who enqueued it.
    pub source: String,
    /// When.
    pub enqueued_at: DateTime<Utc>,
    /// Its attempt budget.
    pub max_attempts: i32,
    /// The failed job it replays.
    pub replay_of: Option<Uuid>,
    /// The latest run's outcome, `queued` before the first.
    pub state: String,
    /// Every delivery, in order.
    pub runs: Vec<RunRow>,
    /// Its final failure, if it failed.
    pub dead_letter: Option<TracedDeadLetter>,
}

/// A failed job's record and what an operator did about it.
#[derive(Debug, Clone, Serialize)]
pub struct TracedDeadLetter {
    /// When it failed for good.
    pub failed_at: DateTime<Utc>,
    /// `failed` or `not_found`.
    pub outcome: String,
    /// Attempts used.
    pub attempts: i32,
    /// Error class.
    pub error_class: String,
    /// Error message.
    pub error_message: String,
    /// Provider HTTP status.
    pub http_status: Option<i32>,
    /// Group key of `ordersync jobs failed`.
    pub fingerprint: String,
    /// `pending` (waiting for an operator), `replayed` or `discarded`.
    pub state: String,
    /// The job a replay created.
    pub replayed_as: Option<Uuid>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// By whom.
    pub resolved_by: Option<String>,
}

/// The store's two periodic jobs that decide whether an order has tracking
/// and is imported at all.
#[derive(Debug, Clone, Serialize)]
pub struct StoreSyncs {
    /// The store.
    pub store: String,
    /// Courier order list -> tracking numbers.
    pub fetch_tracking: StoreSync,
    /// Shop orders -> `orders`.
    pub import_orders: StoreSync,
}

/// One store-level job kind's recent history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreSync {
    /// The last success, from `store_sync_state` (however long ago).
    pub last_success_at: Option<DateTime<Utc>>,
    /// The newest job, when it has not finished (queued, retrying, deferred).
    pub in_progress: Option<StoreJob>,
    /// The newest job that has run, whatever its outcome.
    pub last_run: Option<StoreJob>,
    /// The newest job that succeeded, among recent ones.
    pub last_success: Option<StoreJob>,
}

/// A store-level job and its latest delivery.
#[derive(Debug, Clone, Serialize)]
pub struct StoreJob {
    /// The job id.
    pub job_id: Uuid,
    /// Who enqueued it.
    pub source: String,
    /// When.
    pub enqueued_at: DateTime<Utc>,
    /// Latest outcome, `queued` before the first run.
    pub state: String,
    /// Its latest delivery (its `detail` holds e.g. fetch_tracking's
    /// `matched` / `unknown_refs` counts).
    pub latest_run: Option<RunRow>,
}

/// The order's ERP invoice claim.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TracedInvoice {
    /// `creating` (claimed, not settled), `created` or `existing` (found in the ERP).
    pub state: String,
    /// The ERP's invoice name.
    pub erp_name: Option<String>,
    /// The job holding or settling the claim.
    pub job_id: Uuid,
    /// When it was claimed.
    pub claimed_at: DateTime<Utc>,
    /// When it was settled.
    pub settled_at: Option<DateTime<Utc>>,
}

/// One text to the customer.
#[derive(Debug, Clone, Serialize)]
pub struct TracedSms {
    /// The status it announces.
    pub status: String,
    /// `sending`, `sent` or `unknown` (may or may not have gone out).
    pub state: String,
    /// Recipient, masked.
    pub phone_masked: String,
    /// The text.
    pub message: String,
    /// The gateway's message id.
    pub provider_message_id: Option<String>,
    /// The job that sent it.
    pub job_id: Uuid,
    /// When it was claimed.
    pub claimed_at: DateTime<Utc>,
    /// When the gateway accepted it.
    pub sent_at: Option<DateTime<Utc>>,
}

impl OrderTrace {
    /// The trace with its diagnosis: the findings, their messages and
    /// whether any calls for an operator, always set together.
    pub fn with_findings(self, findings: Vec<Finding>) -> Self {
        Self {
            needs_attention: findings.iter().any(Finding::needs_attention),
            diagnosis: findings.iter().map(|f| f.message.clone()).collect(),
            findings,
            ..self
        }
    }
}

/// Orders that have sat in one non-final status (or without any courier
/// status) for too long.
#[derive(Debug, Clone, Serialize)]
pub struct StuckOrders {
    /// When this was read (the database's clock).
    pub generated_at: DateTime<Utc>,
    /// The threshold in days.
    pub days: u32,
    /// Orders unchanged since before this are listed.
    pub cutoff: DateTime<Utc>,
    /// The store filter, if any.
    pub store: Option<String>,
    /// Stuck orders in all (listed or not).
    pub total: i64,
    /// Per store, most stuck first.
    pub per_store: Vec<StuckStore>,
    /// The longest-stuck orders first, at most the limit.
    pub orders: Vec<StuckOrder>,
    /// Whether more orders are stuck than listed.
    pub truncated: bool,
}

/// One store's stuck orders.
#[derive(Debug, Clone, Serialize)]
pub struct StuckStore {
    /// Store code.
    pub store: String,
    /// Stuck orders.
    pub stuck: i64,
    /// Stuck orders per normalized status ([`UNTRACKED`] for never reported).
    pub by_status: BTreeMap<String, i64>,
    /// Since when the longest-stuck one has not moved.
    pub oldest_since: DateTime<Utc>,
}

/// One stuck order.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StuckOrder {
    /// `{STORE}-{number}`.
    pub reference: String,
    /// Store code.
    pub store: String,
    /// Normalized status, or [`UNTRACKED`].
    pub status: String,
    /// Raw courier label.
    pub courier_label: Option<String>,
    /// Since when (status change, or import for untracked orders).
    pub since: DateTime<Utc>,
    /// Whole days since then.
    pub days_in_status: i64,
    /// Tracking number.
    pub tracking_number: Option<String>,
    /// When the courier was last asked.
    pub last_polled_at: Option<DateTime<Utc>>,
}

/// What the ledger holds near a reference that matched no order: the facts
/// the operator's hints are written from ([`super::text::reference_hints`]).
#[derive(Debug, Clone)]
pub(crate) enum NearMiss {
    /// An order exists under the reference trimmed or upper-cased.
    Respelled {
        /// The reference that exists.
        found: String,
    },
    /// The reference is not shaped `STORE-NUMBER`.
    NotStoreNumber,
    /// No orders of the store as typed, but of its upper-case spelling.
    LowerCaseStore {
        /// The store code in upper case.
        upper: String,
        /// What followed the store code.
        number: String,
    },
    /// No orders of that store at all.
    UnknownStore {
        /// The store code as typed.
        store: String,
        /// The stores that have orders, in code order.
        stores_with_orders: Vec<String>,
    },
    /// The store has orders, but none with this reference.
    NotImported {
        /// The store code.
        store: String,
        /// The reference, trimmed.
        reference: String,
        /// Jobs that name the reference anyway.
        jobs_naming_it: i64,
        /// When the latest of them was enqueued.
        latest_job_enqueued_at: Option<DateTime<Utc>>,
        /// The store's newest import_orders job that has run (boxed: the
        /// other facts are small).
        last_import: Option<Box<StoreJob>>,
    },
}

/// Whether a job in `state` may still run again.
pub(super) fn is_unfinished(state: &str) -> bool {
    matches!(state, "queued" | "retry" | "deferred")
}

/// Check an order reference from an operator before it reaches SQL.
///
/// # Errors
/// A message naming what is wrong with it.
pub fn validate_reference(reference: &str) -> Result<(), String> {
    if reference.trim().is_empty() {
        return Err("the order reference is empty (expected STORE-NUMBER, e.g. ALPH-1001)".into());
    }
    if reference.chars().count() > MAX_REFERENCE_LEN {
        return Err(format!(
            "the order reference is {} characters long; references have at most {MAX_REFERENCE_LEN}",
            reference.chars().count()
        ));
    }
    if let Some(c) = reference.chars().find(|c| c.is_control()) {
        return Err(format!(
            "the order reference contains the control character {c:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_checked_before_they_reach_sql() {
        assert!(validate_reference("ALPH-1001").is_ok());
        assert!(validate_reference("  ").unwrap_err().contains("empty"));
        assert!(validate_reference(&"A".repeat(101))
            .unwrap_err()
            .contains("101 characters"));
        assert!(validate_reference("ALPH-1\n")
            .unwrap_err()
            .contains("control character"));
    }
}
