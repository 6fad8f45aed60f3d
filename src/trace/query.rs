//! Order tracing: everything the ledger knows about one order (`ordersync
//! orders trace REF`), and the orders stuck in one non-final status
//! (`ordersync orders stuck`).
//!
//! A trace is read in one `REPEATABLE READ` snapshot, so its diagnosis (see
//! [`crate::diagnosis`]) never reasons over a job whose runs were read before
//! and after a worker wrote one. Every query walks an index: the order by its
//! unique reference, its history by `order_status_history_order_idx`, its jobs
//! by `jobs_order_ref_idx`, their runs and dead letters by primary key, the
//! store's own syncs by `jobs_store_kind_idx`; `stuck` uses
//! `orders_unsettled_since_idx` (migration 0006). `ordersync bench
//! --trace-orders 1000000` times them on a million orders.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ledger::runs::RunRow;

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
/// Recent jobs of a store-level kind searched for its last run and last
/// success (older successes are still dated by `store_sync_state`).
const STORE_JOBS_SEARCHED: i64 = 50;

/// The final normalized statuses, as the SQL of the partial index
/// `orders_unsettled_since_idx` spells them (migration 0006). The planner only
/// uses that index when a query repeats the predicate, so queries embed this
/// literal instead of binding a parameter.
pub(crate) const UNSETTLED: &str =
    "(status IS NULL OR status NOT IN ('delivered', 'cancelled', 'returned'))";
/// When an unsettled order entered its current state: its last status
/// change, or its import when the courier never reported it.
pub(crate) const SINCE: &str = "COALESCE(status_changed_at, imported_at)";
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
    pub findings: Vec<crate::trace::diagnosis::Finding>,
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

/// Hide a phone number but its international prefix and last digits, so an
/// operator can match it with a customer ("ends in 4567?") without the trace
/// carrying the number: `+213551234567` -> `+213•••••4567`, `0551234567` ->
/// `••••••4567`. Separators are dropped; at least four digits always stay
/// hidden, and a short number shows at most its last two.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    let tail = match n {
        0..=5 => 0,
        6..=7 => 2,
        _ => 4,
    };
    let international = phone.trim_start().starts_with('+');
    let head = if international && n >= tail + 3 + 4 {
        3
    } else {
        0
    };
    let mut masked = String::with_capacity(n * 3 + 1);
    if international {
        masked.push('+');
    }
    masked.extend(&digits[..head]);
    masked.extend(std::iter::repeat_n('•', n - head - tail));
    masked.extend(&digits[n - tail..]);
    masked
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

#[derive(sqlx::FromRow)]
struct OrderRecord {
    generated_at: DateTime<Utc>,
    id: i64,
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

/// The order row of a trace. (Public for `EXPLAIN` in the benchmark.)
pub const ORDER_SQL: &str = "SELECT now() AS generated_at, id, store, shop_order_id, reference,
        shop_status, payment_method, total::text AS total, currency, phone, customer_name,
        tracking_number, courier_order_id, courier_code, courier_label, status, status_changed_at,
        last_polled_at, imported_at, updated_at, shop_modified_at
 FROM orders WHERE reference = $1";

/// An order's status history, oldest first. (Public for `EXPLAIN` in the benchmark.)
pub const HISTORY_SQL: &str =
    "SELECT status, courier_code, courier_label, observed_at, job_id FROM order_status_history
 WHERE order_id = $1 ORDER BY observed_at, id";

/// The newest jobs of each kind naming the order, plus any with an open
/// dead letter, with their kind totals and dead letters. The window runs
/// over narrow rows; payloads are read for the kept jobs only.
/// An order's newest jobs per kind, with their latest run. (Public for `EXPLAIN` in the benchmark.)
pub const JOBS_SQL: &str = "WITH ranked AS (
     SELECT job_id,
            row_number() OVER (PARTITION BY kind ORDER BY enqueued_at DESC, job_id DESC) AS recency,
            count(*) OVER (PARTITION BY kind) AS of_kind
     FROM jobs WHERE order_ref = $1
 ), kept AS (
     SELECT job_id, of_kind FROM ranked WHERE recency <= $2
     UNION
     SELECT job_id, of_kind FROM ranked
     WHERE job_id IN (SELECT job_id FROM dead_letters
                      WHERE order_ref = $1 AND resolution IS NULL AND order_ref IS NOT NULL)
 )
 SELECT j.job_id, j.kind, j.source, j.enqueued_at, j.max_attempts, j.replay_of,
        COALESCE(j.payload->'args', 'null'::jsonb) AS args, k.of_kind,
        d.failed_at, d.outcome AS dead_outcome, d.attempts, d.error_class, d.error_message,
        d.http_status, d.fingerprint, d.resolution, d.replayed_as, d.resolved_at, d.resolved_by
 FROM kept k
 JOIN jobs j ON j.job_id = k.job_id
 -- LIMIT keeps this a primary-key probe per kept job, whatever the estimates.
 LEFT JOIN LATERAL (SELECT * FROM dead_letters x WHERE x.job_id = k.job_id LIMIT 1) d ON true
 ORDER BY j.enqueued_at, j.job_id";

/// Every run of the listed jobs. (Public for `EXPLAIN` in the benchmark.)
pub const RUNS_SQL: &str =
    "SELECT job_id, run, attempt, worker, started_at, finished_at, outcome, error_class,
        error_message, http_status, next_run_at, detail
 FROM job_runs WHERE job_id = ANY($1) ORDER BY job_id, run";

/// A store's recent jobs of one kind with each one's latest run, newest first. (Public for `EXPLAIN` in the benchmark.)
pub const STORE_JOBS_SQL: &str = "SELECT j.job_id, j.source, j.enqueued_at, r.run, r.attempt, r.worker, r.started_at,
        r.finished_at, r.outcome, r.error_class, r.error_message, r.http_status, r.next_run_at,
        r.detail
 FROM (SELECT job_id, source, enqueued_at FROM jobs WHERE store = $1 AND kind = $2
       ORDER BY enqueued_at DESC LIMIT $3) j
 LEFT JOIN LATERAL (SELECT * FROM job_runs r WHERE r.job_id = j.job_id ORDER BY r.run DESC LIMIT 1) r
   ON true
 ORDER BY j.enqueued_at DESC";

#[derive(sqlx::FromRow)]
struct JobRecord {
    job_id: Uuid,
    kind: String,
    source: String,
    enqueued_at: DateTime<Utc>,
    max_attempts: i32,
    replay_of: Option<Uuid>,
    args: serde_json::Value,
    of_kind: i64,
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

#[derive(sqlx::FromRow)]
struct RunRecord {
    job_id: Uuid,
    #[sqlx(flatten)]
    run: RunRow,
}

#[derive(sqlx::FromRow)]
struct StoreJobRecord {
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
    fn into_store_job(self) -> StoreJob {
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

/// Whether a job in `state` may still run again.
pub fn is_unfinished(state: &str) -> bool {
    matches!(state, "queued" | "retry" | "deferred")
}

/// Everything about the order `reference`; `None` when there is no such order.
///
/// # Errors
/// Postgres failed.
pub async fn trace_order(db: &PgPool, reference: &str) -> sqlx::Result<Option<OrderTrace>> {
    let mut tx = db
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let Some(o) = sqlx::query_as::<_, OrderRecord>(ORDER_SQL)
        .bind(reference)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    let status_history: Vec<StatusHistoryEntry> = sqlx::query_as(HISTORY_SQL)
        .bind(o.id)
        .fetch_all(&mut *tx)
        .await?;

    let job_records: Vec<JobRecord> = sqlx::query_as(JOBS_SQL)
        .bind(&o.reference)
        .bind(JOBS_SHOWN_PER_KIND)
        .fetch_all(&mut *tx)
        .await?;
    let ids: Vec<Uuid> = job_records.iter().map(|j| j.job_id).collect();
    let mut runs: BTreeMap<Uuid, Vec<RunRow>> = BTreeMap::new();
    for r in sqlx::query_as::<_, RunRecord>(RUNS_SQL)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?
    {
        runs.entry(r.job_id).or_default().push(r.run);
    }
    let mut job_totals = BTreeMap::new();
    let jobs = job_records
        .into_iter()
        .map(|j| {
            job_totals.insert(j.kind.clone(), j.of_kind);
            let runs = runs.remove(&j.job_id).unwrap_or_default();
            TracedJob {
                dead_letter: j.dead_letter(),
                state: runs
                    .last()
                    .map_or_else(|| "queued".to_owned(), |r| r.outcome.clone()),
                job_id: j.job_id,
                kind: j.kind,
                args: j.args,
                source: j.source,
                enqueued_at: j.enqueued_at,
                max_attempts: j.max_attempts,
                replay_of: j.replay_of,
                runs,
            }
        })
        .collect();

    let synced: Vec<(String, Option<DateTime<Utc>>)> =
        sqlx::query_as("SELECT kind, last_success_at FROM store_sync_state WHERE store = $1")
            .bind(&o.store)
            .fetch_all(&mut *tx)
            .await?;
    let last_success_at = |kind: &str| {
        synced
            .iter()
            .find(|(k, _)| k == kind)
            .and_then(|(_, at)| *at)
    };
    let fetch_tracking = store_sync(&mut tx, &o.store, "fetch_tracking").await?;
    let import_orders = store_sync(&mut tx, &o.store, "import_orders").await?;
    let store_syncs = StoreSyncs {
        store: o.store.clone(),
        fetch_tracking: StoreSync {
            last_success_at: last_success_at("fetch_tracking"),
            ..fetch_tracking
        },
        import_orders: StoreSync {
            last_success_at: last_success_at("import_orders"),
            ..import_orders
        },
    };

    let invoice: Option<TracedInvoice> = sqlx::query_as(
        "SELECT state, erp_name, job_id, claimed_at, settled_at FROM invoices WHERE order_id = $1",
    )
    .bind(o.id)
    .fetch_optional(&mut *tx)
    .await?;
    #[allow(clippy::type_complexity)]
    let sms_rows: Vec<(
        String,
        String,
        String,
        String,
        Option<String>,
        Uuid,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
    )> = sqlx::query_as(
        "SELECT status, state, phone, message, provider_message_id, job_id, claimed_at, sent_at
         FROM sms_messages WHERE order_id = $1 ORDER BY claimed_at, status",
    )
    .bind(o.id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;

    let sms = sms_rows
        .into_iter()
        .map(
            |(status, state, phone, message, provider_message_id, job_id, claimed_at, sent_at)| {
                TracedSms {
                    status,
                    state,
                    phone_masked: mask_phone(&phone),
                    message,
                    provider_message_id,
                    job_id,
                    claimed_at,
                    sent_at,
                }
            },
        )
        .collect();
    let status_is_final = o
        .status
        .as_deref()
        .and_then(crate::domain::NormalizedStatus::parse)
        .is_some_and(|s| s.is_final());
    let order = TracedOrder {
        days_in_status: o
            .status_changed_at
            .map(|since| (o.generated_at - since).num_days()),
        store: o.store,
        reference: o.reference,
        shop_order_id: o.shop_order_id,
        shop_status: o.shop_status,
        payment_method: o.payment_method,
        total: o.total,
        currency: o.currency,
        customer_name: o.customer_name,
        phone_masked: o.phone.as_deref().map(mask_phone),
        tracking_number: o.tracking_number,
        courier_order_id: o.courier_order_id,
        courier_code: o.courier_code,
        courier_label: o.courier_label,
        status: o.status,
        status_is_final,
        status_changed_at: o.status_changed_at,
        last_polled_at: o.last_polled_at,
        imported_at: o.imported_at,
        updated_at: o.updated_at,
        shop_modified_at: o.shop_modified_at,
    };
    let mut trace = OrderTrace {
        generated_at: o.generated_at,
        needs_attention: false,
        diagnosis: Vec::new(),
        findings: Vec::new(),
        order,
        status_history,
        jobs,
        job_totals,
        store_syncs,
        invoice,
        sms,
    };
    trace.findings = crate::trace::diagnosis::diagnose(&trace);
    trace.needs_attention = trace.findings.iter().any(|f| f.needs_attention());
    trace.diagnosis = trace.findings.iter().map(|f| f.message.clone()).collect();
    Ok(Some(trace))
}

async fn store_sync(
    tx: &mut sqlx::PgConnection,
    store: &str,
    kind: &str,
) -> sqlx::Result<StoreSync> {
    let recent: Vec<StoreJob> = sqlx::query_as::<_, StoreJobRecord>(STORE_JOBS_SQL)
        .bind(store)
        .bind(kind)
        .bind(STORE_JOBS_SEARCHED)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(StoreJobRecord::into_store_job)
        .collect();
    Ok(StoreSync {
        last_success_at: None,
        in_progress: recent.first().filter(|j| is_unfinished(&j.state)).cloned(),
        last_run: recent.iter().find(|j| j.latest_run.is_some()).cloned(),
        last_success: recent.iter().find(|j| j.state == "succeeded").cloned(),
    })
}

/// Why `reference` matched no order, as hints for the operator: a
/// differently spelled reference that exists, a store prefix with no orders
/// (and the stores that have some), jobs that name it anyway, the store's
/// last import. Every look-up is by index.
///
/// # Errors
/// Postgres failed.
pub async fn unknown_reference_hints(db: &PgPool, reference: &str) -> sqlx::Result<Vec<String>> {
    let mut hints = Vec::new();
    let trimmed = reference.trim();
    let mut candidates: Vec<String> = vec![trimmed.to_owned(), trimmed.to_uppercase()];
    candidates.retain(|c| c != reference);
    candidates.dedup();
    if !candidates.is_empty() {
        let found: Option<String> =
            sqlx::query_scalar("SELECT reference FROM orders WHERE reference = ANY($1) LIMIT 1")
                .bind(&candidates)
                .fetch_optional(db)
                .await?;
        if let Some(found) = found {
            hints.push(format!(
                "did you mean {found}? (references are case-sensitive)"
            ));
            return Ok(hints);
        }
    }
    let Some((store, number)) = trimmed.rsplit_once('-') else {
        hints.push("order references look like STORE-NUMBER, e.g. ALPH-1001".to_owned());
        return Ok(hints);
    };
    let stores = stores_with_orders(db).await?;
    let upper = store.to_uppercase();
    if !stores.iter().any(|s| s == store) {
        if stores.contains(&upper) {
            hints.push(format!("store codes are upper-case: try {upper}-{number}"));
        } else {
            hints.push(unknown_store_message(store, &stores));
        }
        return Ok(hints);
    }
    let (named_by, last_named): (i64, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT count(*), max(enqueued_at) FROM jobs WHERE order_ref = $1")
            .bind(trimmed)
            .fetch_one(db)
            .await?;
    if named_by > 0 {
        hints.push(format!(
            "{named_by} job(s) name {trimmed} (the latest enqueued {}), but the order was never imported",
            fmt_time(last_named)
        ));
    }
    let mut conn = db.acquire().await?;
    let import = store_sync(&mut conn, store, "import_orders").await?;
    hints.push(match import.last_run {
        Some(job) => {
            let run = job.latest_run.as_ref();
            format!(
                "store {store}'s last import_orders finished {} ({}): an order created in the shop since then is not imported yet",
                fmt_time(run.map(|r| r.finished_at)),
                job.state
            )
        }
        None => format!("store {store} has never run import_orders"),
    });
    Ok(hints)
}

/// The stores that have orders, in code order.
///
/// # Errors
/// Postgres failed.
pub async fn stores_with_orders(db: &PgPool) -> sqlx::Result<Vec<String>> {
    // A loose index scan: one probe of `orders_store_status_idx` per store,
    // not a scan of a million orders.
    sqlx::query_scalar(
        "WITH RECURSIVE s AS (
             SELECT min(store) AS store FROM orders
             UNION ALL
             SELECT (SELECT min(store) FROM orders WHERE store > s.store) FROM s WHERE s.store IS NOT NULL
         )
         SELECT store FROM s WHERE store IS NOT NULL",
    )
    .fetch_all(db)
    .await
}

/// "no orders of store X" naming the stores that have some.
pub fn unknown_store_message(store: &str, stores: &[String]) -> String {
    if stores.is_empty() {
        format!("no orders of store '{store}': the database has no orders at all (has import_orders run?)")
    } else {
        format!(
            "no orders of store '{store}' in the database; stores with orders: {}",
            stores.join(", ")
        )
    }
}

fn fmt_time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
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

/// Counts of stuck orders per store and status (`$1` cutoff, `$2` store).
pub fn stuck_counts_sql(with_store: bool) -> String {
    format!(
        "SELECT store, COALESCE(status, '{UNTRACKED}') AS status, count(*) AS n, min({SINCE}) AS oldest
         FROM orders WHERE {UNSETTLED} AND {SINCE} < $1 {}
         GROUP BY 1, 2",
        if with_store { "AND store = $2" } else { "" }
    )
}

/// The longest-stuck orders (`$1` cutoff, `$2` now, `$3` limit, `$4` store).
pub fn stuck_list_sql(with_store: bool) -> String {
    format!(
        "SELECT reference, store, COALESCE(status, '{UNTRACKED}') AS status, courier_label,
                {SINCE} AS since, extract(day FROM $2 - {SINCE})::bigint AS days_in_status,
                tracking_number, last_polled_at
         FROM orders WHERE {UNSETTLED} AND {SINCE} < $1 {}
         ORDER BY {SINCE}, reference LIMIT $3",
        if with_store { "AND store = $4" } else { "" }
    )
}

/// Orders in one non-final status (or never reported by the courier) for
/// more than `days` days, optionally of one store: per-store counts and the
/// `limit` longest-stuck orders.
///
/// # Errors
/// Postgres failed.
pub async fn stuck_orders(
    db: &PgPool,
    days: u32,
    store: Option<&str>,
    limit: i64,
) -> sqlx::Result<StuckOrders> {
    let mut tx = db
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let (generated_at, cutoff): (DateTime<Utc>, DateTime<Utc>) =
        sqlx::query_as("SELECT now(), now() - make_interval(days => $1)")
            .bind(days as i32)
            .fetch_one(&mut *tx)
            .await?;
    let counts_sql = stuck_counts_sql(store.is_some());
    let mut counts =
        sqlx::query_as::<_, (String, String, i64, DateTime<Utc>)>(&counts_sql).bind(cutoff);
    if let Some(store) = store {
        counts = counts.bind(store);
    }
    let counts = counts.fetch_all(&mut *tx).await?;
    let list_sql = stuck_list_sql(store.is_some());
    let mut list = sqlx::query_as::<_, StuckOrder>(&list_sql)
        .bind(cutoff)
        .bind(generated_at)
        .bind(limit);
    if let Some(store) = store {
        list = list.bind(store);
    }
    let orders = list.fetch_all(&mut *tx).await?;
    tx.commit().await?;

    let mut per_store: BTreeMap<String, StuckStore> = BTreeMap::new();
    for (code, status, n, oldest) in counts {
        let s = per_store.entry(code.clone()).or_insert_with(|| StuckStore {
            store: code,
            stuck: 0,
            by_status: BTreeMap::new(),
            oldest_since: oldest,
        });
        s.stuck += n;
        s.oldest_since = s.oldest_since.min(oldest);
        *s.by_status.entry(status).or_default() += n;
    }
    let mut per_store: Vec<StuckStore> = per_store.into_values().collect();
    per_store.sort_by(|a, b| b.stuck.cmp(&a.stuck).then_with(|| a.store.cmp(&b.store)));
    let total = per_store.iter().map(|s| s.stuck).sum();
    Ok(StuckOrders {
        generated_at,
        days,
        cutoff,
        store: store.map(str::to_owned),
        total,
        truncated: (orders.len() as i64) < total,
        per_store,
        orders,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NormalizedStatus;

    #[test]
    fn phones_keep_only_their_prefix_and_last_digits() {
        assert_eq!(mask_phone("+213551234567"), "+213•••••4567");
        assert_eq!(mask_phone("+213 551 23 45 67"), "+213•••••4567");
        assert_eq!(mask_phone("0551234567"), "••••••4567");
        assert_eq!(mask_phone("1234567"), "•••••67");
        assert_eq!(mask_phone("12345"), "•••••");
        assert_eq!(mask_phone(""), "");
        for phone in ["+213551234567", "0551234567", "+1 415 555 0100", "1234567"] {
            let masked = mask_phone(phone);
            let shown = masked.chars().filter(char::is_ascii_digit).count();
            let all = phone.chars().filter(char::is_ascii_digit).count();
            assert!(all - shown >= 4, "{phone} -> {masked}: too little hidden");
        }
    }

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

    #[test]
    fn the_stuck_predicate_matches_the_final_statuses_and_the_migration() {
        let finals: Vec<String> = NormalizedStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        assert!(
            UNSETTLED.contains(&format!("NOT IN ({})", finals.join(", "))),
            "{UNSETTLED} must list exactly the final statuses {finals:?}"
        );
        // The partial index is only usable when the query repeats its predicate.
        let migration = include_str!("../../migrations/0006_order_tracing.sql");
        let normalized: String = migration.split_whitespace().collect::<Vec<_>>().join(" ");
        let predicate = UNSETTLED
            .strip_prefix('(')
            .and_then(|p| p.strip_suffix(')'))
            .unwrap();
        assert!(
            normalized.contains(&format!("WHERE {predicate};")),
            "migration 0006's predicate differs from {UNSETTLED}"
        );
        assert!(normalized.contains(&format!("(({SINCE}), store)")));
    }
}
