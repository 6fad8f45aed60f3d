//! domain: the vocabulary every other module shares, and the business rules
//! that are pure data. It imports nothing of ours, so every layer points
//! down to it and none of them has to reach up to find a job kind.
//!
//! - [`job`]: job kinds, who enqueued a job ([`Source`]), priority lanes, and
//!   the envelope a task carries through Redis.
//! - [`retry`]: retry and deferral policies, with their defaults per kind.
//! - [`outcome`]: how one delivery ended, as the ledger spells it.
//! - [`failure`]: why an attempt failed ([`FailureClass`]), the provider
//!   failure classes and the providers themselves.
//! - [`status`]: normalized order statuses and the couriers' code tables.
//! - [`payment`]: which shop statuses are payable, and the ERP's spelling of
//!   each payment method.
//! - [`schedule`]: the scheduler's default cron expressions, and which
//!   kinds an open failure holds back.
//! - [`limits`]: per-account request limits and their validation.

pub mod failure;
pub mod job;
pub mod limits;
pub mod outcome;
pub mod payment;
pub mod retry;
pub mod schedule;
pub mod status;

pub use failure::{ErrorClass, FailureClass, Provider};
pub use job::{JobEnvelope, JobKind, Lane, Source};
pub use outcome::RunOutcome;
pub use retry::{Policies, RetryPolicy};
pub use status::NormalizedStatus;
