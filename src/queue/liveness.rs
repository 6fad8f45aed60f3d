//! Who is alive, kept apart from apalis's own bookkeeping.
//!
//! apalis-redis heartbeats each worker registration from its fetch loop, so a
//! worker whose handlers all wait (on a stalled Postgres, say) stops
//! heartbeating and a peer re-enqueues its in-flight tasks while they still
//! run. Each process therefore refreshes its own registrations on a timer of
//! its own, and also records itself in `{namespace}:processes` (one member
//! per process), which is what `ordersync queues` counts as workers: one
//! process holds some twenty registrations (kinds x lanes x fetchers).
//!
//! A killed process leaves keys behind that apalis never deletes: the
//! metadata hash of each registration (apalis's reaper removes the
//! registration and re-enqueues its tasks, but not the hash) and its process
//! entry. [`sweep_dead`] removes them. The heartbeat lists every
//! registration's metadata hash in `{namespace}:registrations`, so the sweep
//! looks only at those instead of scanning the keyspace (one SCAN per queue
//! every pass read every task key of the namespace 18 times over: 18 million
//! keys every 30 s with a million tasks queued).

use std::time::Duration;

use chrono::Utc;
use redis::aio::ConnectionManager;
use redis::AsyncCommands as _;

use crate::queue::QueueKeys;

/// A process silent for this long is forgotten.
pub const FORGET_PROCESS_AFTER: Duration = Duration::from_secs(3600);

/// The sorted set of worker processes: member = process name, score = last
/// heartbeat (Unix seconds).
pub fn processes_key(namespace: &str) -> String {
    format!("{namespace}:processes")
}

/// The set of every registration's metadata hash key, live or dead, until
/// the sweep deletes it.
pub fn registrations_key(namespace: &str) -> String {
    format!("{namespace}:registrations")
}

/// The metadata hash apalis-redis writes for registration `worker` of
/// `keys`'s queue (`Config::worker_metadata_key`, which wants a
/// `WorkerContext` we do not have outside the worker).
pub fn metadata_key(keys: &QueueKeys, worker: &str) -> String {
    format!("{}:workers:metadata:{worker}", keys.name)
}

/// Refresh `process`'s heartbeat and each of its registrations, if still
/// registered (never registers one again: a registration apalis or a peer
/// has removed stays removed).
///
/// # Errors
/// Redis failed.
pub async fn heartbeat(
    conn: &mut ConnectionManager,
    namespace: &str,
    process: &str,
    registrations: &[(QueueKeys, String)],
) -> redis::RedisResult<()> {
    let now = Utc::now().timestamp();
    let mut pipe = redis::pipe();
    pipe.cmd("ZADD")
        .arg(processes_key(namespace))
        .arg(now)
        .arg(process)
        .ignore();
    for (keys, name) in registrations {
        pipe.cmd("ZADD")
            .arg(keys.config.workers_set())
            .arg("XX")
            .arg(now)
            .arg(name)
            .ignore();
    }
    if !registrations.is_empty() {
        pipe.cmd("SADD").arg(registrations_key(namespace));
        for (keys, name) in registrations {
            pipe.arg(metadata_key(keys, name));
        }
        pipe.ignore();
    }
    pipe.query_async(conn).await
}

/// Remove `process` from the process set (a graceful stop).
///
/// # Errors
/// Redis failed.
pub async fn forget(
    conn: &mut ConnectionManager,
    namespace: &str,
    process: &str,
) -> redis::RedisResult<()> {
    conn.zrem(processes_key(namespace), process).await
}

/// Processes whose heartbeat is younger than `liveness`.
///
/// # Errors
/// Redis failed.
pub async fn live_processes(
    conn: &mut ConnectionManager,
    namespace: &str,
    liveness: Duration,
) -> redis::RedisResult<Vec<String>> {
    let since = Utc::now().timestamp() - liveness.as_secs().max(1) as i64;
    conn.zrangebyscore(processes_key(namespace), since, "+inf")
        .await
}

/// Delete what dead workers left: metadata hashes of registrations that are
/// no longer registered (apalis's reaper removed them), and processes silent
/// for longer than [`FORGET_PROCESS_AFTER`]. Looks at the registrations the
/// heartbeats listed; with `scan_keyspace` it also scans for metadata hashes
/// written before they were listed (once per process, at start-up). Returns
/// the keys and members removed.
///
/// # Errors
/// Redis failed.
pub async fn sweep_dead(
    conn: &mut ConnectionManager,
    namespace: &str,
    queues: &[QueueKeys],
    scan_keyspace: bool,
) -> redis::RedisResult<u64> {
    let listed = registrations_key(namespace);
    let mut metadata: Vec<String> = conn.smembers(&listed).await?;
    if scan_keyspace {
        let mut iter: redis::AsyncIter<'_, String> = conn
            .scan_match(format!("{namespace}:*:workers:metadata:*"))
            .await?;
        let mut found = Vec::new();
        while let Some(key) = iter.next_item().await {
            found.push(key?);
        }
        drop(iter);
        metadata.extend(found);
        metadata.sort_unstable();
        metadata.dedup();
    }
    // Each key's registration, in the workers set of its own queue.
    let owned: Vec<(&String, &QueueKeys, &str)> = metadata
        .iter()
        .filter_map(|key| {
            let (queue, worker) = key.split_once(":workers:metadata:")?;
            let keys = queues.iter().find(|k| k.name == queue)?;
            Some((key, keys, worker))
        })
        .collect();
    let mut removed = 0;
    if !owned.is_empty() {
        let mut pipe = redis::pipe();
        for (_, keys, worker) in &owned {
            pipe.cmd("ZSCORE")
                .arg(keys.config.workers_set())
                .arg(*worker);
        }
        let scores: Vec<Option<f64>> = pipe.query_async(conn).await?;
        let dead: Vec<&String> = owned
            .iter()
            .zip(scores)
            .filter(|(_, score)| score.is_none())
            .map(|((key, _, _), _)| *key)
            .collect();
        if !dead.is_empty() {
            removed += conn.del::<_, u64>(&dead).await?;
            conn.srem::<_, _, ()>(&listed, &dead).await?;
        }
    }
    let forget_before = Utc::now().timestamp() - FORGET_PROCESS_AFTER.as_secs() as i64;
    removed += conn
        .zrembyscore::<_, _, _, u64>(processes_key(namespace), 0, forget_before)
        .await?;
    Ok(removed)
}
