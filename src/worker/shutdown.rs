//! Graceful shutdown: stop fetching, let running jobs finish within a
//! timeout, and hand everything else back to the queue at once.
//!
//! apalis's `stop()` alone is not enough. It waits for running jobs with no
//! limit; until they end it neither heartbeats nor acks (apalis-core's
//! `CallAll` only closes the backend once no job runs), so a drain longer
//! than the heartbeat lapse (15 s) gets the worker reaped by a live one and
//! its running jobs run twice. And nothing it held but did not finish goes
//! back before its heartbeat lapses. So, on shutdown:
//!
//! 1. every apalis worker is paused: it fetches nothing new;
//! 2. this process keeps its registrations alive while jobs finish;
//! 3. once a worker's jobs are done it is stopped: apalis hands back its
//!    fetched-but-not-started buffer and flushes its acks;
//! 4. at the timeout, the workers still waiting are dropped (so nothing of
//!    theirs can ack any more) and their running jobs are cut off;
//! 5. every registration of this process is released (`queue/release.rs`):
//!    whatever is still in its in-flight set goes back to the head of the
//!    active list, and the worker is deregistered.
//!
//! A task fetched but never started has no start counted (`queue/starts.rs`
//! counts in `Executor::execute`), so it runs as a first delivery. A job
//! cut off at the timeout has its start counted and no ledger row, so its
//! redelivery records the attempt as interrupted (`worker_died`) and retries
//! it within its budget. That is deliberate: the job really was stopped
//! mid-attempt and its side effects may be half done, and the start count is
//! what ends a job that never finishes; un-counting it would run the same
//! attempt again as if nothing happened, and could not be done safely (its
//! ledger row may still be on its way to Postgres). If its row did land, the
//! redelivery sees it and does not run the job again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apalis::prelude::{WorkerContext, WorkerError};
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::queue::{liveness, release, QueueKeys};

/// How long in-flight jobs may take to finish after SIGTERM, by default.
/// Kubernetes' `terminationGracePeriodSeconds` should leave a margin above it.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// How often shutdown checks whether a worker's jobs are done.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Ids of running jobs named in the timeout's log line, at most.
const LOGGED_IDS: usize = 5;

/// Deliveries running in this process, and the signal that cuts them off.
#[derive(Debug)]
pub(crate) struct Drain {
    next_slot: AtomicU64,
    running: Mutex<HashMap<u64, (String, Instant)>>,
    cut_off: watch::Sender<bool>,
}

impl Drain {
    pub(crate) fn new() -> Self {
        Self {
            next_slot: AtomicU64::new(0),
            running: Mutex::new(HashMap::new()),
            cut_off: watch::channel(false).0,
        }
    }

    /// Record that task `task_id` started; it counts as running until the
    /// returned guard drops.
    pub(crate) fn start(self: &Arc<Self>, task_id: String) -> RunningGuard {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(slot, (task_id, Instant::now()));
        RunningGuard {
            drain: self.clone(),
            slot,
        }
    }

    /// Resolves once running jobs must stop where they are.
    pub(crate) async fn cut_off_signal(&self) {
        let mut cut_off = self.cut_off.subscribe();
        let _ = cut_off.wait_for(|cut| *cut).await;
    }

    /// Running task ids with how long they have run, longest first.
    fn running(&self) -> Vec<(String, Duration)> {
        let mut running: Vec<(String, Duration)> = self
            .lock()
            .values()
            .map(|(id, since)| (id.clone(), since.elapsed()))
            .collect();
        running.sort_by_key(|(_, ran)| std::cmp::Reverse(*ran));
        running
    }

    fn is_idle(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (String, Instant)>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Marks one delivery as running until dropped.
#[derive(Debug)]
pub(crate) struct RunningGuard {
    drain: Arc<Drain>,
    slot: u64,
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.drain.lock().remove(&self.slot);
    }
}

/// Every apalis worker registration this process made: what shutdown keeps
/// alive and then releases.
#[derive(Debug, Default)]
pub(crate) struct Roster {
    workers: Mutex<Vec<(QueueKeys, String)>>,
}

impl Roster {
    pub(crate) fn add(&self, keys: &QueueKeys, name: &str) {
        self.lock().push((keys.clone(), name.to_owned()));
    }

    /// Forget a registration whose apalis worker is gone: nothing keeps it
    /// alive any more, so its heartbeat lapses and a live worker re-enqueues
    /// what it held.
    pub(crate) fn remove(&self, name: &str) {
        self.lock().retain(|(_, n)| n != name);
    }

    pub(crate) fn all(&self) -> Vec<(QueueKeys, String)> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(QueueKeys, String)>> {
        self.workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The control future of one apalis worker: when `stop` turns true, pause
/// it (no new fetches), wait for its running jobs, then stop it (apalis
/// hands back its buffer and flushes acks).
pub(crate) async fn stop_when_told(
    worker: WorkerContext,
    mut stop: watch::Receiver<bool>,
) -> Result<(), WorkerError> {
    // A dropped sender means the process is going away: stop too.
    let _ = stop.wait_for(|stopped| *stopped).await;
    // Fails only if it is not running yet; `stop` below covers that.
    let _ = worker.pause();
    while worker.task_count() > 0 {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    loop {
        match worker.stop() {
            Ok(()) => return Ok(()),
            // Not started yet: it will be in a moment.
            Err(_) => tokio::time::sleep(DRAIN_POLL).await,
        }
    }
}

/// What shutdown works with, once the workers have been told to stop.
#[derive(Debug)]
pub(crate) struct Shutdown {
    /// A connection of its own (the workers' may be gone).
    pub(crate) conn: ConnectionManager,
    /// The supervised apalis workers.
    pub(crate) queue_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Running deliveries.
    pub(crate) drain: Arc<Drain>,
    /// Registrations to keep alive, then release.
    pub(crate) roster: Arc<Roster>,
    /// How long running jobs may take.
    pub(crate) timeout: Duration,
    /// The process's own heartbeat task (see `queue/liveness.rs`): it keeps
    /// every registration alive while jobs finish, and stops before they
    /// are released.
    pub(crate) liveness: tokio::task::JoinHandle<()>,
    /// This process's name, forgotten from the process set at the end.
    pub(crate) process: String,
    /// The queue namespace.
    pub(crate) namespace: String,
}

impl Shutdown {
    /// Wait for running jobs (at most the timeout), cut off the rest, and
    /// hand back everything this process still holds.
    pub(crate) async fn finish(self) {
        let Shutdown {
            mut conn,
            mut queue_tasks,
            drain,
            roster,
            timeout,
            liveness,
            process,
            namespace,
        } = self;
        let registrations = roster.all();
        let drained = tokio::time::timeout(timeout, async {
            futures::future::join_all(queue_tasks.iter_mut()).await;
            // Jobs of an apalis worker that failed and was replaced earlier
            // are not covered by its successor's drain.
            while !drain.is_idle() {
                tokio::time::sleep(DRAIN_POLL).await;
            }
        })
        .await
        .is_ok();
        if !drained {
            let running = drain.running();
            let ids: Vec<String> = running
                .iter()
                .take(LOGGED_IDS)
                .map(|(id, ran)| format!("{id} ({:.1}s)", ran.as_secs_f64()))
                .collect();
            tracing::warn!(
                timeout = %humantime::format_duration(timeout),
                running = running.len(),
                jobs = %ids.join(", "),
                "shutdown timeout reached with jobs still running: cutting them off; \
                 they are handed back to the queue and each records an interrupted attempt"
            );
            // Dropping the apalis workers first means none of the jobs cut
            // off below can be acked: an ack would mark them done.
            // (Awaiting a handle the drain above already saw finish would panic.)
            let unfinished: Vec<_> = queue_tasks
                .into_iter()
                .filter(|t| !t.is_finished())
                .collect();
            for task in &unfinished {
                task.abort();
            }
            for task in unfinished {
                let _ = task.await;
            }
            drain.cut_off.send_replace(true);
        }
        liveness.abort();
        let _ = liveness.await;
        let mut handed_back = 0;
        for (keys, name) in &registrations {
            match release::release_worker(&mut conn, keys, name).await {
                Ok(n) => handed_back += n,
                Err(error) => {
                    tracing::warn!(%error, queue = %keys.name, worker = %name, "could not hand back in-flight tasks; they return after the heartbeat lapses")
                }
            }
        }
        if handed_back > 0 {
            tracing::info!(
                tasks = handed_back,
                "handed back tasks fetched but not finished"
            );
        }
        if let Err(error) = liveness::forget(&mut conn, &namespace, &process).await {
            tracing::warn!(%error, "could not remove this process from the process set; it ages out");
        }
    }
}
