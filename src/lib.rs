//! ordersync: durable job-queue workers that sync shop orders with couriers,
//! ERPs and SMS gateways.
//!
//! A tour, in the order a job travels:
//! - Producers: [`scheduler`] (cron ticks per store), [`http`] (webhooks,
//!   and the admin API's replays and syncs), [`backfill`] and the [`cli`].
//! - [`queue`]: enqueue (ledger row, then Redis), delayed tasks, promotion,
//!   depth, the janitor.
//! - [`worker`]: the consumer process on apalis; `execute` runs a delivery,
//!   `settle` decides retry, deferral or failure after every attempt.
//! - [`jobs`]: the five job kinds, one file each (`perform`), through
//!   [`accounts`] (the store -> account mapping) to [`providers`] (the HTTP
//!   clients of Maystro, Yalidine, WooCommerce, ERPNext, mNotify and their error
//!   classification).
//! - [`intake`]: shop orders coming in (imports, webhooks) sanitized,
//!   checked and stored one by one, latest wins, refusals recorded.
//! - [`ledger`]: the job ledger, orders and claims in Postgres: every
//!   outcome lands here.
//! - [`failures`]: dead letters grouped, replayed, discarded; [`trace`]: one
//!   order's whole story and why it is stuck; [`ops`]: queue figures, store
//!   freshness and metrics.
//!
//! Underneath all of them: [`domain`], the shared vocabulary (job kinds,
//! envelopes, retry policies, statuses, payment rules), which imports
//! nothing of ours; [`config`], [`redact`] and [`input`]. Wiring: [`startup`] (the
//! composition root) and [`telemetry`].

pub mod accounts;
pub mod backfill;
pub mod cli;
pub mod config;
pub mod domain;
pub mod failures;
pub mod http;
pub mod input;
pub mod intake;
pub mod jobs;
pub mod ledger;
pub mod ops;
pub mod providers;
pub mod queue;
pub mod redact;
pub mod scheduler;
pub mod startup;
pub mod telemetry;
pub mod texts;
pub mod trace;
pub mod worker;
