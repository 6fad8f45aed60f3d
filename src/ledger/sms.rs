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
        // An operator asked to send it again, and this job is the one they
        // created for it: it may send, once.
        "resend" if holder == job_id => {
            let taken = sqlx::query(
                "UPDATE sms_messages SET state = 'sending', claimed_at = now(), resends = resends + 1
                 WHERE order_id = $1 AND status = $2 AND state = 'resend' AND job_id = $3",
            )
            .bind(order_id)
            .bind(status)
            .bind(job_id)
            .execute(pool)
            .await?
            .rows_affected();
            if taken == 1 {
                SmsClaim::Acquired
            } else {
                SmsClaim::HeldElsewhere
            }
        }
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

/// A text whose fate is unknown: the gateway timed out, or the worker died
/// while sending.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct UnknownText {
    /// Our order id.
    pub order_id: i64,
    /// Order reference.
    pub reference: String,
    /// Store code.
    pub store: String,
    /// The status the text announces.
    pub status: String,
    /// The recipient.
    pub phone: String,
    /// The text.
    pub message: String,
    /// The job that tried to send it.
    pub job_id: Uuid,
    /// When that attempt claimed it.
    pub claimed_at: chrono::DateTime<chrono::Utc>,
}

/// Texts of unknown fate, oldest first, optionally of one store, at most `limit`.
///
/// # Errors
/// Postgres failed.
pub async fn unknown(
    pool: &PgPool,
    store: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<UnknownText>> {
    sqlx::query_as(
        "SELECT m.order_id, o.reference, o.store, m.status, m.phone, m.message, m.job_id, m.claimed_at
         FROM sms_messages m JOIN orders o ON o.id = m.order_id
         WHERE m.state = 'unknown' AND ($1::text IS NULL OR o.store = $1)
         ORDER BY m.claimed_at, m.order_id LIMIT $2",
    )
    .bind(store)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Texts of unknown fate per store.
///
/// # Errors
/// Postgres failed.
pub async fn unknown_counts(pool: &PgPool) -> sqlx::Result<Vec<(String, i64)>> {
    sqlx::query_as(
        "SELECT o.store, count(*) FROM sms_messages m JOIN orders o ON o.id = m.order_id
         WHERE m.state = 'unknown' GROUP BY o.store ORDER BY o.store",
    )
    .fetch_all(pool)
    .await
}

/// Hand the unknown text of (`order_id`, `status`) to `new_job`, which will
/// send it again, as `by` asked. Returns the job that last tried it, or
/// `None` when the text is not (or no longer) of unknown fate. Locks the row
/// for the rest of `tx`, so two requests resend it once.
///
/// # Errors
/// Postgres failed.
pub async fn request_resend(
    tx: &mut sqlx::PgConnection,
    order_id: i64,
    status: &str,
    new_job: Uuid,
    by: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "UPDATE sms_messages m SET state = 'resend', job_id = $3, resend_requested_by = $4,
                resend_requested_at = now()
         FROM (SELECT order_id, status, job_id FROM sms_messages
               WHERE order_id = $1 AND status = $2 AND state = 'unknown' FOR UPDATE) previous
         WHERE m.order_id = previous.order_id AND m.status = previous.status
         RETURNING previous.job_id",
    )
    .bind(order_id)
    .bind(status)
    .bind(new_job)
    .bind(by)
    .fetch_optional(tx)
    .await
}

/// A delivery receipt, as stored on the text it is about.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeliveryReceipt {
    /// The gateway's latest status (`sent`, `delivered`, `undelivered`, `failed`...).
    pub delivery_status: Option<String>,
    /// The gateway's error code for a failed text.
    pub delivery_error_code: Option<i32>,
}

/// Record the gateway's delivery report for the text it knows as
/// `message_id`. Returns false when no text of ours has that id.
///
/// Statuses can arrive out of order (`sent` after `delivered`): a final
/// one (`delivered`, `undelivered`, `failed`) is never replaced by one
/// that is not.
///
/// # Errors
/// Postgres failed.
pub async fn record_receipt(
    pool: &PgPool,
    message_id: &str,
    status: &str,
    error_code: Option<i32>,
) -> sqlx::Result<bool> {
    let matched = sqlx::query(
        "UPDATE sms_messages SET delivery_status = $2, delivery_error_code = $3,
                delivery_updated_at = now()
         WHERE provider_message_id = $1
           AND (delivery_status IS NULL
                OR delivery_status NOT IN ('delivered', 'undelivered', 'failed')
                OR $2 IN ('delivered', 'undelivered', 'failed'))",
    )
    .bind(message_id)
    .bind(status)
    .bind(error_code)
    .execute(pool)
    .await?
    .rows_affected();
    if matched > 0 {
        return Ok(true);
    }
    let known: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sms_messages WHERE provider_message_id = $1)",
    )
    .bind(message_id)
    .fetch_one(pool)
    .await?;
    Ok(known)
}

/// The delivery receipt of the text for (`order_id`, `status`), if any text.
///
/// # Errors
/// Postgres failed.
pub async fn receipt(
    pool: &PgPool,
    order_id: i64,
    status: &str,
) -> sqlx::Result<Option<DeliveryReceipt>> {
    sqlx::query_as(
        "SELECT delivery_status, delivery_error_code FROM sms_messages
         WHERE order_id = $1 AND status = $2",
    )
    .bind(order_id)
    .bind(status)
    .fetch_optional(pool)
    .await
}
