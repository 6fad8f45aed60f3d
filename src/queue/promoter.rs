//! Moves due delayed tasks (retries, deferrals) to their active list in
//! chunks. Workers run it every few tens of milliseconds for the queues they
//! consume, so a burst of 10,000 tasks due at one instant is promoted a
//! chunk at a time and never reaches apalis-redis's unbounded promotion.
//! On the bulk lane the same call feeds stores' waiting tasks in turn
//! (`fair.rs`).

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::queue::QueueKeys;

static PROMOTE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/promote.lua")));

/// Ids moved per script call: keeps each call short (Redis is single-threaded).
pub const PROMOTE_CHUNK: usize = 500;
/// How often a worker promotes due tasks: the extra latency a retry can see.
pub const PROMOTE_INTERVAL: Duration = Duration::from_millis(25);

/// Promote every task of `keys`'s queue due by now, and on the bulk lane top
/// its active list up with tasks waiting their store's turn. Returns how
/// many left the delayed set.
///
/// # Errors
/// Redis failed.
pub async fn promote_due(
    conn: &mut ConnectionManager,
    keys: &QueueKeys,
) -> redis::RedisResult<u64> {
    let mut total = 0;
    loop {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let (moved, _fed): (u64, u64) = PROMOTE_SCRIPT
            .key(keys.delayed())
            .key(keys.config.active_jobs_list())
            .key(keys.config.signal_list())
            .key(keys.fair_ring())
            .key(keys.fair_prefix())
            .key(keys.config.job_data_hash())
            .arg(now_ms)
            .arg(PROMOTE_CHUNK)
            .arg("1")
            .arg(keys.fair_window())
            .invoke_async(conn)
            .await?;
        total += moved;
        if moved < PROMOTE_CHUNK as u64 {
            return Ok(total);
        }
    }
}
