//! `invoice_steps`: one claim per (order, lifecycle step) after the invoice
//! exists: submit, payment, cancel, shop write-back.
//!
//! The same rule as the invoice claim: a job claims its step before calling
//! a provider; its own retry, a job that failed for good, or a claim whose
//! lease expired (the worker died) is taken over, and the taker looks at
//! the provider before acting, since the dead attempt may have acted.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// A step of the invoice lifecycle, as the ledger spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Draft to submitted.
    Submit,
    /// A Payment Entry allocating the invoice's amount.
    Payment,
    /// The invoice cancelled (payments against it first).
    Cancel,
    /// The shop's order status updated from the courier's.
    WriteBack,
}

impl Step {
    /// The ledger's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Submit => "submit",
            Step::Payment => "payment",
            Step::Cancel => "cancel",
            Step::WriteBack => "write_back",
        }
    }
}

/// Result of trying to claim a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepClaim {
    /// This job may do the step. `taken_over`: an earlier claim (another
    /// job's, or this job's previous attempt) existed, so look first.
    Acquired {
        /// A previous claim was taken over.
        taken_over: bool,
    },
    /// Already done, with what it recorded.
    Done {
        /// The document it made or acted on.
        result: Option<String>,
    },
    /// Another job holds a live claim.
    HeldElsewhere,
}

/// Claim `step` of `order_id` for `job_id`.
///
/// # Errors
/// Postgres failed.
pub async fn claim(
    pool: &PgPool,
    order_id: i64,
    step: Step,
    job_id: Uuid,
    lease: Duration,
) -> sqlx::Result<StepClaim> {
    let acquired: Option<(Option<Uuid>,)> = sqlx::query_as(
        "WITH previous AS (SELECT job_id FROM invoice_steps WHERE order_id = $1 AND step = $2)
         INSERT INTO invoice_steps (order_id, step, state, job_id, claimed_at)
         VALUES ($1, $2, 'running', $3, now())
         ON CONFLICT (order_id, step) DO UPDATE SET job_id = EXCLUDED.job_id, claimed_at = now()
           WHERE invoice_steps.state = 'running'
             AND (invoice_steps.job_id = EXCLUDED.job_id
                  OR invoice_steps.claimed_at < now() - make_interval(secs => $4)
                  OR EXISTS (SELECT 1 FROM dead_letters d WHERE d.job_id = invoice_steps.job_id))
         RETURNING (SELECT job_id FROM previous)",
    )
    .bind(order_id)
    .bind(step.as_str())
    .bind(job_id)
    .bind(lease.as_secs_f64())
    .fetch_optional(pool)
    .await?;
    if let Some((previous,)) = acquired {
        return Ok(StepClaim::Acquired {
            taken_over: previous.is_some(),
        });
    }
    let (state, result): (String, Option<String>) =
        sqlx::query_as("SELECT state, result FROM invoice_steps WHERE order_id = $1 AND step = $2")
            .bind(order_id)
            .bind(step.as_str())
            .fetch_one(pool)
            .await?;
    Ok(if state == "done" {
        StepClaim::Done { result }
    } else {
        StepClaim::HeldElsewhere
    })
}

/// Mark `job_id`'s claim of `step` done, with what it made or acted on.
///
/// # Errors
/// Postgres failed.
pub async fn finish(
    pool: &PgPool,
    order_id: i64,
    step: Step,
    job_id: Uuid,
    result: Option<&str>,
    detail: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE invoice_steps SET state = 'done', done_at = now(), result = $4, detail = $5
         WHERE order_id = $1 AND step = $2 AND job_id = $3 AND state = 'running'",
    )
    .bind(order_id)
    .bind(step.as_str())
    .bind(job_id)
    .bind(result)
    .bind(detail)
    .execute(pool)
    .await?;
    Ok(())
}

/// Record `step` as done by `job_id` unless it is already recorded: for a
/// step that happened as part of another (a draft submitted on its way to
/// cancellation, a live invoice created submitted).
///
/// # Errors
/// Postgres failed.
pub async fn record_done(
    pool: &PgPool,
    order_id: i64,
    step: Step,
    job_id: Uuid,
    result: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO invoice_steps (order_id, step, state, job_id, claimed_at, done_at, result)
         VALUES ($1, $2, 'done', $3, now(), now(), $4)
         ON CONFLICT (order_id, step) DO UPDATE SET state = 'done', done_at = now(),
             result = EXCLUDED.result, job_id = EXCLUDED.job_id
           WHERE invoice_steps.state = 'running'",
    )
    .bind(order_id)
    .bind(step.as_str())
    .bind(job_id)
    .bind(result)
    .execute(pool)
    .await?;
    Ok(())
}

/// Drop `job_id`'s claim of `step` when nothing was done (the provider
/// refused, or the step turned out to be unneeded), so another job may claim.
///
/// # Errors
/// Postgres failed.
pub async fn release(pool: &PgPool, order_id: i64, step: Step, job_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM invoice_steps
         WHERE order_id = $1 AND step = $2 AND job_id = $3 AND state = 'running'",
    )
    .bind(order_id)
    .bind(step.as_str())
    .bind(job_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether `step` of `order_id` has a row, running or done.
///
/// # Errors
/// Postgres failed.
pub async fn exists(pool: &PgPool, order_id: i64, step: Step) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invoice_steps WHERE order_id = $1 AND step = $2)",
    )
    .bind(order_id)
    .bind(step.as_str())
    .fetch_one(pool)
    .await
}

/// The state of `step` of `order_id` (`running` / `done`), if claimed.
///
/// # Errors
/// Postgres failed.
pub async fn state(pool: &PgPool, order_id: i64, step: Step) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT state FROM invoice_steps WHERE order_id = $1 AND step = $2")
        .bind(order_id)
        .bind(step.as_str())
        .fetch_optional(pool)
        .await
}

/// Whether `step` of `order_id` is claimed by a job that may still be acting:
/// running, within its lease, and not failed for good.
///
/// # Errors
/// Postgres failed.
pub async fn held_live(
    pool: &PgPool,
    order_id: i64,
    step: Step,
    lease: Duration,
) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invoice_steps s
          WHERE s.order_id = $1 AND s.step = $2 AND s.state = 'running'
            AND s.claimed_at >= now() - make_interval(secs => $3)
            AND NOT EXISTS (SELECT 1 FROM dead_letters d WHERE d.job_id = s.job_id))",
    )
    .bind(order_id)
    .bind(step.as_str())
    .bind(lease.as_secs_f64())
    .fetch_one(pool)
    .await
}

/// Per store, what the invoice lifecycle did after creation, as the ledger
/// recorded it.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow, serde::Serialize)]
pub struct LifecycleCounts {
    /// Store code.
    pub store: String,
    /// Invoices moved to submitted (created submitted, or a draft submitted).
    pub submitted: i64,
    /// Payment Entries created.
    pub payments: i64,
    /// Invoices cancelled by us (not found already cancelled).
    pub cancelled: i64,
    /// Payment Entries cancelled before their invoice (refunds).
    pub payments_cancelled: i64,
    /// Shop orders whose status we wrote.
    pub written_back: i64,
}

/// [`LifecycleCounts`] for every store with any step, by store code.
///
/// # Errors
/// Postgres failed.
pub async fn per_store(pool: &PgPool) -> sqlx::Result<Vec<LifecycleCounts>> {
    sqlx::query_as(
        "SELECT o.store,
                count(*) FILTER (WHERE s.step = 'submit') AS submitted,
                count(*) FILTER (WHERE s.step = 'payment' AND s.detail->>'created' = 'true') AS payments,
                count(*) FILTER (WHERE s.step = 'cancel' AND s.detail ? 'submitted_first') AS cancelled,
                COALESCE(sum(jsonb_array_length(s.detail->'payments_cancelled'))
                         FILTER (WHERE s.step = 'cancel' AND s.detail ? 'payments_cancelled'), 0)::bigint
                    AS payments_cancelled,
                count(*) FILTER (WHERE s.step = 'write_back' AND s.detail->>'written' = 'true') AS written_back
         FROM invoice_steps s JOIN orders o ON o.id = s.order_id
         WHERE s.state = 'done'
         GROUP BY o.store ORDER BY o.store",
    )
    .fetch_all(pool)
    .await
}
