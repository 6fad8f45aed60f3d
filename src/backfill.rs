//! `ordersync backfill`: historical work enqueued in bulk on the low-priority
//! lane, with a progress bar of enqueued and completed jobs and a summary
//! read back from the ledger (so it cannot disagree with it).

use std::time::Duration;

use anyhow::Context as _;
use chrono::NaiveDate;
use uuid::Uuid;

use crate::domain::{JobKind, NormalizedStatus, Source};
use crate::jobs::Deps;
use crate::queue::NewJob;

/// What a backfill's jobs ended as, from the ledger.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Outcome {
    /// Succeeded (invoices created, statuses refreshed).
    pub created: u64,
    /// Skipped (already in the ERP, final status...).
    pub skipped: u64,
    /// Failed or not found.
    pub failed: u64,
}

/// Enqueue `create_invoice` for `store`'s completed orders created in
/// `[since, until)`, asking for the historical kind (paid, reporting only,
/// no stock movement); the job skips those the ERP already has.
///
/// # Errors
/// Postgres or Redis failed.
pub async fn invoices(
    deps: &Deps,
    store: &str,
    since: NaiveDate,
    until: Option<NaiveDate>,
) -> anyhow::Result<Vec<Uuid>> {
    let since = since.and_hms_opt(0, 0, 0).context("bad --since")?.and_utc();
    let until = until
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|d| d.and_utc());
    let refs = crate::ledger::orders::completed_between(&deps.db, store, since, until).await?;
    enqueue(
        deps,
        refs.iter()
            .map(|r| NewJob {
                args: crate::jobs::create_invoice::historical_args(),
                ..NewJob::for_order(JobKind::CreateInvoice, store, r)
            })
            .collect(),
    )
    .await
}

/// Enqueue a tracking sync of `store` and a status poll of every tracked,
/// non-final order.
///
/// # Errors
/// Postgres or Redis failed.
pub async fn tracking(deps: &Deps, store: &str) -> anyhow::Result<Vec<Uuid>> {
    let finals: Vec<&str> = NormalizedStatus::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    let mut jobs = vec![NewJob::for_store(JobKind::FetchTracking, store)];
    for reference in crate::ledger::orders::needing_refresh(&deps.db, store, &finals, None).await? {
        jobs.push(NewJob::for_order(JobKind::RefreshStatus, store, &reference));
    }
    enqueue(deps, jobs).await
}

async fn enqueue(deps: &Deps, jobs: Vec<NewJob>) -> anyhow::Result<Vec<Uuid>> {
    let (envelopes, _) = deps.enqueuer.enqueue(Source::Backfill, jobs).await?;
    Ok(envelopes.iter().map(|e| e.job_id).collect())
}

/// Wait until every job of `ids` is final, showing progress; then the
/// outcome counts from the ledger.
///
/// # Errors
/// Postgres failed.
pub async fn wait(
    deps: &Deps,
    ids: &[Uuid],
    bar: &indicatif::ProgressBar,
) -> anyhow::Result<Outcome> {
    loop {
        let states = crate::ledger::jobs::latest_outcomes(&deps.db, ids).await?;
        let done = states
            .iter()
            .filter(|s| !matches!(s.as_str(), "queued" | "retry" | "deferred"))
            .count();
        bar.set_position(done as u64);
        if done == ids.len() {
            let mut outcome = Outcome::default();
            for s in states {
                match s.as_str() {
                    "succeeded" => outcome.created += 1,
                    "skipped" => outcome.skipped += 1,
                    _ => outcome.failed += 1,
                }
            }
            return Ok(outcome);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Parse `YYYY-MM-DD`.
///
/// # Errors
/// Not a date (named).
pub fn parse_date(flag: &str, s: &str) -> anyhow::Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .with_context(|| format!("{flag} '{s}' is not a date (YYYY-MM-DD)"))
}
