//! `open_jobs` read back, and `reconciled_jobs`: what the reconciler needs
//! from the ledger to bring back what Redis lost.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// The delivery an open job is waiting for, as the ledger knows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpenDelivery {
    /// The job.
    pub job_id: Uuid,
    /// The delivery's run number (its task id is `{job_id}:{run}`).
    pub run: i32,
    /// The delivery's envelope (for a first delivery, the job as enqueued).
    pub envelope: serde_json::Value,
    /// When it is due.
    pub due_at: DateTime<Utc>,
}

/// One page of the open jobs of `queues` (ledger queue names), by job id
/// after `after`, leaving out jobs enqueued at or after `settled_before`: a
/// job that young may still be on its way to Redis.
///
/// # Errors
/// Postgres failed.
pub async fn open_page(
    db: &PgPool,
    queues: &[String],
    after: Option<Uuid>,
    settled_before: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<OpenDelivery>> {
    // Keyset pagination on the primary key: a pass costs what is open, never
    // what the ledger has finished.
    sqlx::query_as(
        "SELECT o.job_id, o.run, COALESCE(o.envelope, j.payload) AS envelope, o.due_at
         FROM open_jobs o JOIN jobs j USING (job_id)
         WHERE o.queue = ANY($1) AND ($2::uuid IS NULL OR o.job_id > $2) AND o.enqueued_at < $3
         ORDER BY o.job_id LIMIT $4",
    )
    .bind(queues)
    .bind(after)
    .bind(settled_before)
    .bind(limit)
    .fetch_all(db)
    .await
}

/// Record deliveries pushed again because Redis did not hold them:
/// (job id, run, Redis queue name), by `by`.
///
/// # Errors
/// Postgres failed.
pub async fn record(db: &PgPool, pushed: &[(Uuid, i32, String)], by: &str) -> sqlx::Result<()> {
    if pushed.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = pushed.iter().map(|(id, _, _)| *id).collect();
    let runs: Vec<i32> = pushed.iter().map(|(_, run, _)| *run).collect();
    let queues: Vec<&str> = pushed.iter().map(|(_, _, q)| q.as_str()).collect();
    sqlx::query(
        "INSERT INTO reconciled_jobs (job_id, run, queue, reconciled_by)
         SELECT u.job_id, u.run, u.queue, $4 FROM UNNEST($1::uuid[], $2::int[], $3::text[]) AS u(job_id, run, queue)",
    )
    .bind(&ids)
    .bind(&runs)
    .bind(&queues)
    .bind(by)
    .execute(db)
    .await?;
    Ok(())
}

/// Deliveries re-pushed per Redis queue name since `since`.
///
/// # Errors
/// Postgres failed.
pub async fn reconciled_since(
    db: &PgPool,
    since: DateTime<Utc>,
) -> sqlx::Result<std::collections::HashMap<String, u64>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT queue, count(*) FROM reconciled_jobs WHERE reconciled_at >= $1 GROUP BY queue",
    )
    .bind(since)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|(q, n)| (q, n as u64)).collect())
}

/// When each delivery of `job_id` was pushed again, oldest first: (run, at, by).
///
/// # Errors
/// Postgres failed.
pub async fn for_job(db: &PgPool, job_id: Uuid) -> sqlx::Result<Vec<(i32, DateTime<Utc>, String)>> {
    sqlx::query_as(
        "SELECT run, reconciled_at, reconciled_by FROM reconciled_jobs WHERE job_id = $1 ORDER BY reconciled_at",
    )
    .bind(job_id)
    .fetch_all(db)
    .await
}

/// A task whose payload is not JSON, taken out of its queue.
#[derive(Debug, Clone)]
pub struct QuarantinedTask {
    /// The Redis queue it was in.
    pub queue: String,
    /// Its task id.
    pub task_id: String,
    /// The job its id names, when the ledger has it.
    pub job_id: Option<Uuid>,
    /// The payload, byte for byte.
    pub raw: Vec<u8>,
    /// Why it could not be decoded.
    pub error: String,
}

/// Keep a quarantined task. The same task quarantined twice is kept once.
///
/// # Errors
/// Postgres failed.
pub async fn quarantine(db: &PgPool, task: &QuarantinedTask) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO quarantined_tasks (queue, task_id, job_id, raw, error) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (queue, task_id) DO NOTHING",
    )
    .bind(&task.queue)
    .bind(&task.task_id)
    .bind(task.job_id)
    .bind(&task.raw)
    .bind(&task.error)
    .execute(db)
    .await?;
    Ok(())
}

/// Whether the ledger has job `job_id`.
///
/// # Errors
/// Postgres failed.
pub async fn job_exists(db: &PgPool, job_id: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jobs WHERE job_id = $1)")
        .bind(job_id)
        .fetch_one(db)
        .await
}
