//! `dead_letters`: failed jobs waiting for an operator, grouped by fingerprint.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::FailureClass;

/// A job's final failure, as recorded.
#[derive(Debug, Clone)]
pub struct NewDeadLetter {
    /// The failed job.
    pub job_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its store.
    pub store: String,
    /// Its order.
    pub order_ref: Option<String>,
    /// The envelope of the failed delivery.
    pub payload: serde_json::Value,
    /// The payload byte for byte, when it was not even JSON.
    pub raw_payload: Option<Vec<u8>>,
    /// Attempts used.
    pub attempts: u32,
    /// `failed` or `not_found`.
    pub outcome: &'static str,
    /// Why it failed.
    pub error_class: FailureClass,
    /// Error message.
    pub error_message: String,
    /// Provider HTTP status.
    pub http_status: Option<u16>,
    /// Group key.
    pub fingerprint: String,
}

/// Record a dead letter. A redelivered final run records nothing new.
///
/// # Errors
/// Postgres failed.
pub async fn insert(pool: &PgPool, d: &NewDeadLetter) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO dead_letters (job_id, kind, store, order_ref, payload, failed_at, attempts, outcome,
                                   error_class, error_message, http_status, fingerprint, raw_payload)
         VALUES ($1, $2, $3, $4, $5, now(), $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(d.job_id)
    .bind(&d.kind)
    .bind(&d.store)
    .bind(&d.order_ref)
    .bind(&d.payload)
    .bind(d.attempts as i32)
    .bind(d.outcome)
    .bind(d.error_class.as_str())
    .bind(&d.error_message)
    .bind(d.http_status.map(i32::from))
    .bind(&d.fingerprint)
    .bind(&d.raw_payload)
    .execute(pool)
    .await?;
    Ok(())
}

/// Which dead letters to look at.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this store.
    pub store: Option<String>,
    /// Failed at or after.
    pub since: Option<DateTime<Utc>>,
    /// Message, class or order reference contains this (case-insensitive).
    pub grep: Option<String>,
    /// Only this fingerprint.
    pub fingerprint: Option<String>,
    /// Resolved ones too.
    pub include_resolved: bool,
}

const FILTER: &str = "($1::text IS NULL OR kind = $1)
    AND ($2::text IS NULL OR store = $2)
    AND ($3::timestamptz IS NULL OR failed_at >= $3)
    AND ($4::text IS NULL OR error_message ILIKE '%' || $4 || '%' OR error_class ILIKE '%' || $4 || '%'
         OR order_ref ILIKE '%' || $4 || '%')
    AND ($5::text IS NULL OR fingerprint = $5)
    AND ($6 OR resolution IS NULL)";

/// One fingerprint's group.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Group {
    /// Group key.
    pub fingerprint: String,
    /// Kind.
    pub kind: String,
    /// Error class.
    pub error_class: String,
    /// The newest message of the group.
    pub sample_message: String,
    /// Jobs in the group.
    pub count: i64,
    /// Stores involved.
    pub stores: Vec<String>,
    /// Oldest failure.
    pub first_failed_at: DateTime<Utc>,
    /// Newest failure.
    pub last_failed_at: DateTime<Utc>,
}

/// Groups matching `filter`, newest first.
///
/// # Errors
/// Postgres failed.
pub async fn groups(pool: &PgPool, filter: &Filter) -> sqlx::Result<Vec<Group>> {
    sqlx::query_as(&format!(
        "SELECT fingerprint, min(kind) AS kind, min(error_class) AS error_class,
                (array_agg(error_message ORDER BY failed_at DESC))[1] AS sample_message,
                count(*) AS count,
                array_agg(DISTINCT store) FILTER (WHERE store IS NOT NULL) AS stores,
                min(failed_at) AS first_failed_at, max(failed_at) AS last_failed_at
         FROM dead_letters WHERE {FILTER}
         GROUP BY fingerprint ORDER BY max(failed_at) DESC"
    ))
    .bind(&filter.kind)
    .bind(&filter.store)
    .bind(filter.since)
    .bind(&filter.grep)
    .bind(&filter.fingerprint)
    .bind(filter.include_resolved)
    .fetch_all(pool)
    .await
}

/// A dead letter as stored.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    /// The failed job.
    pub job_id: Uuid,
    /// Kind.
    pub kind: String,
    /// Store.
    pub store: Option<String>,
    /// Order.
    pub order_ref: Option<String>,
    /// The failed delivery's envelope.
    pub payload: serde_json::Value,
    /// When.
    pub failed_at: DateTime<Utc>,
    /// Attempts used.
    pub attempts: i32,
    /// `failed` or `not_found`.
    pub outcome: String,
    /// Error class.
    pub error_class: String,
    /// Error message.
    pub error_message: String,
    /// Provider HTTP status.
    pub http_status: Option<i32>,
    /// Group key.
    pub fingerprint: String,
    /// `replayed`, `discarded` or none.
    pub resolution: Option<String>,
    /// When resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// By whom.
    pub resolved_by: Option<String>,
    /// The replay's job.
    pub replayed_as: Option<Uuid>,
}

const COLUMNS: &str =
    "job_id, kind, store, order_ref, payload, failed_at, attempts, outcome, error_class,
    error_message, http_status, fingerprint, resolution, resolved_at, resolved_by, replayed_as";

/// Dead letters matching `filter`, newest first.
///
/// # Errors
/// Postgres failed.
pub async fn list(pool: &PgPool, filter: &Filter, limit: i64) -> sqlx::Result<Vec<DeadLetter>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE {FILTER} ORDER BY failed_at DESC, job_id LIMIT $7"
    ))
    .bind(&filter.kind)
    .bind(&filter.store)
    .bind(filter.since)
    .bind(&filter.grep)
    .bind(&filter.fingerprint)
    .bind(filter.include_resolved)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One dead letter.
///
/// # Errors
/// Postgres failed.
pub async fn get(pool: &PgPool, job_id: Uuid) -> sqlx::Result<Option<DeadLetter>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE job_id = $1"
    ))
    .bind(job_id)
    .fetch_optional(pool)
    .await
}

/// Mark `job_id` replayed as `new_job` by `by`, unless already resolved.
/// Returns whether this call resolved it.
///
/// # Errors
/// Postgres failed.
pub async fn mark_replayed<'e>(
    db: impl sqlx::PgExecutor<'e>,
    job_id: Uuid,
    new_job: Uuid,
    by: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE dead_letters SET resolution = 'replayed', resolved_at = now(), resolved_by = $3, replayed_as = $2
         WHERE job_id = $1 AND resolution IS NULL",
    )
    .bind(job_id)
    .bind(new_job)
    .bind(by)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Lock open dead letter `job_id` for the rest of `tx` and return its
/// payload; `None` when it is resolved or unknown. Two concurrent replays of
/// one dead letter serialize here, so it is enqueued once.
///
/// # Errors
/// Postgres failed.
pub async fn lock_open(
    tx: &mut sqlx::PgConnection,
    job_id: Uuid,
) -> sqlx::Result<Option<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT payload FROM dead_letters WHERE job_id = $1 AND resolution IS NULL FOR UPDATE",
    )
    .bind(job_id)
    .fetch_optional(tx)
    .await
}

/// Mark `job_id` discarded by `by`, unless already resolved. Returns whether
/// this call resolved it.
///
/// # Errors
/// Postgres failed.
pub async fn mark_discarded(pool: &PgPool, job_id: Uuid, by: &str) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE dead_letters SET resolution = 'discarded', resolved_at = now(), resolved_by = $2
         WHERE job_id = $1 AND resolution IS NULL",
    )
    .bind(job_id)
    .bind(by)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Delete dead letters that failed before `before`. Returns how many.
///
/// # Errors
/// Postgres failed.
pub async fn prune(pool: &PgPool, before: DateTime<Utc>) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM dead_letters WHERE failed_at < $1")
        .bind(before)
        .execute(pool)
        .await?
        .rows_affected())
}

/// Jobs that replay `job_id`, oldest first: (job id, enqueued at).
///
/// # Errors
/// Postgres failed.
pub async fn replays_of(pool: &PgPool, job_id: Uuid) -> sqlx::Result<Vec<(Uuid, DateTime<Utc>)>> {
    sqlx::query_as("SELECT job_id, enqueued_at FROM jobs WHERE replay_of = $1 ORDER BY enqueued_at")
        .bind(job_id)
        .fetch_all(pool)
        .await
}

/// The references among `refs` that an open `kind` dead letter holds back
/// from the scheduler, each with the time of its oldest such failure: the
/// dead letter is neither replayed nor discarded, and the order has not
/// changed in the shop (`shop_modified_at`) since it failed.
///
/// # Errors
/// Postgres failed.
pub async fn holding_back(
    pool: &PgPool,
    kind: &str,
    refs: &[String],
) -> sqlx::Result<Vec<(String, DateTime<Utc>)>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_as(
        "SELECT d.order_ref, min(d.failed_at)
         FROM dead_letters d JOIN orders o ON o.reference = d.order_ref
         WHERE d.order_ref = ANY($2) AND d.kind = $1 AND d.resolution IS NULL
           AND (o.shop_modified_at IS NULL OR o.shop_modified_at <= d.failed_at)
         GROUP BY d.order_ref",
    )
    .bind(kind)
    .bind(refs)
    .fetch_all(pool)
    .await
}

/// When the open failure holding `order_ref` back from the scheduler's
/// `kind` jobs began, if one does (see [`holding_back`]).
///
/// # Errors
/// Postgres failed.
pub async fn held_since(
    pool: &PgPool,
    kind: &str,
    order_ref: &str,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    Ok(holding_back(pool, kind, &[order_ref.to_owned()])
        .await?
        .into_iter()
        .next()
        .map(|(_, since)| since))
}
