//! The `ordersync` command line: flags (each also an environment variable),
//! and one file per command group (`jobs`, `orders`, `queues`, `stores`,
//! `enqueue` and `backfill`, `api` and `scheduler`).

mod enqueue;
mod jobs;
mod orders;
mod pause;
mod queues;
mod serve;
mod sms;
mod stores;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::domain::JobKind;
use crate::startup::Settings;

pub use enqueue::BackfillCommand;
pub use jobs::{FailedFilter, JobsCommand, Selection};
pub use orders::OrdersCommand;
pub use sms::SmsCommand;

/// Settings every command shares.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// The config file (stores, accounts, retry policies).
    #[arg(
        long,
        global = true,
        env = "ORDERSYNC_CONFIG",
        default_value = "ordersync.toml"
    )]
    pub config: PathBuf,
    /// Postgres URL.
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        // The URL may carry a password: --help must not print the value.
        hide_env_values = true,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// Redis URL.
    #[arg(
        long,
        global = true,
        env = "REDIS_URL",
        // The URL may carry a password: --help must not print the value.
        hide_env_values = true,
        default_value = "redis://127.0.0.1:6379"
    )]
    pub redis_url: String,
    /// Prefix of every Redis key: separate deployments (or tests) share a Redis safely.
    #[arg(
        long,
        global = true,
        env = "ORDERSYNC_NAMESPACE",
        default_value = "ordersync"
    )]
    pub namespace: String,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true, env = "ORDERSYNC_LOG_JSON")]
    pub log_json: bool,
}

impl GlobalArgs {
    /// The service locations.
    pub fn settings(&self) -> Settings {
        Settings {
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
            namespace: self.namespace.clone(),
        }
    }

    /// Load the config file.
    ///
    /// # Errors
    /// See [`Config::load`].
    pub fn load_config(&self) -> anyhow::Result<Config> {
        Config::load(&self.config)
    }
}

/// ordersync: durable sync jobs between shops, couriers, the ERP and SMS.
#[derive(Debug, Parser)]
#[command(name = "ordersync", version, about)]
pub struct Cli {
    /// Shared settings.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply database migrations.
    Migrate,
    /// Print the store -> account mapping; `check` calls every account.
    Stores {
        /// `check` to call each account.
        #[arg(value_parser = ["check"])]
        action: Option<String>,
    },
    /// Enqueue one job (recorded with source `cli`).
    Enqueue {
        /// Job kind.
        kind: JobKind,
        /// Store code.
        #[arg(long)]
        store: String,
        /// Order reference, for per-order kinds.
        #[arg(long)]
        order: Option<String>,
    },
    /// Per queue: pending, scheduled, in flight, failed, oldest pending age,
    /// finished in the last minute, live workers.
    Queues {
        /// JSON output.
        #[arg(long)]
        json: bool,
        /// Redraw every `--interval` until interrupted.
        #[arg(long)]
        watch: bool,
        /// Redraw period with `--watch` (e.g. 2s, 500ms).
        #[arg(long, default_value = "2s")]
        interval: humantime::Duration,
    },
    /// Jobs in the ledger.
    Jobs {
        /// What to show.
        #[command(subcommand)]
        action: JobsCommand,
    },
    /// One order's whole story and diagnosis; orders stuck in one status.
    Orders {
        /// What to show.
        #[command(subcommand)]
        action: OrdersCommand,
    },
    /// Texts whose fate is unknown; resending them on purpose.
    Sms {
        /// What to do.
        #[command(subcommand)]
        action: SmsCommand,
    },
    /// Per-store figures: orders, tracking, statuses, invoices, SMS, failures.
    Summary {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Enqueue historical work in bulk on the low-priority lane and wait for it.
    Backfill {
        /// What to backfill.
        #[command(subcommand)]
        what: BackfillCommand,
    },
    /// Pause a store, a provider account or a job kind: its jobs wait,
    /// parked without using attempts, until `resume`. `--list` shows pauses.
    Pause {
        /// What to pause.
        #[command(flatten)]
        what: pause::ScopeArgs,
        /// Why (shown by `--list`, the dashboard and the parked runs).
        #[arg(long)]
        reason: Option<String>,
        /// List the pauses instead.
        #[arg(long, conflicts_with_all = ["store", "account", "kind", "reason"])]
        list: bool,
    },
    /// Resume what `pause` paused: its parked jobs run again.
    Resume {
        /// What to resume.
        #[command(flatten)]
        what: pause::ScopeArgs,
    },
    /// Run the periodic scheduler until SIGTERM (safe with several replicas).
    Scheduler,
    /// Serve the HTTP API (health, webhooks, admin API, dashboard) until SIGTERM.
    Api {
        /// Address to listen on.
        #[arg(long, env = "ORDERSYNC_LISTEN", default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// The dashboard's login sessions.
        #[command(flatten)]
        dashboard: crate::http::dashboard::DashboardArgs,
        /// Timeouts and caps of the HTTP side.
        #[command(flatten)]
        limits: crate::http::limits::LimitArgs,
    },
}

/// Run a parsed command line.
///
/// # Errors
/// Whatever the command failed on, with context.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Migrate => {
            let db = crate::ledger::connect(&g.database_url, 2).await?;
            crate::ledger::migrate(&db).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Stores { action } => stores::stores(g, action.is_some()).await,
        Command::Enqueue { kind, store, order } => enqueue::enqueue(g, kind, store, order).await,
        Command::Queues {
            json,
            watch,
            interval,
        } => queues::queues(g, json, watch.then_some(interval.into())).await,
        Command::Jobs { action } => jobs::jobs_command(g, action).await,
        Command::Orders { action } => orders::run(g, action).await,
        Command::Sms { action } => sms::run(g, action).await,
        Command::Summary { json } => stores::summary(g, json).await,
        Command::Api {
            listen,
            dashboard,
            limits,
        } => serve::api(g, listen, dashboard, limits).await,
        Command::Backfill { what } => enqueue::backfill(g, what).await,
        Command::Scheduler => serve::scheduler(g).await,
        Command::Pause { what, reason, list } => pause::pause(g, what, reason, list).await,
        Command::Resume { what } => pause::resume(g, what).await,
    }
}

/// Who an operator is, for the ledger: `$USER@host` or `cli`.
pub(crate) fn operator() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    if host.is_empty() {
        user
    } else {
        format!("{user}@{host}")
    }
}
