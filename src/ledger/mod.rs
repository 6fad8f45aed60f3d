//! Postgres: the only module that issues SQL.
//!
//! The job ledger (`jobs`, `job_runs`) answers, for any job id, who enqueued
//! it, when, every delivery and its outcome. The order tables hold what the
//! jobs learned and the claims that make side effects exactly-once.

pub mod dead_letters;
pub mod invoice_steps;
pub mod invoices;
pub mod jobs;
pub mod ops;
pub mod orders;
pub mod orders_view;
pub mod reconcile;
pub mod rejected;
pub mod runs;
pub mod sms;
pub mod summary;
pub mod webhooks;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;

/// The migrations in `migrations/`, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Open a pool to `database_url`.
///
/// # Errors
/// The URL is invalid or Postgres does not answer.
pub async fn connect(database_url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = PgConnectOptions::from_str(database_url).with_context(|| {
        format!(
            "invalid DATABASE_URL {}",
            crate::redact::redact_url(database_url)
        )
    })?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options)
        .await
        .with_context(|| {
            format!(
                "cannot connect to Postgres at {}",
                crate::redact::redact_url(database_url)
            )
        })
}

/// Retry `op` until it succeeds, backing off up to 5 s, logging each failure.
/// For what must not be lost to an outage of our own (a ledger row, a claim's
/// settlement, a push) when the caller has nothing better to do than wait:
/// its task stays in flight meanwhile, and is redelivered if the process dies.
pub async fn until_done<T, E, F, Fut>(what: &str, mut op: F) -> T
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut delay = std::time::Duration::from_millis(50);
    loop {
        match op().await {
            Ok(value) => return value,
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "{what} failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(std::time::Duration::from_secs(5));
            }
        }
    }
}

/// Apply pending migrations.
///
/// # Errors
/// A migration failed.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("applying database migrations")
}
