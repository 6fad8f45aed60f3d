//! The janitor: deletes finished tasks from Redis once they are older than a
//! grace period, so Redis memory stays flat however many jobs run.
//!
//! apalis-redis 1.0 keeps every finished task forever: its id in
//! `{queue}:done`, its payload in `{queue}:data` and its metadata hash
//! `{queue}:meta:<id>` (which also holds our start counter, see `starts.rs`).
//! A task only reaches the done set after its run's ledger row is committed,
//! so Postgres already has everything worth keeping.
//!
//! Nothing else grows per task: the active list, our delayed set and the
//! per-worker in-flight sets shrink as tasks move on, and apalis's dead set
//! stays empty because our handler always returns `Ok` (the outcome is ours,
//! in the ledger). The janitor leaves the dead set alone on purpose: a task
//! there would not have settled through our ledger, so it is the only record.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::queue::QueueKeys;

static JANITOR_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/janitor.lua")));

/// How long a finished task stays in Redis by default.
///
/// Task ids are `{job_id}:{run}`, and a follow-up delivery pushed twice (its
/// parent redelivered after a crash re-pushes it) is deduplicated by the push
/// script's `HSETNX` on the data hash. Deleting the payload too early would
/// let such a late duplicate in as a new task and run the follow-up again.
/// A crashed worker's un-acked parent is redelivered after its heartbeat
/// lapses (5 s x 3 missed, plus up to one heartbeat of a live worker, ~20 s),
/// so five minutes is comfortably longer than that window.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5 * 60);
/// How long the janitor waits after a sweep that found nothing to delete.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// SSCAN COUNT hint per script call: each call touches a few hundred tasks,
/// about a millisecond of Redis time, so other clients are never held up.
pub const SWEEP_BATCH: usize = 500;
/// Pause between two batches of one sweep, so a large backlog of deletions
/// takes a bounded share of Redis instead of all of it.
pub const BATCH_PAUSE: Duration = Duration::from_millis(2);

/// What one script call did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// SSCAN cursor for the next call; 0 when the cycle is complete.
    pub next_cursor: u64,
    /// Tasks deleted (payload, metadata and done-set membership).
    pub deleted: u64,
    /// Done tasks kept: finished less than the grace period ago.
    pub kept: u64,
    /// `done_at` (Unix seconds) of the oldest kept task.
    pub oldest_kept_done_at: Option<i64>,
}

/// What a full cursor cycle over one queue's done set did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Tasks deleted.
    pub deleted: u64,
    /// Done tasks kept because they are too recent.
    pub kept: u64,
    /// `done_at` (Unix seconds) of the oldest kept task.
    pub oldest_kept_done_at: Option<i64>,
}

/// Run one SSCAN page of `keys`'s done set from `cursor`, deleting tasks
/// whose `done_at` is at or before `cutoff_secs` (Unix seconds).
///
/// # Errors
/// Redis failed.
pub async fn sweep_batch(
    conn: &mut ConnectionManager,
    keys: &QueueKeys,
    cursor: u64,
    cutoff_secs: i64,
) -> redis::RedisResult<Batch> {
    let (next_cursor, deleted, kept, oldest): (u64, u64, u64, i64) = JANITOR_SCRIPT
        .key(keys.config.done_jobs_set())
        .key(keys.config.job_data_hash())
        .key(keys.config.job_meta_hash())
        .arg(cursor)
        .arg(SWEEP_BATCH)
        .arg(cutoff_secs)
        .invoke_async(conn)
        .await?;
    Ok(Batch {
        next_cursor,
        deleted,
        kept,
        oldest_kept_done_at: (oldest > 0).then_some(oldest),
    })
}

/// One full cursor cycle over `keys`'s done set: delete every task finished
/// more than `grace` ago, a batch at a time with a short pause in between.
///
/// # Errors
/// Redis failed (what earlier batches deleted stays deleted).
pub async fn sweep(
    conn: &mut ConnectionManager,
    keys: &QueueKeys,
    grace: Duration,
) -> redis::RedisResult<Sweep> {
    let mut total = Sweep::default();
    let mut cursor = 0;
    loop {
        let batch = sweep_batch(conn, keys, cursor, cutoff(grace)).await?;
        total.deleted += batch.deleted;
        total.kept += batch.kept;
        total.oldest_kept_done_at = match (total.oldest_kept_done_at, batch.oldest_kept_done_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if batch.next_cursor == 0 {
            return Ok(total);
        }
        cursor = batch.next_cursor;
        tokio::time::sleep(BATCH_PAUSE).await;
    }
}

/// The newest `done_at` old enough to delete: now minus `grace`, in the unit
/// apalis-redis writes `done_at` in (Unix seconds, `queries::current_timestamp`).
fn cutoff(grace: Duration) -> i64 {
    chrono::Utc::now().timestamp() - i64::try_from(grace.as_secs()).unwrap_or(i64::MAX / 2)
}

/// How long to wait before sweeping a queue again after `sweep`.
fn wait_after(sweep: &Sweep, grace: Duration, interval: Duration) -> Duration {
    if sweep.deleted > 0 && sweep.kept == 0 {
        // Catching up (a backlog, or a grace of zero): tasks that finished
        // during this cycle are already old enough.
        return Duration::ZERO;
    }
    match sweep.oldest_kept_done_at {
        // Nothing kept can be deleted before the oldest of it ages out.
        Some(oldest) => {
            let grace = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX / 2);
            let ages_out_in = (oldest + grace + 1 - chrono::Utc::now().timestamp()).max(0);
            Duration::from_secs(ages_out_in as u64).max(interval)
        }
        None => interval,
    }
}

/// Sweep `queues` until `stop` turns true: as long as sweeps delete things,
/// sweep again at once; otherwise wait (`interval`, or until the oldest kept
/// task ages out). Several workers running this at once only duplicate work.
pub async fn run(
    mut conn: ConnectionManager,
    queues: Vec<QueueKeys>,
    grace: Duration,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut due: Vec<Instant> = vec![Instant::now(); queues.len()];
    loop {
        for (keys, due) in queues.iter().zip(due.iter_mut()) {
            if *due > Instant::now() {
                continue;
            }
            let sweep = tokio::select! {
                sweep = sweep(&mut conn, keys, grace) => sweep,
                _ = stop.wait_for(|stopped| *stopped) => return,
            };
            *due = Instant::now()
                + match sweep {
                    Ok(sweep) => {
                        if sweep.deleted > 0 {
                            tracing::debug!(queue = %keys.name, deleted = sweep.deleted, kept = sweep.kept, "janitor swept finished tasks");
                        }
                        wait_after(&sweep, grace, interval)
                    }
                    Err(error) => {
                        tracing::warn!(%error, queue = %keys.name, "janitor sweep failed");
                        interval
                    }
                };
        }
        let Some(next) = due.iter().min().copied() else {
            return;
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn swept(deleted: u64, kept: u64, oldest: Option<i64>) -> Sweep {
        Sweep {
            deleted,
            kept,
            oldest_kept_done_at: oldest,
        }
    }

    #[test]
    fn a_sweep_that_deleted_everything_it_saw_goes_again_at_once() {
        let wait = wait_after(&swept(10, 0, None), DEFAULT_GRACE, DEFAULT_INTERVAL);
        assert_eq!(wait, Duration::ZERO);
    }

    #[test]
    fn an_empty_sweep_waits_the_interval() {
        let wait = wait_after(&swept(0, 0, None), DEFAULT_GRACE, DEFAULT_INTERVAL);
        assert_eq!(wait, DEFAULT_INTERVAL);
    }

    #[test]
    fn kept_tasks_are_not_rescanned_before_the_oldest_ages_out() {
        let now = chrono::Utc::now().timestamp();
        let wait = wait_after(
            &swept(5, 3, Some(now - 60)),
            Duration::from_secs(300),
            DEFAULT_INTERVAL,
        );
        // 300 s grace, finished 60 s ago: about 240 s to go.
        assert!(
            wait >= Duration::from_secs(235) && wait <= Duration::from_secs(242),
            "{wait:?}"
        );
    }

    #[test]
    fn kept_tasks_about_to_age_out_still_wait_at_least_the_interval() {
        let now = chrono::Utc::now().timestamp();
        let wait = wait_after(
            &swept(0, 3, Some(now - 299)),
            Duration::from_secs(300),
            DEFAULT_INTERVAL,
        );
        assert_eq!(wait, DEFAULT_INTERVAL);
    }

    #[test]
    fn the_cutoff_is_in_seconds_like_apalis_done_at() {
        let now = chrono::Utc::now().timestamp();
        let cut = cutoff(Duration::from_secs(300));
        assert!((now - 301..=now - 299).contains(&cut), "{cut} vs {now}");
    }
}
