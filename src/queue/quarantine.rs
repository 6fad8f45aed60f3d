//! Tasks whose payload is not JSON at all.
//!
//! apalis-redis decodes every fetched payload as JSON before any handler
//! sees it; one that does not decode ends the fetch loop that received it.
//! The worker then restarts that loop, and a peer's reaper would put the
//! task back on the queue to end the next one, for ever. So when a fetch
//! loop ends in error, its supervisor looks at what it had fetched and
//! takes every payload that is not JSON out of the queue (see
//! `lua/quarantine.lua`); the caller keeps the bytes in the ledger.

use std::sync::LazyLock;

use redis::aio::ConnectionManager;

use crate::queue::release::inflight_set;
use crate::queue::QueueKeys;

static QUARANTINE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/quarantine.lua")));

/// A task taken out of its queue: its id, its raw payload, and why it could
/// not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undecodable {
    /// The task id (`{job_id}:{run}` when we pushed it).
    pub task_id: String,
    /// The payload, byte for byte.
    pub raw: Vec<u8>,
    /// The decoder's complaint.
    pub error: String,
}

/// Take the undecodable tasks fetched by apalis worker `worker` of `keys`'s
/// queue out of the queue, and return them. Decodable tasks are left as
/// they are (they are redelivered once the worker's registration lapses).
///
/// # Errors
/// Redis failed; nothing was taken out.
pub async fn take_undecodable(
    conn: &mut ConnectionManager,
    keys: &QueueKeys,
    worker: &str,
) -> redis::RedisResult<Vec<Undecodable>> {
    let fetched: Vec<String> = redis::cmd("SMEMBERS")
        .arg(inflight_set(keys, worker))
        .query_async(conn)
        .await?;
    if fetched.is_empty() {
        return Ok(Vec::new());
    }
    let payloads: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
        .arg(keys.config.job_data_hash())
        .arg(&fetched)
        .query_async(conn)
        .await?;
    let mut complaints = std::collections::HashMap::new();
    for (task_id, payload) in fetched.iter().zip(payloads) {
        if let Some(bytes) = payload {
            if let Err(error) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                complaints.insert(task_id.clone(), error.to_string());
            }
        }
    }
    if complaints.is_empty() {
        return Ok(Vec::new());
    }
    let mut invocation = QUARANTINE_SCRIPT.prepare_invoke();
    invocation
        .key(inflight_set(keys, worker))
        .key(keys.config.active_jobs_list())
        .key(keys.config.job_data_hash())
        .key(keys.config.job_meta_hash());
    for task_id in complaints.keys() {
        invocation.arg(task_id);
    }
    let removed: Vec<Vec<u8>> = invocation.invoke_async(conn).await?;
    Ok(removed
        .chunks_exact(2)
        .map(|pair| {
            let task_id = String::from_utf8_lossy(&pair[0]).into_owned();
            Undecodable {
                error: complaints.remove(&task_id).unwrap_or_default(),
                task_id,
                raw: pair[1].clone(),
            }
        })
        .collect())
}
