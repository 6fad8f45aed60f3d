//! `ordersync scheduler`: the periodic producer. Per store and per kind, on
//! cron schedules, it enqueues the work the field reports ran by hand:
//! imports, full tracking syncs, status polls of tracked orders that are not
//! final (spread over the interval), and invoices for payable orders.
//!
//! Safe with several replicas: each (kind, store, tick) is claimed with
//! `SET NX` in Redis before anything is enqueued, so two schedulers enqueue
//! each tick once. A per-store job is not enqueued again while the previous
//! one for that store is still pending or running. A per-order job is not
//! enqueued while an open dead letter of its kind names the order (until it
//! is replayed or discarded, or the order changes in the shop), so one
//! order that always fails makes one dead letter, not one per tick. One
//! store's failure (a revoked key, a database error) is logged and never
//! holds back the others.

use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;

use crate::domain::payment::{CANCELLING_STATUSES, INVOICEABLE_STATUSES};
use crate::domain::schedule::Entry;
use crate::domain::{JobKind, NormalizedStatus, Source};
use crate::jobs::Deps;
use crate::queue::NewJob;

/// Run the scheduler for `stores` until `shutdown` resolves. The upcoming
/// tick of every entry runs at once on start (claimed under its own time,
/// so a replica, or this one when the time comes, does not repeat it).
///
/// # Errors
/// Redis is unreachable at start-up.
pub async fn run(
    deps: Deps,
    stores: Vec<String>,
    entries: Vec<Entry>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let mut conn = deps.enqueuer.connection();
    let mut next: Vec<DateTime<Utc>> = entries
        .iter()
        .map(|e| {
            e.schedule
                .upcoming(Utc)
                .next()
                .context("a schedule with no upcoming time")
        })
        .collect::<anyhow::Result<_>>()?;
    for (entry, tick) in entries.iter().zip(&next) {
        tick_once(&deps, &mut conn, &stores, entry, *tick).await;
    }
    for (entry, tick) in entries.iter().zip(next.iter_mut()) {
        *tick = following(entry, *tick);
    }
    tokio::pin!(shutdown);
    loop {
        let (index, due) = next
            .iter()
            .enumerate()
            .min_by_key(|(_, t)| **t)
            .map(|(i, t)| (i, *t))
            .context("no schedules")?;
        let wait = (due - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut shutdown => return Ok(()),
        }
        tick_once(&deps, &mut conn, &stores, &entries[index], due).await;
        next[index] = following(&entries[index], due);
    }
}

fn following(entry: &Entry, after: DateTime<Utc>) -> DateTime<Utc> {
    entry
        .schedule
        .after(&after)
        .next()
        .unwrap_or(after + chrono::Duration::days(365))
}

/// Enqueue one tick of `entry` for every store; one log line per store.
pub async fn tick_once(
    deps: &Deps,
    conn: &mut ConnectionManager,
    stores: &[String],
    entry: &Entry,
    tick: DateTime<Utc>,
) {
    let interval = (following(entry, tick) - tick)
        .to_std()
        .unwrap_or(Duration::from_secs(60));
    for store in stores {
        match tick_store(deps, conn, store, entry.kind, tick, interval).await {
            Ok(TickResult::Enqueued { enqueued, held }) => {
                tracing::info!(kind = %entry.kind, %store, %tick, enqueued, held_by_open_failures = held, "scheduler tick")
            }
            Ok(TickResult::Skipped(why)) => {
                tracing::info!(kind = %entry.kind, %store, %tick, skipped = why, "scheduler tick")
            }
            Err(error) => {
                tracing::warn!(kind = %entry.kind, %store, %tick, error = format!("{error:#}"), "scheduler tick failed")
            }
        }
    }
}

/// What one (kind, store, tick) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TickResult {
    /// Jobs enqueued, and orders held back by an open dead letter of the
    /// same kind.
    Enqueued {
        /// Jobs enqueued.
        enqueued: usize,
        /// Orders not enqueued: an open failure of theirs waits for an operator.
        held: usize,
    },
    /// Nothing, and why.
    Skipped(&'static str),
}

/// One (kind, store, tick).
///
/// # Errors
/// Redis or Postgres failed.
pub async fn tick_store(
    deps: &Deps,
    conn: &mut ConnectionManager,
    store: &str,
    kind: JobKind,
    tick: DateTime<Utc>,
    interval: Duration,
) -> anyhow::Result<TickResult> {
    let claim = format!(
        "{}:scheduler:{}:{store}:{}",
        deps.enqueuer.namespace(),
        kind.as_str(),
        tick.timestamp()
    );
    let claimed: bool = redis::cmd("SET")
        .arg(&claim)
        .arg(1)
        .arg("NX")
        .arg("EX")
        .arg(7 * 24 * 3600)
        .query_async::<Option<String>>(conn)
        .await?
        .is_some();
    if !claimed {
        return Ok(TickResult::Skipped(
            "tick already claimed by another scheduler",
        ));
    }
    let args = serde_json::json!({ "tick": tick });
    let mut held = 0;
    let jobs: Vec<NewJob> = match kind {
        JobKind::ImportOrders | JobKind::FetchTracking => {
            if crate::ledger::jobs::has_unfinished(&deps.db, kind.as_str(), store, None).await? {
                return Ok(TickResult::Skipped(
                    "previous job for this store still pending or running",
                ));
            }
            vec![NewJob {
                args,
                ..NewJob::for_store(kind, store)
            }]
        }
        JobKind::RefreshStatus => {
            let finals: Vec<&str> = NormalizedStatus::ALL
                .iter()
                .filter(|s| s.is_final())
                .map(|s| s.as_str())
                .collect();
            // The courier's list shows statuses too: an order it showed within
            // this interval is as fresh as a poll would make it.
            let listed_before =
                tick - chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::zero());
            let refs = crate::ledger::orders::needing_refresh(
                &deps.db,
                store,
                &finals,
                Some(listed_before),
            )
            .await?;
            let refs =
                crate::ledger::jobs::without_unfinished(&deps.db, kind.as_str(), &refs).await?;
            let refs = not_held(deps, kind, refs, &mut held).await?;
            spread(kind, store, &refs, tick, interval, &args)
        }
        JobKind::CreateInvoice => {
            let refs =
                crate::ledger::orders::needing_invoice(&deps.db, store, &INVOICEABLE_STATUSES)
                    .await?;
            let refs =
                crate::ledger::jobs::without_unfinished(&deps.db, kind.as_str(), &refs).await?;
            let refs = not_held(deps, kind, refs, &mut held).await?;
            spread(kind, store, &refs, tick, Duration::ZERO, &args)
        }
        JobKind::CancelInvoice => {
            let refs =
                crate::ledger::orders::needing_cancellation(&deps.db, store, &CANCELLING_STATUSES)
                    .await?;
            let refs =
                crate::ledger::jobs::without_unfinished(&deps.db, kind.as_str(), &refs).await?;
            spread(kind, store, &refs, tick, Duration::ZERO, &args)
        }
        JobKind::SendSms | JobKind::RecordPayment | JobKind::WriteBack | JobKind::Noop => {
            return Ok(TickResult::Skipped("not a scheduled kind"))
        }
    };
    let n = jobs.len();
    if n > 0 {
        deps.enqueuer.enqueue(Source::Scheduler, jobs).await?;
    }
    Ok(TickResult::Enqueued { enqueued: n, held })
}

/// `refs` less the orders an open `kind` dead letter holds back, counting
/// those in `held`.
async fn not_held(
    deps: &Deps,
    kind: JobKind,
    refs: Vec<String>,
    held: &mut usize,
) -> anyhow::Result<Vec<String>> {
    if !crate::domain::schedule::held_by_open_failure(kind) {
        return Ok(refs);
    }
    let holding = crate::ledger::dead_letters::holding_back(&deps.db, kind.as_str(), &refs).await?;
    if holding.is_empty() {
        return Ok(refs);
    }
    let holding: std::collections::HashSet<String> = holding
        .into_iter()
        .map(|(reference, _)| reference)
        .collect();
    *held += holding.len();
    Ok(refs.into_iter().filter(|r| !holding.contains(r)).collect())
}

/// Per-order jobs with due times spread evenly over `over`, so a tick of
/// thousands of polls does not hit the courier at one instant.
fn spread(
    kind: JobKind,
    store: &str,
    refs: &[String],
    tick: DateTime<Utc>,
    over: Duration,
    args: &serde_json::Value,
) -> Vec<NewJob> {
    let n = refs.len().max(1) as u32;
    refs.iter()
        .enumerate()
        .map(|(i, reference)| {
            let offset = over.mul_f64(0.9) / n * i as u32;
            NewJob {
                args: args.clone(),
                run_at: Some(
                    tick.max(Utc::now()) + chrono::Duration::from_std(offset).unwrap_or_default(),
                ),
                ..NewJob::for_order(kind, store, reference)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_are_spread_over_the_interval() {
        let tick = Utc::now() + chrono::Duration::seconds(10);
        let refs: Vec<String> = (0..10).map(|i| format!("ALPH-{i}")).collect();
        let jobs = spread(
            JobKind::RefreshStatus,
            "ALPH",
            &refs,
            tick,
            Duration::from_secs(100),
            &serde_json::Value::Null,
        );
        let first = jobs[0].run_at.unwrap();
        let last = jobs[9].run_at.unwrap();
        assert_eq!(first, tick);
        assert_eq!((last - first).num_seconds(), 81);
    }
}
