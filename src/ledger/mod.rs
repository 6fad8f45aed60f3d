//! Postgres: the only module that issues SQL.
//!
//! The job ledger (`jobs`, `job_runs`) answers, for any job id, who enqueued
//! it, when, every delivery and its outcome. The order tables hold what the
//! jobs learned and the claims that make side effects exactly-once.

pub mod dead_letters;
pub mod invoices;
pub mod jobs;
pub mod ops;
pub mod orders;
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
