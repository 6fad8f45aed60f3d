//! The reconciler: Postgres is the record, Redis only delivers.
//!
//! Every job the ledger holds as unfinished has one row in `open_jobs` naming
//! the delivery that must come next (`{job_id}:{run}`, its envelope and due
//! time). A pass walks those rows (keyset pages on the primary key, so a pass
//! costs what is open, not what the ledger has finished), asks Redis whether
//! it holds each delivery's payload, and pushes again, with its original task
//! id and due time, every one it does not: after a `FLUSHALL`, a restart
//! without persistence, or a process that died between a commit and its push.
//!
//! Pushing again is safe against a live push of the same delivery: the push
//! script writes a task id only if it is absent (`HSETNX`), so whichever
//! comes second is a no-op. A grace period keeps a pass away from jobs so
//! young that their first push may still be on its way. Tasks Redis holds
//! in any state (pending, delayed, in flight, or done and not yet swept by
//! the janitor) count as held: a done task always has its ledger row, so the
//! next delivery the ledger expects is a later one.
//!
//! One process runs the passes at a time (a lease in Redis, renewed by the
//! holder), every [`DEFAULT_INTERVAL`] and at start-up; `ordersync jobs
//! requeue` runs one on demand.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::domain::{JobEnvelope, JobKind, Lane};
use crate::ledger::reconcile::{self, OpenDelivery};
use crate::queue::enqueue::{Delivery, Enqueuer};

/// How often the lease holder runs a pass.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// Jobs enqueued more recently than this are left alone: their first push
/// may still be on its way to Redis.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// Open jobs read and checked per page.
const PAGE: i64 = 1_000;

static LEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r#"if redis.call("get", KEYS[1]) == ARGV[1] then
    redis.call("pexpire", KEYS[1], ARGV[2])
    return 1
end
if redis.call("set", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
    return 1
end
return 0"#,
    )
});

/// Whether a pass pushes what is missing or only counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Push every missing delivery again and record it.
    Repush,
    /// Count only (`ordersync queues`, `jobs requeue --dry-run`).
    Count,
}

/// What one pass found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Open deliveries examined.
    pub examined: u64,
    /// Of which Redis did not hold.
    pub missing: u64,
    /// Of which this pass pushed (the rest were pushed meanwhile by someone
    /// else, or not pushed because the pass only counted).
    pub pushed: u64,
    /// Missing deliveries per Redis queue name.
    pub missing_by_queue: BTreeMap<String, u64>,
    /// Open jobs whose stored envelope could not be read (named in the log).
    pub unreadable: u64,
}

/// Run one pass over every queue of the enqueuer's namespace.
///
/// # Errors
/// Postgres or Redis failed (what was pushed before stays pushed).
pub async fn pass(
    enqueuer: &Enqueuer,
    grace: Duration,
    mode: Mode,
    by: &str,
) -> anyhow::Result<Report> {
    let namespace = enqueuer.namespace();
    let queues: Vec<String> = JobKind::ALL
        .iter()
        .map(|kind| format!("{namespace}:{}", kind.as_str()))
        .collect();
    let settled_before =
        Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
    let mut conn = enqueuer.connection();
    let mut report = Report::default();
    let mut after: Option<Uuid> = None;
    loop {
        let page =
            reconcile::open_page(enqueuer.db(), &queues, after, settled_before, PAGE).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = Some(last.job_id);
        let full = page.len() as i64 == PAGE;
        report.examined += page.len() as u64;
        let deliveries = readable(page, &mut report);
        let missing = not_held(&mut conn, enqueuer, &deliveries).await?;
        report.missing += missing.len() as u64;
        for (_, queue) in &missing {
            *report.missing_by_queue.entry(queue.clone()).or_default() += 1;
        }
        if mode == Mode::Repush && !missing.is_empty() {
            let to_push: Vec<Delivery> = missing.iter().map(|(d, _)| d.clone()).collect();
            let pushed = enqueuer
                .push(&to_push)
                .await
                .context("pushing missing deliveries")?;
            report.pushed += pushed.ready + pushed.delayed;
            let rows: Vec<(Uuid, i32, String)> = missing
                .iter()
                .map(|((e, _), queue)| (e.job_id, e.run as i32, queue.clone()))
                .collect();
            reconcile::record(enqueuer.db(), &rows, by).await?;
        }
        if !full {
            break;
        }
    }
    Ok(report)
}

/// The envelopes of a page, with their due times; unreadable ones are
/// logged and counted (they cannot be pushed as anything).
fn readable(page: Vec<OpenDelivery>, report: &mut Report) -> Vec<Delivery> {
    page.into_iter()
        .filter_map(|open| match serde_json::from_value::<JobEnvelope>(open.envelope) {
            Ok(mut envelope) => {
                // The row's run is authoritative (a first delivery's stored
                // payload says run 1, which it is).
                envelope.run = u32::try_from(open.run).unwrap_or(1);
                envelope.ready_at = None;
                Some((envelope, Some(open.due_at)))
            }
            Err(error) => {
                tracing::error!(job_id = %open.job_id, %error, "open job with an unreadable envelope; not pushed");
                report.unreadable += 1;
                None
            }
        })
        .collect()
}

/// The deliveries among `deliveries` whose payload Redis does not hold, each
/// with its Redis queue name. One pipelined round trip per page.
async fn not_held(
    conn: &mut ConnectionManager,
    enqueuer: &Enqueuer,
    deliveries: &[Delivery],
) -> redis::RedisResult<Vec<(Delivery, String)>> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for (envelope, _) in deliveries {
        let keys = enqueuer.keys(envelope.kind, Lane::of(envelope.source));
        pipe.cmd("HEXISTS")
            .arg(keys.config.job_data_hash())
            .arg(envelope.task_id());
    }
    let held: Vec<bool> = pipe.query_async(conn).await?;
    Ok(deliveries
        .iter()
        .zip(held)
        .filter(|(_, held)| !held)
        .map(|(delivery, _)| {
            let queue = enqueuer
                .keys(delivery.0.kind, Lane::of(delivery.0.source))
                .name
                .clone();
            (delivery.clone(), queue)
        })
        .collect())
}

/// Take or renew the reconciler's lease for `holder` (a process name) for
/// `ttl`. Returns whether `holder` holds it now.
///
/// # Errors
/// Redis failed.
pub async fn hold_lease(
    conn: &mut ConnectionManager,
    namespace: &str,
    holder: &str,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    LEASE_SCRIPT
        .key(format!("{namespace}:reconciler:lease"))
        .arg(holder)
        .arg(ttl.as_millis().max(1) as u64)
        .invoke_async(conn)
        .await
}

/// Run passes while `holder` holds the lease, every `interval`, starting at
/// once, until `stop` turns true. `on_pass` sees each pass's report (the
/// worker counts re-pushed jobs in its metrics).
pub async fn run(
    enqueuer: Enqueuer,
    holder: String,
    interval: Duration,
    grace: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    on_pass: impl Fn(&Report) + Send + 'static,
) {
    let mut conn = enqueuer.connection();
    loop {
        match hold_lease(&mut conn, enqueuer.namespace(), &holder, interval * 3).await {
            Ok(true) => {
                let started = Instant::now();
                match pass(&enqueuer, grace, Mode::Repush, &holder).await {
                    Ok(report) => {
                        if report.missing > 0 {
                            tracing::warn!(
                                missing = report.missing,
                                pushed = report.pushed,
                                examined = report.examined,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "reconciler: Redis had lost jobs the ledger holds; pushed them again"
                            );
                        } else {
                            tracing::debug!(
                                examined = report.examined,
                                elapsed_ms = started.elapsed().as_millis() as u64,
                                "reconciler: Redis holds every open job"
                            );
                        }
                        on_pass(&report);
                    }
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "reconciler pass failed")
                    }
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "reconciler lease check failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}
