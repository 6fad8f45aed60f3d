//! ordersync: durable job-queue workers that sync shop orders with couriers,
//! ERPs and SMS gateways.
//!
//! A tour, in the order a job travels:
//! - [`config`]: the config file; stores mapped to accounts; secrets from env.
//! - [`accounts`]: one provider client per account; store -> account lookup.
//! - [`queue`]: enqueue (ledger row, then Redis), delayed tasks, backoff, depth.
//! - [`worker`]: the consumer process on apalis; `settle` decides retry,
//!   deferral or failure after every attempt.
//! - [`jobs`]: the five job kinds, one file each (`perform`).
//! - [`providers`]: HTTP clients of Maystro, WooCommerce, ERPNext, mNotify;
//!   error classification.
//! - [`ledger`]: the only module with SQL: job ledger, orders, claims;
//!   `ledger::trace` reads one order's whole story back.
//! - [`diagnosis`]: why is this order stuck? Findings over a trace.
//! - [`simulator`]: the external services on loopback, for tests/demo/bench.
//! - [`startup`], [`cli`], [`demo`], [`bench`]: wiring and the commands;
//!   [`order_report`]: `ordersync orders trace|stuck`.

pub mod accounts;
pub mod backfill;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod diagnosis;
pub mod failures;
pub mod http;
pub mod jobs;
pub mod ledger;
pub mod ops;
pub mod order_report;
pub mod providers;
pub mod queue;
pub mod scheduler;
pub mod simulator;
pub mod startup;
pub mod telemetry;
pub mod worker;
