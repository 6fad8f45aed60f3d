//! Queue depth read straight from Redis keys (apalis-redis 1.0's stats
//! scripts are broken: ZCARD on sets, a running count of a key that does
//! not exist).

use redis::aio::ConnectionManager;
use redis::AsyncCommands as _;

use crate::domain::{JobKind, Lane};
use crate::queue::QueueKeys;

/// How many tasks of one queue are where.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Depth {
    /// Ready to run: the active list, and on the bulk lane the tasks waiting
    /// their store's turn.
    pub pending: u64,
    /// Waiting for their due time: retries and deferrals.
    pub scheduled: u64,
    /// Fetched by a worker and not yet acknowledged.
    pub in_flight: u64,
    /// Registered workers (live or not yet reaped).
    pub workers: u64,
}

impl Depth {
    /// Nothing left to do or finish.
    pub fn is_idle(&self) -> bool {
        self.pending == 0 && self.scheduled == 0 && self.in_flight == 0
    }
}

/// Depth of `kind`'s queues (both lanes) under `namespace`.
///
/// # Errors
/// Redis failed.
pub async fn depth(
    conn: &mut ConnectionManager,
    namespace: &str,
    kind: JobKind,
) -> redis::RedisResult<Depth> {
    let mut total = Depth::default();
    for lane in Lane::ALL {
        let d = lane_depth(conn, namespace, kind, lane).await?;
        total.pending += d.pending;
        total.scheduled += d.scheduled;
        total.in_flight += d.in_flight;
        total.workers += d.workers;
    }
    Ok(total)
}

/// Depth of one lane of `kind`'s queue.
///
/// # Errors
/// Redis failed.
pub async fn lane_depth(
    conn: &mut ConnectionManager,
    namespace: &str,
    kind: JobKind,
    lane: Lane,
) -> redis::RedisResult<Depth> {
    let keys = QueueKeys::new(namespace, kind, lane, 1);
    let workers: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys.config.workers_set())
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    let mut pipe = redis::pipe();
    pipe.cmd("LLEN").arg(keys.config.active_jobs_list());
    // apalis's own scheduled set stays empty with our push script; counted in
    // case a task ever lands there.
    pipe.cmd("ZCARD").arg(keys.delayed());
    pipe.cmd("ZCARD").arg(keys.config.scheduled_jobs_set());
    for worker in &workers {
        pipe.cmd("SCARD")
            .arg(format!("{}:{worker}", keys.inflight_prefix()));
    }
    let counts: Vec<u64> = pipe.query_async(conn).await?;
    let waiting_turn = crate::queue::fair::waiting(conn, &keys).await?.tasks;
    Ok(Depth {
        pending: counts[0] + waiting_turn,
        scheduled: counts[1] + counts[2],
        in_flight: counts[3..].iter().sum(),
        workers: workers.len() as u64,
    })
}

/// Depth of every kind's queue.
///
/// # Errors
/// Redis failed.
pub async fn all_depths(
    conn: &mut ConnectionManager,
    namespace: &str,
) -> redis::RedisResult<Vec<(JobKind, Depth)>> {
    let mut out = Vec::new();
    for kind in JobKind::ALL {
        out.push((kind, depth(conn, namespace, kind).await?));
    }
    Ok(out)
}

/// Delete every Redis key of `namespace` (the demo's and tests' clean-up).
///
/// # Errors
/// Redis failed.
pub async fn delete_namespace(redis_url: &str, namespace: &str) -> anyhow::Result<u64> {
    let mut conn = crate::queue::connect(redis_url).await?;
    let mut deleted = 0;
    for pattern in [format!("{namespace}:*"), format!("tasks:{namespace}:*")] {
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<'_, String> = conn.scan_match(&pattern).await?;
            let mut keys = Vec::new();
            while let Some(key) = iter.next_item().await {
                keys.push(key?);
            }
            keys
        };
        for chunk in keys.chunks(500) {
            deleted += redis::cmd("DEL")
                .arg(chunk)
                .query_async::<u64>(&mut conn)
                .await?;
        }
    }
    Ok(deleted)
}
