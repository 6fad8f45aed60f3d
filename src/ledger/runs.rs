//! `job_runs`: one row per delivery, committed before the task is acked.
//!
//! Rows go through a group-commit writer: each handler sends its row over a
//! channel and awaits its commit; one task takes whatever rows are waiting
//! (no fixed linger, which would stall every handler) and writes them with a
//! single `INSERT ... SELECT FROM UNNEST`. One transaction per job capped a
//! worker near 9,000 jobs/s; batching removes Postgres from the limit.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::domain::{FailureClass, RunOutcome};

/// One delivery's ledger row.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The job.
    pub job_id: Uuid,
    /// Delivery number.
    pub run: u32,
    /// Attempt number.
    pub attempt: u32,
    /// Worker name (shared: every row of a process carries the same one).
    pub worker: std::sync::Arc<str>,
    /// When the handler started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Why it failed (stored as `timeout`, `server_error`, `panic`, ...).
    pub error_class: Option<FailureClass>,
    /// Error message, never containing a secret.
    pub error_message: Option<String>,
    /// The provider's HTTP status, when one answered.
    pub http_status: Option<u16>,
    /// When the follow-up delivery is due.
    pub next_run_at: Option<DateTime<Utc>>,
    /// The follow-up delivery's envelope (retries and deferrals): what
    /// `open_jobs` keeps so a lost delivery can be pushed again as it was.
    pub next_envelope: Option<serde_json::Value>,
    /// Kind-specific facts.
    pub detail: Option<serde_json::Value>,
}

type Pending = (RunRecord, oneshot::Sender<()>);

/// Rows per INSERT at most.
const MAX_BATCH: usize = 2_000;

/// Handle to the group-commit writer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RunWriter {
    tx: mpsc::Sender<Pending>,
}

impl RunWriter {
    /// Start the writer task on `pool`.
    pub fn start(pool: PgPool) -> Self {
        let (tx, rx) = mpsc::channel(MAX_BATCH * 4);
        tokio::spawn(write_loop(pool, rx));
        Self { tx }
    }

    /// Commit `record`; returns once it is durable. A write that fails is
    /// retried until it succeeds: the caller's task stays in flight (and is
    /// redelivered if this process dies), which is the back-pressure we want
    /// while Postgres is down.
    ///
    /// # Errors
    /// The writer task is gone (the process is shutting down).
    pub async fn commit(&self, record: RunRecord) -> anyhow::Result<()> {
        let (done_tx, done_rx) = oneshot::channel();
        self.tx
            .send((record, done_tx))
            .await
            .map_err(|_| anyhow::anyhow!("ledger writer stopped"))?;
        done_rx
            .await
            .map_err(|_| anyhow::anyhow!("ledger writer stopped before committing"))
    }
}

/// Batches in flight at once: while one INSERT commits, the next batch is
/// already being written, so handlers never wait for a whole commit cycle
/// plus the one before it.
const WRITERS: usize = 3;

async fn write_loop(pool: PgPool, mut rx: mpsc::Receiver<Pending>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(WRITERS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
        if rx.recv_many(&mut batch, MAX_BATCH).await == 0 {
            // Channel closed: wait for the batches still being written.
            let _ = slots.acquire_many(WRITERS as u32).await;
            return;
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            write_batch(&pool, batch).await;
            drop(slot);
        });
    }
}

async fn write_batch(pool: &PgPool, batch: Vec<Pending>) {
    let mut delay = Duration::from_millis(50);
    loop {
        match insert(pool, batch.iter().map(|(r, _)| r)).await {
            Ok(()) => break,
            Err(error) => {
                tracing::error!(%error, rows = batch.len(), "ledger write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    for (_, done) in batch {
        let _ = done.send(());
    }
}

/// Insert run rows in one statement, and in that same statement move each
/// job's `open_jobs` row along: a terminal run closes it, a retry or
/// deferral points it at the next delivery. A row already present (a
/// redelivered delivery) is skipped rather than failing the batch.
///
/// # Errors
/// Postgres failed.
pub async fn insert<'a>(
    pool: &PgPool,
    records: impl Iterator<Item = &'a RunRecord>,
) -> sqlx::Result<()> {
    let records: Vec<&RunRecord> = records.collect();
    let n = records.len();
    let mut job_ids = Vec::with_capacity(n);
    let mut runs = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut workers: Vec<&str> = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut finished = Vec::with_capacity(n);
    let mut outcomes = Vec::with_capacity(n);
    let mut classes: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut messages: Vec<Option<String>> = Vec::with_capacity(n);
    let mut statuses: Vec<Option<i32>> = Vec::with_capacity(n);
    let mut next: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut details: Vec<Option<serde_json::Value>> = Vec::with_capacity(n);
    let mut next_envelopes: Vec<Option<&serde_json::Value>> = Vec::with_capacity(n);
    for r in records {
        job_ids.push(r.job_id);
        runs.push(r.run as i32);
        attempts.push(r.attempt as i32);
        workers.push(r.worker.as_ref());
        started.push(r.started_at);
        finished.push(r.finished_at);
        outcomes.push(r.outcome.as_str());
        classes.push(r.error_class.map(FailureClass::as_str));
        messages.push(r.error_message.clone());
        statuses.push(r.http_status.map(i32::from));
        next.push(r.next_run_at);
        details.push(r.detail.clone());
        next_envelopes.push(r.next_envelope.as_ref());
    }
    sqlx::query(
        "WITH recorded AS (
             INSERT INTO job_runs (job_id, run, attempt, worker, started_at, finished_at, outcome,
                                   error_class, error_message, http_status, next_run_at, detail)
             SELECT * FROM UNNEST($1::uuid[], $2::int[], $3::int[], $4::text[], $5::timestamptz[],
                                  $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::int[],
                                  $11::timestamptz[], $12::jsonb[])
             ON CONFLICT (job_id, run) DO NOTHING
             RETURNING job_id, run, outcome, next_run_at
         ),
         -- One batch can hold several deliveries of one job (each delivery's
         -- follow-up is pushed before its row commits, so while Postgres is
         -- down a job's retries pile up here). Only its latest may touch
         -- open_jobs: two sub-statements changing one row in one statement
         -- would leave it to chance which one applies.
         latest AS (
             SELECT DISTINCT ON (job_id) job_id, run, outcome, next_run_at
             FROM recorded ORDER BY job_id, run DESC
         ),
         closed AS (
             DELETE FROM open_jobs o USING latest r
             WHERE o.job_id = r.job_id AND r.outcome NOT IN ('retry', 'deferred')
         )
         UPDATE open_jobs o SET run = r.run + 1, envelope = n.envelope, due_at = COALESCE(r.next_run_at, now())
         FROM latest r JOIN UNNEST($1::uuid[], $2::int[], $13::jsonb[]) AS n(job_id, run, envelope)
              ON n.job_id = r.job_id AND n.run = r.run
         -- Batches commit concurrently: an older delivery's row never moves
         -- the job back.
         WHERE o.job_id = r.job_id AND r.outcome IN ('retry', 'deferred') AND o.run <= r.run",
    )
    .bind(&job_ids)
    .bind(&runs)
    .bind(&attempts)
    .bind(&workers)
    .bind(&started)
    .bind(&finished)
    .bind(&outcomes)
    .bind(&classes)
    .bind(&messages)
    .bind(&statuses)
    .bind(&next)
    .bind(&details)
    .bind(&next_envelopes)
    .execute(pool)
    .await?;
    Ok(())
}

/// A run as stored.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct RunRow {
    /// Delivery number.
    pub run: i32,
    /// Attempt number.
    pub attempt: i32,
    /// Worker name.
    pub worker: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: DateTime<Utc>,
    /// Outcome.
    pub outcome: String,
    /// Error class.
    pub error_class: Option<String>,
    /// Error message.
    pub error_message: Option<String>,
    /// Provider HTTP status.
    pub http_status: Option<i32>,
    /// When the next delivery is due.
    pub next_run_at: Option<DateTime<Utc>>,
    /// Kind-specific facts.
    pub detail: Option<serde_json::Value>,
}

/// Every run of one job, in order.
///
/// # Errors
/// Postgres failed.
pub async fn for_job(pool: &PgPool, job_id: Uuid) -> sqlx::Result<Vec<RunRow>> {
    sqlx::query_as(
        "SELECT run, attempt, worker, started_at, finished_at, outcome, error_class, error_message,
                http_status, next_run_at, detail
         FROM job_runs WHERE job_id = $1 ORDER BY run",
    )
    .bind(job_id)
    .fetch_all(pool)
    .await
}

/// Whether delivery `run` of `job_id` has its row (it was settled).
///
/// # Errors
/// Postgres failed.
pub async fn exists(pool: &PgPool, job_id: Uuid, run: u32) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM job_runs WHERE job_id = $1 AND run = $2)")
        .bind(job_id)
        .bind(run as i32)
        .fetch_one(pool)
        .await
}

/// Rows in `job_runs`, and the first start and last finish among them.
///
/// # Errors
/// Postgres failed.
pub async fn totals(
    pool: &PgPool,
) -> sqlx::Result<(i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    sqlx::query_as("SELECT count(*), min(started_at), max(finished_at) FROM job_runs")
        .fetch_one(pool)
        .await
}

/// When delivery 1 of `job_id` started, once its row exists.
///
/// # Errors
/// Postgres failed.
pub async fn first_start(pool: &PgPool, job_id: Uuid) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT started_at FROM job_runs WHERE job_id = $1 AND run = 1")
        .bind(job_id)
        .fetch_optional(pool)
        .await
}
