//! The Redis side of the queue, on apalis-redis 1.0's key layout.
//!
//! apalis-redis delivers tasks (fetch, in-flight sets, heartbeats, orphan
//! recovery); this module owns everything it gets wrong or leaves out:
//! pushing (ours never touches apalis's `scheduled` set, see `lua/push.lua`),
//! delayed tasks and their chunked promotion, retry backoff, depth figures
//! read straight from the keys, deleting finished tasks (`janitor`) and
//! handing a stopping worker's tasks back (`release`), and stores taking turns
//! on the bulk lane (`fair`). It issues no SQL.

pub mod breaker;
pub mod depth;
pub mod enqueue;
pub mod fair;
pub mod janitor;
pub mod keys;
pub mod liveness;
pub mod pause;
pub mod promoter;
pub mod quarantine;
pub mod ratelimit;
pub mod reconcile;
pub mod release;
pub mod starts;

pub use enqueue::{Enqueuer, NewJob};
pub use keys::QueueKeys;

/// Connect to Redis with a connection manager (reconnects on its own).
///
/// # Errors
/// The URL is invalid or Redis does not answer.
pub async fn connect(redis_url: &str) -> anyhow::Result<redis::aio::ConnectionManager> {
    use anyhow::Context as _;
    let client = redis::Client::open(redis_url)
        .with_context(|| format!("invalid Redis URL {}", crate::redact::redact_url(redis_url)))?;
    client.get_connection_manager().await.with_context(|| {
        format!(
            "cannot connect to Redis at {}",
            crate::redact::redact_url(redis_url)
        )
    })
}
