//! One order's snapshot, and what lies near a reference that matched none.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::rows::{JobRecord, OrderRecord, RunRecord, SmsRecord, StoreJobRecord};
use super::stores_with_orders;
use crate::ledger::runs::RunRow;
use crate::trace::model::{
    is_unfinished, NearMiss, OrderTrace, StatusHistoryEntry, StoreJob, StoreSync, StoreSyncs,
    TracedInvoice, TracedJob, TracedSms, JOBS_SHOWN_PER_KIND,
};

/// Recent jobs of a store-level kind searched for its last run and last
/// success (older successes are still dated by `store_sync_state`).
pub const STORE_JOBS_SEARCHED: i64 = 50;

/// The order row of a trace (`$1` reference), with the database's clock.
pub const ORDER_SQL: &str = "SELECT now() AS generated_at, id, store, shop_order_id, reference,
        shop_status, payment_method, total::text AS total, currency, phone, customer_name,
        tracking_number, courier_order_id, courier_code, courier_label, status, status_changed_at,
        last_polled_at, imported_at, updated_at, shop_modified_at
 FROM orders WHERE reference = $1";

/// An order's status history, oldest first (`$1` order id).
pub const HISTORY_SQL: &str =
    "SELECT status, courier_code, courier_label, observed_at, job_id FROM order_status_history
 WHERE order_id = $1 ORDER BY observed_at, id";

/// The newest jobs of each kind naming the order (`$1` reference, `$2`
/// jobs per kind), plus any with an open dead letter, with their kind totals
/// and dead letters. The window runs over narrow rows; payloads are read for
/// the kept jobs only.
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

/// Every run of the listed jobs (`$1` job ids).
pub const RUNS_SQL: &str =
    "SELECT job_id, run, attempt, worker, started_at, finished_at, outcome, error_class,
        error_message, http_status, next_run_at, detail
 FROM job_runs WHERE job_id = ANY($1) ORDER BY job_id, run";

/// A store's recent jobs of one kind with each one's latest run, newest
/// first (`$1` store, `$2` kind, `$3` how many: [`STORE_JOBS_SEARCHED`]).
pub const STORE_JOBS_SQL: &str = "SELECT j.job_id, j.source, j.enqueued_at, r.run, r.attempt, r.worker, r.started_at,
        r.finished_at, r.outcome, r.error_class, r.error_message, r.http_status, r.next_run_at,
        r.detail
 FROM (SELECT job_id, source, enqueued_at FROM jobs WHERE store = $1 AND kind = $2
       ORDER BY enqueued_at DESC LIMIT $3) j
 LEFT JOIN LATERAL (SELECT * FROM job_runs r WHERE r.job_id = j.job_id ORDER BY r.run DESC LIMIT 1) r
   ON true
 ORDER BY j.enqueued_at DESC";

/// When each of a store's periodic kinds last succeeded (`$1` store).
const STORE_SYNC_STATE_SQL: &str =
    "SELECT kind, last_success_at FROM store_sync_state WHERE store = $1";

/// The order's invoice claim (`$1` order id).
const INVOICE_SQL: &str =
    "SELECT state, erp_name, job_id, claimed_at, settled_at FROM invoices WHERE order_id = $1";

/// The order's texts (`$1` order id).
const SMS_SQL: &str =
    "SELECT status, state, phone, message, provider_message_id, job_id, claimed_at, sent_at
         FROM sms_messages WHERE order_id = $1 ORDER BY claimed_at, status";

/// Everything the ledger knows about the order `reference`, read in one
/// `REPEATABLE READ` snapshot; `None` when there is no such order. The
/// diagnosis is left empty: [`crate::trace::trace_order`] fills it.
///
/// # Errors
/// Postgres failed.
pub(crate) async fn read_trace(db: &PgPool, reference: &str) -> sqlx::Result<Option<OrderTrace>> {
    let mut tx = db
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let Some(row) = sqlx::query_as::<_, OrderRecord>(ORDER_SQL)
        .bind(reference)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    let (order_id, generated_at) = (row.id, row.generated_at);
    let order = row.into_traced_order();
    let status_history: Vec<StatusHistoryEntry> = sqlx::query_as(HISTORY_SQL)
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await?;
    let (jobs, job_totals) = read_jobs(&mut tx, &order.reference).await?;
    let store_syncs = read_store_syncs(&mut tx, &order.store).await?;
    let invoice: Option<TracedInvoice> = sqlx::query_as(INVOICE_SQL)
        .bind(order_id)
        .fetch_optional(&mut *tx)
        .await?;
    let sms: Vec<TracedSms> = sqlx::query_as::<_, SmsRecord>(SMS_SQL)
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(SmsRecord::into_traced_sms)
        .collect();
    tx.commit().await?;
    Ok(Some(OrderTrace {
        generated_at,
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
    }))
}

/// The jobs a trace shows (oldest first, with every run) and how many of
/// each kind named the order.
async fn read_jobs(
    tx: &mut PgConnection,
    reference: &str,
) -> sqlx::Result<(Vec<TracedJob>, BTreeMap<String, i64>)> {
    let job_records: Vec<JobRecord> = sqlx::query_as(JOBS_SQL)
        .bind(reference)
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
            j.into_traced_job(runs)
        })
        .collect();
    Ok((jobs, job_totals))
}

/// The store's fetch_tracking and import_orders, each dated by its last
/// success in `store_sync_state`.
async fn read_store_syncs(tx: &mut PgConnection, store: &str) -> sqlx::Result<StoreSyncs> {
    let synced: Vec<(String, Option<DateTime<Utc>>)> = sqlx::query_as(STORE_SYNC_STATE_SQL)
        .bind(store)
        .fetch_all(&mut *tx)
        .await?;
    let last_success_at = |kind: &str| {
        synced
            .iter()
            .find(|(k, _)| k == kind)
            .and_then(|(_, at)| *at)
    };
    let fetch_tracking = store_sync(tx, store, "fetch_tracking").await?;
    let import_orders = store_sync(tx, store, "import_orders").await?;
    Ok(StoreSyncs {
        store: store.to_owned(),
        fetch_tracking: StoreSync {
            last_success_at: last_success_at("fetch_tracking"),
            ..fetch_tracking
        },
        import_orders: StoreSync {
            last_success_at: last_success_at("import_orders"),
            ..import_orders
        },
    })
}

/// One store-level kind's recent jobs: the one in progress, the last that
/// ran, the last that succeeded (`last_success_at` left for the caller).
async fn store_sync(tx: &mut PgConnection, store: &str, kind: &str) -> sqlx::Result<StoreSync> {
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

/// What lies near `reference`, which matched no order: a differently spelled
/// reference that exists, a store prefix with no orders (and the stores that
/// have some), jobs that name it anyway, the store's last import. Every
/// look-up is by index.
///
/// # Errors
/// Postgres failed.
pub(crate) async fn near_miss(db: &PgPool, reference: &str) -> sqlx::Result<NearMiss> {
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
            return Ok(NearMiss::Respelled { found });
        }
    }
    let Some((store, number)) = trimmed.rsplit_once('-') else {
        return Ok(NearMiss::NotStoreNumber);
    };
    let stores = stores_with_orders(db).await?;
    if !stores.iter().any(|s| s == store) {
        let upper = store.to_uppercase();
        return Ok(if stores.contains(&upper) {
            NearMiss::LowerCaseStore {
                upper,
                number: number.to_owned(),
            }
        } else {
            NearMiss::UnknownStore {
                store: store.to_owned(),
                stores_with_orders: stores,
            }
        });
    }
    let (jobs_naming_it, latest_job_enqueued_at): (i64, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT count(*), max(enqueued_at) FROM jobs WHERE order_ref = $1")
            .bind(trimmed)
            .fetch_one(db)
            .await?;
    let mut conn = db.acquire().await?;
    let last_import = store_sync(&mut conn, store, "import_orders")
        .await?
        .last_run
        .map(Box::new);
    Ok(NearMiss::NotImported {
        store: store.to_owned(),
        reference: trimmed.to_owned(),
        jobs_naming_it,
        latest_job_enqueued_at,
        last_import,
    })
}
