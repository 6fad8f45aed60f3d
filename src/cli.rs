//! The `ordersync` command line: flags (each also an environment variable)
//! and one function per command.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::jobs::JobKind;
use crate::queue::{NewJob, Source};
use crate::startup::Settings;

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
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,
    /// Redis URL.
    #[arg(
        long,
        global = true,
        env = "REDIS_URL",
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
    /// Queue depth per kind.
    Queues {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Jobs in the ledger.
    Jobs {
        /// What to show.
        #[command(subcommand)]
        action: JobsCommand,
    },
    /// Per-store figures: orders, tracking, statuses, invoices, SMS, failures.
    Summary {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Run the simulated courier, shop, ERP and SMS services.
    Simulate(crate::demo::SimulateArgs),
    /// The end-to-end demo (`just demo`).
    Demo(crate::demo::DemoArgs),
    /// Benchmarks (`just bench`).
    Bench(crate::bench::BenchArgs),
}

/// `ordersync jobs ...`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The whole history of one job.
    Show {
        /// Job id.
        id: uuid::Uuid,
        /// JSON output.
        #[arg(long)]
        json: bool,
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
        Command::Stores { action } => stores(g, action.is_some()).await,
        Command::Enqueue { kind, store, order } => enqueue(g, kind, store, order).await,
        Command::Queues { json } => queues(g, json).await,
        Command::Jobs {
            action: JobsCommand::Show { id, json },
        } => show_job(g, id, json).await,
        Command::Summary { json } => {
            let db = crate::ledger::connect(&g.database_url, 2).await?;
            let rows = crate::ledger::summary::per_store(&db).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", crate::demo::summary_table(&rows));
            }
            Ok(())
        }
        Command::Simulate(args) => crate::demo::simulate(args).await,
        Command::Demo(args) => crate::demo::run(g, args).await,
        Command::Bench(args) => crate::bench::run(g, args).await,
    }
}

async fn stores(g: &GlobalArgs, check: bool) -> anyhow::Result<()> {
    let config = g.load_config()?;
    for line in config.mapping_lines() {
        println!("{line}");
    }
    if !check {
        return Ok(());
    }
    let accounts = crate::accounts::Accounts::new(&config);
    let mut failures = 0;
    let mut report =
        |what: String, result: Result<String, crate::providers::ProviderError>| match result {
            Ok(ok) => println!("ok    {what}: {ok}"),
            Err(e) => {
                failures += 1;
                println!("FAIL  {what}: {e}");
            }
        };
    let mut couriers: Vec<_> = accounts.couriers().collect();
    couriers.sort_by_key(|(name, _)| name.as_str());
    for (name, client) in couriers {
        report(
            format!("courier account '{name}'"),
            client.check().await.map(|n| format!("{n} orders visible")),
        );
    }
    let mut shops: Vec<_> = accounts.shops().collect();
    shops.sort_by_key(|(code, _)| code.as_str());
    for (code, client) in shops {
        report(
            format!("shop of {code}"),
            client.check().await.map(|n| format!("{n} orders")),
        );
    }
    let erp = accounts.erp().map_err(|e| anyhow::anyhow!("{e}"))?;
    report(
        format!("ERP '{}'", config.erp.name),
        erp.check().await.map(|_| "reachable".into()),
    );
    let sms = accounts.sms().map_err(|e| anyhow::anyhow!("{e}"))?;
    report(
        format!("SMS '{}'", config.sms.name),
        sms.check().await.map(|_| "reachable".into()),
    );
    if failures > 0 {
        anyhow::bail!("{failures} account check(s) failed");
    }
    Ok(())
}

async fn enqueue(
    g: &GlobalArgs,
    kind: JobKind,
    store: String,
    order: Option<String>,
) -> anyhow::Result<()> {
    let config = g.load_config()?;
    if config.store(&store).is_none() {
        anyhow::bail!(
            "store {store} is not an active store in {}",
            g.config.display()
        );
    }
    let job = match (kind.is_per_order(), order) {
        (true, Some(order)) => NewJob::for_order(kind, &store, &order),
        (true, None) => anyhow::bail!("{kind} is a per-order job: pass --order REF"),
        (false, Some(_)) => anyhow::bail!("{kind} is a per-store job: --order does not apply"),
        (false, None) => NewJob::for_store(kind, &store),
    };
    if kind == JobKind::SendSms {
        anyhow::bail!("send_sms jobs are enqueued by status changes, not by hand");
    }
    let deps = crate::startup::build(&g.settings(), &config, 2).await?;
    let (envelopes, _) = deps.enqueuer.enqueue(Source::Cli, vec![job]).await?;
    println!("enqueued {kind} job {}", envelopes[0].job_id);
    Ok(())
}

async fn queues(g: &GlobalArgs, json: bool) -> anyhow::Result<()> {
    let mut conn = crate::queue::connect(&g.redis_url).await?;
    let depths = crate::queue::depth::all_depths(&mut conn, &g.namespace)
        .await
        .context("reading queue depth")?;
    if json {
        let map: serde_json::Map<String, serde_json::Value> = depths
            .iter()
            .map(|(k, d)| {
                (
                    k.as_str().to_owned(),
                    serde_json::to_value(d).unwrap_or_default(),
                )
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
    } else {
        println!(
            "{:<16} {:>9} {:>10} {:>10} {:>8}",
            "queue", "pending", "scheduled", "in_flight", "workers"
        );
        for (kind, d) in depths {
            println!(
                "{:<16} {:>9} {:>10} {:>10} {:>8}",
                kind.as_str(),
                d.pending,
                d.scheduled,
                d.in_flight,
                d.workers
            );
        }
    }
    Ok(())
}

async fn show_job(g: &GlobalArgs, id: uuid::Uuid, json: bool) -> anyhow::Result<()> {
    let db = crate::ledger::connect(&g.database_url, 2).await?;
    let job = crate::ledger::jobs::get(&db, id)
        .await?
        .with_context(|| format!("no job {id} in the ledger"))?;
    let runs = crate::ledger::runs::for_job(&db, id).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "job": job, "runs": runs }))?
        );
        return Ok(());
    }
    println!(
        "job {} {} store={} order={} source={} enqueued={} state={}",
        job.job_id,
        job.kind,
        job.store.as_deref().unwrap_or("-"),
        job.order_ref.as_deref().unwrap_or("-"),
        job.source,
        job.enqueued_at,
        job.state
    );
    for r in runs {
        println!(
            "  run {} attempt {}/{} on {} {} -> {} {}{}{}",
            r.run,
            r.attempt,
            job.max_attempts,
            r.worker,
            r.started_at.format("%H:%M:%S%.3f"),
            r.outcome,
            r.error_class.map(|c| format!("[{c}] ")).unwrap_or_default(),
            r.error_message.unwrap_or_default(),
            r.next_run_at
                .map(|t| format!(" (next at {})", t.format("%H:%M:%S%.3f")))
                .unwrap_or_default(),
        );
    }
    Ok(())
}
