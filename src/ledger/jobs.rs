//! `jobs`: one row per job, written at enqueue time.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::JobEnvelope;

/// Record enqueued jobs, each with the time its first delivery is due
/// (`None`: now), and open them (`open_jobs`) in the same statement. A job id
/// already present (a follow-up enqueued again by a redelivered job) is left
/// as it was and not reopened. Returns how many jobs were new.
///
/// Pass a transaction to record follow-ups atomically with what causes them.
///
/// # Errors
/// Postgres failed.
pub async fn insert<'e>(
    db: impl sqlx::PgExecutor<'e>,
    namespace: &str,
    jobs: &[(&JobEnvelope, Option<DateTime<Utc>>)],
) -> sqlx::Result<u64> {
    if jobs.is_empty() {
        return Ok(0);
    }
    let n = jobs.len();
    let mut ids = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut queues = Vec::with_capacity(n);
    let mut stores = Vec::with_capacity(n);
    let mut refs: Vec<Option<String>> = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut sources = Vec::with_capacity(n);
    let mut enqueued = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut replay_of: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut due: Vec<DateTime<Utc>> = Vec::with_capacity(n);
    for (e, run_at) in jobs {
        replay_of.push(e.replay_of);
        ids.push(e.job_id);
        kinds.push(e.kind.as_str().to_owned());
        queues.push(format!("{namespace}:{}", e.kind.as_str()));
        stores.push(e.store.clone());
        refs.push(e.order_ref.clone());
        // Serialized straight into the statement: no JSON tree per job.
        payloads.push(sqlx::types::Json(*e));
        sources.push(e.source.as_str().to_owned());
        enqueued.push(e.enqueued_at);
        max_attempts.push(e.max_attempts as i32);
        due.push(run_at.unwrap_or(e.enqueued_at).max(e.enqueued_at));
    }
    let done = sqlx::query(
        "WITH new AS (
             INSERT INTO jobs (job_id, kind, queue, store, order_ref, payload, source, enqueued_at,
                               max_attempts, replay_of)
             SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[],
                                  $7::text[], $8::timestamptz[], $9::int[], $10::uuid[])
             ON CONFLICT (job_id) DO NOTHING
             RETURNING job_id, kind, queue, store, order_ref, enqueued_at
         )
         INSERT INTO open_jobs (job_id, kind, queue, store, order_ref, due_at, enqueued_at)
         SELECT new.job_id, new.kind, new.queue, new.store, new.order_ref, d.due_at, new.enqueued_at
         FROM new JOIN UNNEST($1::uuid[], $11::timestamptz[]) AS d(job_id, due_at) USING (job_id)",
    )
    .bind(&ids)
    .bind(&kinds)
    .bind(&queues)
    .bind(&stores)
    .bind(&refs)
    .bind(&payloads)
    .bind(&sources)
    .bind(&enqueued)
    .bind(&max_attempts)
    .bind(&replay_of)
    .bind(&due)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// A job as the ledger knows it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct JobRow {
    /// The job id.
    pub job_id: Uuid,
    /// Its kind.
    pub kind: String,
    /// Its store.
    pub store: Option<String>,
    /// Its order reference.
    pub order_ref: Option<String>,
    /// Who enqueued it.
    pub source: String,
    /// When.
    pub enqueued_at: DateTime<Utc>,
    /// The attempt budget.
    pub max_attempts: i32,
    /// The latest run's outcome, `queued` before the first one.
    pub state: String,
}

/// Look up one job.
///
/// # Errors
/// Postgres failed.
pub async fn get(pool: &PgPool, job_id: Uuid) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(
        "SELECT j.job_id, j.kind, j.store, j.order_ref, j.source, j.enqueued_at, j.max_attempts,
                COALESCE((SELECT r.outcome FROM job_runs r WHERE r.job_id = j.job_id
                          ORDER BY r.run DESC LIMIT 1), 'queued') AS state
         FROM jobs j WHERE j.job_id = $1",
    )
    .bind(job_id)
    .fetch_optional(pool)
    .await
}

/// Jobs touching one order, oldest first.
///
/// # Errors
/// Postgres failed.
pub async fn for_order(pool: &PgPool, order_ref: &str) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as(
        "SELECT j.job_id, j.kind, j.store, j.order_ref, j.source, j.enqueued_at, j.max_attempts,
                COALESCE((SELECT r.outcome FROM job_runs r WHERE r.job_id = j.job_id
                          ORDER BY r.run DESC LIMIT 1), 'queued') AS state
         FROM jobs j WHERE j.order_ref = $1 ORDER BY j.enqueued_at, j.job_id",
    )
    .bind(order_ref)
    .fetch_all(pool)
    .await
}

/// The failed job `job_id` replays, if it is a replay.
///
/// # Errors
/// Postgres failed.
pub async fn replay_of(pool: &PgPool, job_id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT replay_of FROM jobs WHERE job_id = $1")
        .bind(job_id)
        .fetch_optional(pool)
        .await
        .map(Option::flatten)
}

/// Whether a `kind` job of `store` (and `order_ref`, if given) has not
/// finished: queued, in flight, retrying or deferred.
///
/// # Errors
/// Postgres failed.
pub async fn has_unfinished(
    pool: &PgPool,
    kind: &str,
    store: &str,
    order_ref: Option<&str>,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM open_jobs
                        WHERE kind = $1 AND store = $2 AND ($3::text IS NULL OR order_ref = $3))",
    )
    .bind(kind)
    .bind(store)
    .bind(order_ref)
    .fetch_one(pool)
    .await
}

/// The references among `refs` with no unfinished `kind` job.
///
/// # Errors
/// Postgres failed.
pub async fn without_unfinished(
    pool: &PgPool,
    kind: &str,
    refs: &[String],
) -> sqlx::Result<Vec<String>> {
    if refs.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(
        "SELECT r.reference FROM UNNEST($2::text[]) WITH ORDINALITY AS r(reference, n)
         WHERE NOT EXISTS (SELECT 1 FROM open_jobs o WHERE o.kind = $1 AND o.order_ref = r.reference)
         ORDER BY r.n",
    )
    .bind(kind)
    .bind(refs)
    .fetch_all(pool)
    .await
}

/// The latest outcome of each of `ids` (`queued` before its first run), in order.
///
/// # Errors
/// Postgres failed.
pub async fn latest_outcomes(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT COALESCE((SELECT r.outcome FROM job_runs r WHERE r.job_id = i.id ORDER BY r.run DESC LIMIT 1), 'queued')
         FROM UNNEST($1::uuid[]) WITH ORDINALITY AS i(id, n) ORDER BY i.n",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}
