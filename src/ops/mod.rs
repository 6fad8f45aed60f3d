//! What operators look at: queue figures (Redis and the ledger together),
//! store freshness, and the Prometheus metrics built from both. Read-only:
//! nothing here changes a job.

pub mod accounts;
pub mod metrics;
pub mod orders_view;
pub mod pauses;
pub mod queues;
pub mod stores;
pub mod summary;
