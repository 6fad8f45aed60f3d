//! Stores take turns on the bulk lane, so a 50,000-order backfill of one
//! store does not hold back every other store's scheduled and backfill jobs.
//!
//! apalis fetches from the head of one active list per queue, first in first
//! out. On the bulk lane that list is kept short (at most [`FAIR_WINDOW`]
//! tasks): a task due now goes straight to it only while no store waits its
//! turn and there is room (`lua/push.lua`); otherwise it joins its store's
//! waiting list (`{queue}:fair:store:{store}`) and the store joins the ring
//! of stores with work waiting (`{queue}:fair:ring`). The promoter, which
//! every worker process runs every few tens of milliseconds, tops the active
//! list up to the window with one task per store in turn, rotating the ring
//! so the next call starts with the next store (`lua/promote.lua`); due
//! retries and deferrals on the bulk lane are admitted the same way. All of
//! it happens inside Lua scripts, so any number of processes can push and
//! feed at once.
//!
//! A task waiting its turn keeps its payload in the data hash, so the
//! reconciler counts it as held; it is counted as pending by `queues`. The
//! live lane is untouched: it is the latency path and takes no turns.

use std::sync::LazyLock;

use redis::aio::ConnectionManager;

use crate::queue::QueueKeys;

/// Tasks the bulk lane's active list may hold before new ones wait their
/// store's turn. Two default fetch batches: enough that fetchers find work
/// between two feeds (every 25 ms, so up to 16,000 tasks/s), small enough
/// that a store arriving behind a backfill waits for a few hundred tasks,
/// not for the backfill.
pub const FAIR_WINDOW: usize = 2 * crate::queue::keys::DEFAULT_FETCH_BATCH;

/// How many stores' oldest waiting tasks [`waiting`] returns.
const MAX_HEADS: usize = 100;

static WAITING_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/fair_waiting.lua")));

/// What waits its store's turn on one queue.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// Tasks waiting their store's turn.
    pub tasks: u64,
    /// Stores with tasks waiting.
    pub stores: u64,
    /// The first waiting task id of each of the first stores in turn order
    /// (the oldest of each store's list).
    pub heads: Vec<String>,
}

/// What waits its store's turn on `keys`'s queue (nothing on the live lane).
///
/// # Errors
/// Redis failed.
pub async fn waiting(
    conn: &mut ConnectionManager,
    keys: &QueueKeys,
) -> redis::RedisResult<Waiting> {
    if keys.fair_window() == 0 {
        return Ok(Waiting::default());
    }
    let (tasks, stores, heads): (u64, u64, Vec<String>) = WAITING_SCRIPT
        .key(keys.fair_ring())
        .key(keys.fair_prefix())
        .arg(MAX_HEADS)
        .invoke_async(conn)
        .await?;
    Ok(Waiting {
        tasks,
        stores,
        heads,
    })
}
