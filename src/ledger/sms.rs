//! `sms_messages`: one text per (order, status).

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// Result of trying to claim the text for one (order, status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsClaim {
    /// This job may send it.
    Acquired,
    /// Already sent.
    Sent,
    /// An earlier attempt died or timed out while sending: it may have gone
    /// out, and sending again could text the customer twice.
    Unknown,
    /// Another job holds a live claim.
    HeldElsewhere,
}

/// Claim the text for (`order_id`, `status`) for `job_id`. The same job's
/// retry re-claims its own claim; a claim left `sending` by a dead attempt
/// of any job becomes `unknown` rather than being re-sent.
///
/// # Errors
/// Postgres failed.
pub async fn claim(
    pool: &PgPool,
    order_id: i64,
    status: &str,
    phone: &str,
    message: &str,
    job_id: Uuid,
    lease: Duration,
) -> sqlx::Result<SmsClaim> {
    let inserted = sqlx::query(
        "INSERT INTO sms_messages (order_id, status, state, phone, message, job_id, claimed_at)
         VALUES ($1, $2, 'sending', $3, $4, $5, now())
         ON CONFLICT (order_id, status) DO NOTHING",
    )
    .bind(order_id)
    .bind(status)
    .bind(phone)
    .bind(message)
    .bind(job_id)
    .execute(pool)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(SmsClaim::Acquired);
    }
    let (state, holder, expired): (String, Uuid, bool) = sqlx::query_as(
        "SELECT state, job_id, claimed_at < now() - make_interval(secs => $3)
         FROM sms_messages WHERE order_id = $1 AND status = $2",
    )
    .bind(order_id)
    .bind(status)
    .bind(lease.as_secs_f64())
    .fetch_one(pool)
    .await?;
    Ok(match state.as_str() {
        "sent" => SmsClaim::Sent,
        "unknown" => SmsClaim::Unknown,
        // Our own claim still 'sending' means our previous delivery died
        // mid-send (a released claim is deleted): its fate is unknown.
        _ if holder == job_id || expired => {
            mark_unknown(pool, order_id, status).await?;
            SmsClaim::Unknown
        }
        _ => SmsClaim::HeldElsewhere,
    })
}

/// The provider accepted the text.
///
/// # Errors
/// Postgres failed.
pub async fn mark_sent(
    pool: &PgPool,
    order_id: i64,
    status: &str,
    message_id: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sms_messages SET state = 'sent', provider_message_id = $3, sent_at = now()
         WHERE order_id = $1 AND status = $2",
    )
    .bind(order_id)
    .bind(status)
    .bind(message_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The send may or may not have happened (timeout, dead attempt).
///
/// # Errors
/// Postgres failed.
pub async fn mark_unknown(pool: &PgPool, order_id: i64, status: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE sms_messages SET state = 'unknown' WHERE order_id = $1 AND status = $2 AND state = 'sending'")
        .bind(order_id)
        .bind(status)
        .execute(pool)
        .await?;
    Ok(())
}

/// The provider surely did not send it (rejected before processing): drop the
/// claim so a retry may send.
///
/// # Errors
/// Postgres failed.
pub async fn release(pool: &PgPool, order_id: i64, status: &str, job_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sms_messages WHERE order_id = $1 AND status = $2 AND job_id = $3 AND state = 'sending'")
        .bind(order_id)
        .bind(status)
        .bind(job_id)
        .execute(pool)
        .await?;
    Ok(())
}
