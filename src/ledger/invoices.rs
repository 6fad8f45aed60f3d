//! `invoices`: the claim that makes one ERP invoice per order.

use std::time::Duration;

use sqlx::PgPool;
use uuid::Uuid;

/// Result of trying to claim an order's invoice creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvoiceClaim {
    /// This job may create the invoice. `taken_over` is true when a previous
    /// claim's lease had expired: its worker may have created the invoice
    /// before dying, so look it up in the ERP first.
    Acquired {
        /// A dead claim was taken over.
        taken_over: bool,
    },
    /// Already created or found (`erp_name`).
    Settled {
        /// The ERP invoice name.
        erp_name: String,
    },
    /// Another job holds a live claim.
    HeldElsewhere,
    /// A cancellation came first and the ERP had no invoice: none is made.
    Voided,
}

/// Claim `order_id`'s invoice for `job_id`. A claim held by the same job (its
/// retry), by a job that failed for good, or whose lease expired is taken
/// over (and the caller looks the invoice up in the ERP before creating).
///
/// # Errors
/// Postgres failed.
pub async fn claim(
    pool: &PgPool,
    order_id: i64,
    reference: &str,
    job_id: Uuid,
    lease: Duration,
) -> sqlx::Result<InvoiceClaim> {
    let lease_secs = lease.as_secs_f64();
    let acquired: Option<(Option<Uuid>,)> = sqlx::query_as(
        "WITH previous AS (SELECT job_id, claimed_at FROM invoices WHERE order_id = $1)
         INSERT INTO invoices (order_id, reference, state, job_id, claimed_at)
         VALUES ($1, $2, 'creating', $3, now())
         ON CONFLICT (order_id) DO UPDATE SET job_id = EXCLUDED.job_id, claimed_at = now()
           WHERE invoices.state = 'creating'
             AND (invoices.job_id = EXCLUDED.job_id
                  OR invoices.claimed_at < now() - make_interval(secs => $4)
                  -- The holder failed for good (its replay takes over).
                  OR EXISTS (SELECT 1 FROM dead_letters d WHERE d.job_id = invoices.job_id))
         RETURNING (SELECT job_id FROM previous)",
    )
    .bind(order_id)
    .bind(reference)
    .bind(job_id)
    .bind(lease_secs)
    .fetch_optional(pool)
    .await?;
    if let Some((previous,)) = acquired {
        return Ok(InvoiceClaim::Acquired {
            taken_over: previous.is_some(),
        });
    }
    let (state, erp_name): (String, Option<String>) =
        sqlx::query_as("SELECT state, erp_name FROM invoices WHERE order_id = $1")
            .bind(order_id)
            .fetch_one(pool)
            .await?;
    Ok(match (state.as_str(), erp_name) {
        ("voided", _) => InvoiceClaim::Voided,
        ("creating", _) | (_, None) => InvoiceClaim::HeldElsewhere,
        (_, Some(erp_name)) => InvoiceClaim::Settled { erp_name },
    })
}

/// Settle a claim: the invoice was `created` by us or found `existing`.
///
/// # Errors
/// Postgres failed.
pub async fn settle(
    pool: &PgPool,
    order_id: i64,
    job_id: Uuid,
    erp_name: &str,
    created: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE invoices SET state = $3, erp_name = $4, settled_at = now()
         WHERE order_id = $1 AND job_id = $2 AND state = 'creating'",
    )
    .bind(order_id)
    .bind(job_id)
    .bind(if created { "created" } else { "existing" })
    .bind(erp_name)
    .execute(pool)
    .await?;
    Ok(())
}

/// Drop `job_id`'s claim when the ERP surely created nothing (the call was
/// rejected), so another job can claim at once.
///
/// # Errors
/// Postgres failed.
pub async fn release(pool: &PgPool, order_id: i64, job_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM invoices WHERE order_id = $1 AND job_id = $2 AND state = 'creating'")
        .bind(order_id)
        .bind(job_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// Settle a claim with an invoice this job made: `kind` (`live` or
/// `historical`) and the docstatus it was created with.
///
/// # Errors
/// Postgres failed.
pub async fn settle_made(
    pool: &PgPool,
    order_id: i64,
    job_id: Uuid,
    erp_name: &str,
    kind: &str,
    docstatus: i16,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE invoices SET state = 'created', erp_name = $3, kind = $4, docstatus = $5,
             settled_at = now()
         WHERE order_id = $1 AND job_id = $2 AND state = 'creating'",
    )
    .bind(order_id)
    .bind(job_id)
    .bind(erp_name)
    .bind(kind)
    .bind(docstatus)
    .execute(pool)
    .await?;
    Ok(())
}

/// Settle `job_id`'s claim as voided: a cancellation found no invoice in the
/// ERP, so none will be made for this order.
///
/// # Errors
/// Postgres failed.
pub async fn void(pool: &PgPool, order_id: i64, job_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE invoices SET state = 'voided', settled_at = now()
         WHERE order_id = $1 AND job_id = $2 AND state = 'creating'",
    )
    .bind(order_id)
    .bind(job_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Record the docstatus last seen or set in the ERP.
///
/// # Errors
/// Postgres failed.
pub async fn set_docstatus(pool: &PgPool, order_id: i64, docstatus: i16) -> sqlx::Result<()> {
    sqlx::query("UPDATE invoices SET docstatus = $2 WHERE order_id = $1")
        .bind(order_id)
        .bind(docstatus)
        .execute(pool)
        .await?;
    Ok(())
}

/// An order's invoice as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InvoiceRow {
    /// `creating`, `created`, `existing` or `voided`.
    pub state: String,
    /// The ERP invoice name, once known.
    pub erp_name: Option<String>,
    /// `live` or `historical` for invoices we made.
    pub kind: Option<String>,
    /// Last known docstatus.
    pub docstatus: Option<i16>,
}

/// `order_id`'s invoice row, if any.
///
/// # Errors
/// Postgres failed.
pub async fn by_order(pool: &PgPool, order_id: i64) -> sqlx::Result<Option<InvoiceRow>> {
    sqlx::query_as("SELECT state, erp_name, kind, docstatus FROM invoices WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(pool)
        .await
}
