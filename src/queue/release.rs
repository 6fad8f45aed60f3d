//! Handing a stopping worker's in-flight tasks back to its queue, and
//! deregistering it, so nothing it held waits for a heartbeat to lapse.

use std::sync::LazyLock;

use redis::aio::ConnectionManager;

use crate::queue::QueueKeys;

static RELEASE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/release.lua")));

/// The in-flight set of apalis worker `worker` on `keys`'s queue
/// (apalis-redis's `Config::inflight_set_for`).
pub fn inflight_set(keys: &QueueKeys, worker: &str) -> String {
    format!("{}:{worker}", keys.inflight_prefix())
}

/// Move every task left in `worker`'s in-flight set back to the head of the
/// active list, and remove the worker's registration and metadata. Returns
/// how many tasks went back.
///
/// Call it only once nothing in this process can still run or acknowledge
/// those tasks: anything handed back is delivered again, possibly at once.
///
/// # Errors
/// Redis failed; the tasks stay in flight and are re-enqueued by a live
/// worker once this one's heartbeat lapses.
pub async fn release_worker(
    conn: &mut ConnectionManager,
    keys: &QueueKeys,
    worker: &str,
) -> redis::RedisResult<u64> {
    RELEASE_SCRIPT
        .key(inflight_set(keys, worker))
        .key(keys.config.active_jobs_list())
        .key(keys.config.signal_list())
        .key(keys.config.workers_set())
        // apalis-redis's `Config::worker_metadata_key`, which wants a
        // `WorkerContext` we do not have here.
        .key(format!("{}:workers:metadata:{worker}", keys.name))
        .arg(worker)
        .invoke_async(conn)
        .await
}

/// Refresh `worker`'s heartbeat if it is still registered (never registers
/// it again). A draining apalis worker stops heartbeating (it only does so
/// between fetches), and a worker that misses its heartbeats has its
/// in-flight jobs re-enqueued by the others while they are still running here.
///
/// # Errors
/// Redis failed.
pub async fn keep_alive(
    conn: &mut ConnectionManager,
    keys: &QueueKeys,
    worker: &str,
) -> redis::RedisResult<()> {
    // apalis-redis scores workers by Unix seconds (`keep_alive.lua`).
    redis::cmd("ZADD")
        .arg(keys.config.workers_set())
        .arg("XX")
        .arg(chrono::Utc::now().timestamp())
        .arg(worker)
        .query_async::<u64>(conn)
        .await
        .map(|_| ())
}
