//! Integration tests against the real Redis and Postgres and the simulated
//! providers. One binary; each test isolates itself (database, namespace,
//! simulator), so they run in parallel.

#![allow(unreachable_pub)]
// helpers are `pub` for the test modules; the binary exports nothing
// The whole binary is test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod admin_api;
mod backfill;
mod browser;
mod cli;
mod dashboard;
mod datamart;
mod failures;
mod fairness;
mod faults;
mod helpers;
mod hostile;
mod hostile_props;
mod janitor;
mod ledger;
mod lifecycle;
mod limits;
mod ops;
mod orders;
mod orders_view;
mod pauses;
mod pipeline;
mod queue;
mod recovery;
mod scheduler;
mod shutdown;
mod texts;
mod twilio;
mod webhooks;
mod yalidine;
