//! What an operator asks of a queue: how much is waiting, for how long, who
//! is working on it, and how it went in the last minute.
//!
//! Counts come from where they live: Redis for what is queued (apalis-redis
//! 1.0's own stats scripts are broken, see apalis-notes.md), the Postgres
//! ledger for what happened (runs and unresolved failures).

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use serde::Serialize;
use sqlx::PgPool;

use std::sync::Arc;

use crate::domain::{JobEnvelope, JobKind, Lane, Policies};
use crate::ledger::ops::QueueLedgerCounts;
use crate::queue::{liveness, reconcile, Enqueuer, QueueKeys};

/// One queue (a kind's lane) at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueStats {
    /// Redis queue name (`{namespace}:{kind}` or `{namespace}:{kind}:bulk`).
    pub queue: String,
    /// Job kind.
    pub kind: JobKind,
    /// `live` or `bulk`.
    pub lane: &'static str,
    /// Ready to run: the active list, and on the bulk lane the tasks waiting
    /// their store's turn.
    pub pending: u64,
    /// Waiting for their due time: retries and deferrals.
    pub scheduled: u64,
    /// Fetched by a worker and not yet acknowledged.
    pub in_flight: u64,
    /// Failed jobs in the ledger nobody has replayed or discarded yet.
    pub failed: u64,
    /// How long the next job to run has been due, in seconds (`None` when
    /// nothing is pending).
    pub oldest_pending_age_secs: Option<f64>,
    /// Runs that finished their job (succeeded or skipped) in the last minute.
    pub completed_last_minute: u64,
    /// Runs that ended their job failed (failed or not found) in the last minute.
    pub failed_last_minute: u64,
    /// Runs that failed transiently and were rescheduled, in the last minute.
    pub retried_last_minute: u64,
    /// Jobs the ledger holds unfinished that Redis does not hold (older than
    /// the reconciler's grace): what the reconciler will push again.
    pub missing: u64,
    /// Deliveries the reconciler pushed again in the last hour.
    pub reconciled_last_hour: u64,
    /// Live worker processes consuming this queue.
    pub workers: u64,
}

impl QueueStats {
    /// Nothing queued, running, failed or finished recently, and no workers.
    pub fn is_unused(&self) -> bool {
        self.pending == 0
            && self.scheduled == 0
            && self.in_flight == 0
            && self.failed == 0
            && self.completed_last_minute == 0
            && self.failed_last_minute == 0
            && self.retried_last_minute == 0
            && self.missing == 0
            && self.reconciled_last_hour == 0
            && self.workers == 0
    }
}

/// The lane's spelling in output.
pub fn lane_name(lane: Lane) -> &'static str {
    match lane {
        Lane::Live => "live",
        Lane::Bulk => "bulk",
    }
}

/// A snapshot of every queue of `namespace`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// When it was taken.
    pub generated_at: DateTime<Utc>,
    /// Live worker processes (each runs many apalis workers).
    pub processes: u64,
    /// One entry per kind and lane, in [`JobKind::ALL`] order, live first.
    pub queues: Vec<QueueStats>,
}

/// Read every queue's numbers. A worker is live when its last heartbeat is
/// younger than `liveness` (heartbeat x missed heartbeats).
///
/// # Errors
/// Redis or Postgres failed.
pub async fn snapshot(
    conn: &mut ConnectionManager,
    db: &PgPool,
    namespace: &str,
    liveness: Duration,
) -> anyhow::Result<Snapshot> {
    let generated_at = Utc::now();
    let ledger = crate::ledger::ops::queue_counts(db, namespace).await?;
    let reconciled =
        crate::ledger::reconcile::reconciled_since(db, generated_at - chrono::Duration::hours(1))
            .await?;
    // A count-only reconciler pass: what the lease holder's next pass would push.
    let enqueuer = Enqueuer::new(
        conn.clone(),
        db.clone(),
        namespace,
        Arc::new(Policies::default()),
    );
    let missing = reconcile::pass(
        &enqueuer,
        reconcile::DEFAULT_GRACE,
        reconcile::Mode::Count,
        "",
    )
    .await?
    .missing_by_queue;
    let processes = liveness::live_processes(conn, namespace, liveness).await?;
    let mut queues = Vec::new();
    for kind in JobKind::ALL {
        for lane in Lane::ALL {
            let redis_side =
                redis_counts(conn, namespace, kind, lane, liveness, &processes).await?;
            let queue = QueueKeys::new(namespace, kind, lane, 1).name;
            let key = (format!("{namespace}:{}", kind.as_str()), lane_name(lane));
            let counts: QueueLedgerCounts = ledger.get(&key).copied().unwrap_or_default();
            let stats = QueueStats {
                missing: missing.get(&queue).copied().unwrap_or_default(),
                reconciled_last_hour: reconciled.get(&queue).copied().unwrap_or_default(),
                queue,
                kind,
                lane: lane_name(lane),
                pending: redis_side.pending,
                scheduled: redis_side.scheduled,
                in_flight: redis_side.in_flight,
                failed: counts.unresolved_failures,
                oldest_pending_age_secs: redis_side
                    .oldest_ready_at
                    .map(|t| ((generated_at - t).num_milliseconds().max(0) as f64) / 1000.0),
                completed_last_minute: counts.completed,
                failed_last_minute: counts.failed,
                retried_last_minute: counts.retried,
                workers: redis_side.live_processes,
            };
            // The no-op kind is the bench's and tests'; shown only when used.
            if kind == JobKind::Noop && stats.is_unused() {
                continue;
            }
            queues.push(stats);
        }
    }
    Ok(Snapshot {
        generated_at,
        processes: processes.len() as u64,
        queues,
    })
}

#[derive(Debug, Default)]
struct RedisCounts {
    pending: u64,
    scheduled: u64,
    in_flight: u64,
    live_processes: u64,
    oldest_ready_at: Option<DateTime<Utc>>,
}

async fn redis_counts(
    conn: &mut ConnectionManager,
    namespace: &str,
    kind: JobKind,
    lane: Lane,
    liveness: Duration,
    processes: &[String],
) -> redis::RedisResult<RedisCounts> {
    let keys = QueueKeys::new(namespace, kind, lane, 1);
    let now_secs = Utc::now().timestamp();
    let live_since = now_secs - liveness.as_secs().max(1) as i64;
    let (pending, delayed, apalis_scheduled, head, workers): (
        u64,
        u64,
        u64,
        Option<String>,
        Vec<(String, i64)>,
    ) = redis::pipe()
        .cmd("LLEN")
        .arg(keys.config.active_jobs_list())
        // apalis's own scheduled set stays empty with our push script;
        // counted in case a task ever lands there.
        .cmd("ZCARD")
        .arg(keys.delayed())
        .cmd("ZCARD")
        .arg(keys.config.scheduled_jobs_set())
        // Workers fetch from the head of the list.
        .cmd("LINDEX")
        .arg(keys.config.active_jobs_list())
        .arg(0)
        .cmd("ZRANGE")
        .arg(keys.config.workers_set())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await?;
    // Every registered worker's in-flight set counts, a dead one's too: its
    // tasks are in flight until a live worker re-enqueues them.
    let mut pipe = redis::pipe();
    for (worker, _) in &workers {
        pipe.cmd("SCARD")
            .arg(format!("{}:{worker}", keys.inflight_prefix()));
    }
    // The oldest pending task is at the head of the active list or, on the
    // bulk lane, at the head of a store's list of tasks waiting their turn.
    let waiting_turn = crate::queue::fair::waiting(conn, &keys).await?;
    let heads: Vec<&String> = head.iter().chain(waiting_turn.heads.iter()).collect();
    for task_id in &heads {
        pipe.cmd("HGET")
            .arg(keys.config.job_data_hash())
            .arg(*task_id);
    }
    let (in_flight, head_payloads) = if pipe.cmd_iter().next().is_none() {
        (0, Vec::new())
    } else {
        let values: Vec<redis::Value> = pipe.query_async(conn).await?;
        let mut in_flight = 0u64;
        for value in values.iter().take(workers.len()) {
            in_flight += redis::from_redis_value_ref::<u64>(value)?;
        }
        let payloads: Vec<Vec<u8>> = values
            .iter()
            .skip(workers.len())
            .filter_map(|v| {
                redis::from_redis_value_ref::<Option<Vec<u8>>>(v)
                    .ok()
                    .flatten()
            })
            .collect();
        (in_flight, payloads)
    };
    let oldest_ready_at = head_payloads
        .iter()
        .filter_map(|bytes| serde_json::from_slice::<JobEnvelope>(bytes).ok())
        .map(|envelope| envelope.ready_at.unwrap_or(envelope.enqueued_at))
        .min();
    let pending = pending + waiting_turn.tasks;
    Ok(RedisCounts {
        pending,
        scheduled: delayed + apalis_scheduled,
        in_flight,
        // A process runs several apalis workers per queue (fetchers, restarts):
        // count the live processes with a live registration here.
        live_processes: processes
            .iter()
            .filter(|process| {
                let prefix = format!("{process}-");
                workers
                    .iter()
                    .any(|(name, heartbeat)| *heartbeat >= live_since && name.starts_with(&prefix))
            })
            .count() as u64,
        oldest_ready_at,
    })
}

/// The human table of `ordersync queues`.
pub fn render_table(snapshot: &Snapshot) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20} {:>8} {:>9} {:>9} {:>7} {:>9} {:>8} {:>9} {:>8} {:>7} {:>8} {:>7}",
        "queue",
        "pending",
        "scheduled",
        "in_flight",
        "failed",
        "oldest",
        "done/1m",
        "failed/1m",
        "retry/1m",
        "missing",
        "recon/1h",
        "workers"
    );
    for q in &snapshot.queues {
        let name = match q.lane {
            "bulk" => format!("{}:bulk", q.kind.as_str()),
            _ => q.kind.as_str().to_owned(),
        };
        let oldest = q
            .oldest_pending_age_secs
            .map_or_else(|| "-".to_owned(), format_age);
        let _ = writeln!(
            out,
            "{:<20} {:>8} {:>9} {:>9} {:>7} {:>9} {:>8} {:>9} {:>8} {:>7} {:>8} {:>7}",
            name,
            q.pending,
            q.scheduled,
            q.in_flight,
            q.failed,
            oldest,
            q.completed_last_minute,
            q.failed_last_minute,
            q.retried_last_minute,
            q.missing,
            q.reconciled_last_hour,
            q.workers
        );
    }
    let _ = writeln!(out, "{} worker process(es) live", snapshot.processes);
    out.truncate(out.trim_end().len());
    out
}

/// `850ms`, `42s`, `5m03s`, `2h07m`.
fn format_age(secs: f64) -> String {
    if secs < 1.0 {
        format!("{}ms", (secs * 1000.0).round() as u64)
    } else if secs < 60.0 {
        format!("{}s", secs.floor() as u64)
    } else if secs < 3600.0 {
        let s = secs as u64;
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        let m = secs as u64 / 60;
        format!("{}h{:02}m", m / 60, m % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(format_age(0.25), "250ms");
        assert_eq!(format_age(42.9), "42s");
        assert_eq!(format_age(303.0), "5m03s");
        assert_eq!(format_age(7620.0), "2h07m");
    }
}
