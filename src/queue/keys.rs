//! Redis key names for one queue, derived from apalis-redis's own `Config` so
//! ours can never drift from the keys its worker reads.

use std::time::Duration;

use crate::domain::{JobKind, Lane};

/// apalis-redis configuration and our extra keys for one job kind's queue.
#[derive(Debug, Clone)]
pub struct QueueKeys {
    /// The apalis-redis configuration the worker runs with.
    pub config: apalis_redis::Config,
    /// Queue name: `{namespace}:{kind}`.
    pub name: String,
    /// Which lane this queue is: only the bulk lane takes stores in turn.
    pub lane: Lane,
}

/// How often a live worker heartbeats. With [`MISSED_HEARTBEATS`] it bounds
/// how long a crashed worker's in-flight jobs wait to be re-enqueued
/// (5 s x 3 = 15 s, plus up to one heartbeat of the surviving worker).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Heartbeats a worker may miss before its in-flight jobs are re-enqueued.
pub const MISSED_HEARTBEATS: usize = 3;
/// Tasks fetched per round trip: bigger batches are what makes one worker
/// fast (apalis-notes.md), at the cost of a crashed worker holding more.
pub const DEFAULT_FETCH_BATCH: usize = 200;

impl QueueKeys {
    /// Keys for `kind`'s `lane` under `namespace`, with the given fetch batch size.
    pub fn new(namespace: &str, kind: JobKind, lane: Lane, fetch_batch: usize) -> Self {
        let name = match lane {
            Lane::Live => format!("{namespace}:{}", kind.as_str()),
            Lane::Bulk => format!("{namespace}:{}:bulk", kind.as_str()),
        };
        let config = apalis_redis::Config::default()
            .queue(&name)
            .batch_size(fetch_batch.max(1))
            // The lease scripts LREM over the whole active list per task
            // (~1,600 jobs/s); in-flight sets and acks work without them.
            .lock_tasks(false)
            // Never off: without results no ack is written and every id
            // stays in the in-flight set, to run again after a heartbeat lapse.
            .persist_results(true)
            // apalis's own events are a PUBLISH per acked task that nobody
            // subscribes to; our push and promote scripts publish the
            // wake-ups workers listen for, independently of this flag.
            .emit_events(false)
            .heartbeat_interval(HEARTBEAT_INTERVAL)
            .missed_heartbeats(MISSED_HEARTBEATS);
        Self { config, name, lane }
    }

    /// Override how liveness is judged (tests use short heartbeats).
    pub fn with_liveness(mut self, heartbeat: Duration, missed: usize) -> Self {
        self.config = self
            .config
            .heartbeat_interval(heartbeat)
            .missed_heartbeats(missed.max(1));
        self
    }

    /// Our delayed set (scores are due times in ms): retries and deferrals.
    pub fn delayed(&self) -> String {
        format!("{}:delayed", self.name)
    }

    /// The pub/sub channel our push and promote scripts publish on.
    pub fn wake_channel(&self) -> String {
        format!("tasks:{}:available", self.config.active_jobs_list())
    }

    /// Bulk lane: the stores with tasks waiting their turn, in turn order
    /// (see `queue/fair.rs`).
    pub fn fair_ring(&self) -> String {
        format!("{}:fair:ring", self.name)
    }

    /// Bulk lane: prefix of the per-store lists of tasks waiting their turn
    /// (`{prefix}:{store}`).
    pub fn fair_prefix(&self) -> String {
        format!("{}:fair:store", self.name)
    }

    /// How many tasks the active list may hold before new ones wait their
    /// store's turn: 0 (no turns) on the live lane, the latency path.
    pub fn fair_window(&self) -> usize {
        match self.lane {
            Lane::Live => 0,
            Lane::Bulk => crate::queue::fair::FAIR_WINDOW,
        }
    }

    /// Prefix of the per-worker in-flight sets.
    pub fn inflight_prefix(&self) -> String {
        self.config.inflight_jobs_set()
    }
}
