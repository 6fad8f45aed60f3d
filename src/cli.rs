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
        action: crate::order_report::OrdersCommand,
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
    },
    /// Run the simulated courier, shop, ERP and SMS services.
    Simulate(crate::demo::SimulateArgs),
    /// The end-to-end demo (`just demo`).
    Demo(crate::demo::DemoArgs),
    /// Benchmarks (`just bench`).
    Bench(crate::bench::BenchArgs),
}

/// `ordersync backfill ...`
#[derive(Debug, Subcommand)]
pub enum BackfillCommand {
    /// ERP invoices for historical completed orders (skipping those the ERP has).
    Invoices {
        /// Store code.
        #[arg(long)]
        store: String,
        /// Orders created on or after this date (YYYY-MM-DD).
        #[arg(long)]
        since: String,
        /// Orders created before this date (YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
    },
    /// A full tracking sync and a status poll of every tracked order.
    Tracking {
        /// Store code.
        #[arg(long)]
        store: String,
    },
}

/// Filters shared by the failed-job commands.
#[derive(Debug, Clone, Default, Args)]
pub struct FailedFilter {
    /// Only this job kind.
    #[arg(long)]
    pub kind: Option<JobKind>,
    /// Only this store.
    #[arg(long)]
    pub store: Option<String>,
    /// Failed within this long (e.g. 2h, 3d) or since this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Message, error class or order reference contains this.
    #[arg(long)]
    pub grep: Option<String>,
}

impl FailedFilter {
    fn to_filter(&self) -> anyhow::Result<crate::ledger::dead_letters::Filter> {
        let since = match &self.since {
            None => None,
            Some(s) => Some(match humantime::parse_duration(s) {
                Ok(d) => chrono::Utc::now() - chrono::Duration::from_std(d)?,
                Err(_) => chrono::DateTime::parse_from_rfc3339(s)
                    .with_context(|| {
                        format!("--since '{s}' is neither a duration (2h, 3d) nor an RFC 3339 time")
                    })?
                    .with_timezone(&chrono::Utc),
            }),
        };
        Ok(crate::ledger::dead_letters::Filter {
            kind: self.kind.map(|k| k.as_str().to_owned()),
            store: self.store.clone(),
            since,
            grep: self.grep.clone(),
            ..Default::default()
        })
    }
}

/// Which failed jobs a replay or discard applies to.
#[derive(Debug, Clone, Args)]
pub struct Selection {
    /// Job ids.
    pub ids: Vec<uuid::Uuid>,
    /// Every open failed job of this fingerprint.
    #[arg(long, conflicts_with = "ids")]
    pub fingerprint: Option<String>,
    /// Every open failed job matching the filters.
    #[arg(long, conflicts_with_all = ["ids", "fingerprint"])]
    pub all: bool,
    /// Filters (with --all or --fingerprint).
    #[command(flatten)]
    pub filter: FailedFilter,
    /// Show what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `ordersync jobs ...`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Failed jobs grouped by fingerprint (cause), newest first.
    Failed {
        /// Filters.
        #[command(flatten)]
        filter: FailedFilter,
        /// List jobs instead of groups.
        #[arg(long)]
        ungrouped: bool,
        /// Include replayed and discarded ones.
        #[arg(long)]
        resolved: bool,
        /// At most this many jobs (with --ungrouped).
        #[arg(long, default_value_t = 200)]
        limit: i64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// The whole history of one job and its replays.
    Show {
        /// Job id.
        id: uuid::Uuid,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Re-enqueue failed jobs with a fresh attempt budget.
    Replay(Selection),
    /// Mark failed jobs resolved without running them.
    Discard(Selection),
    /// Delete failed-job records older than the retention.
    Prune {
        /// Retention (default 90 days).
        #[arg(long, default_value = "90d")]
        older_than: String,
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
        Command::Queues {
            json,
            watch,
            interval,
        } => queues(g, json, watch.then_some(interval.into())).await,
        Command::Jobs { action } => jobs_command(g, action).await,
        Command::Orders { action } => crate::order_report::run(g, action).await,
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
        Command::Api { listen, dashboard } => api(g, listen, dashboard).await,
        Command::Backfill { what } => backfill(g, what).await,
        Command::Scheduler => {
            let config = g.load_config()?;
            let deps = crate::startup::build(&g.settings(), &config, 4).await?;
            let stores = config.stores.iter().map(|s| s.code.clone()).collect();
            let entries = crate::scheduler::entries(&config.schedule)?;
            for e in &entries {
                tracing::info!(kind = %e.kind, schedule = %e.schedule, "scheduled");
            }
            crate::scheduler::run(deps, stores, entries, crate::startup::shutdown_signal()).await
        }
        Command::Simulate(args) => crate::demo::simulate(args).await,
        Command::Demo(args) => crate::demo::run(g, args).await,
        Command::Bench(args) => crate::bench::run(g, args).await,
    }
}

async fn backfill(g: &GlobalArgs, what: BackfillCommand) -> anyhow::Result<()> {
    let config = g.load_config()?;
    let store = match &what {
        BackfillCommand::Invoices { store, .. } | BackfillCommand::Tracking { store } => {
            store.clone()
        }
    };
    if config.store(&store).is_none() {
        anyhow::bail!(
            "store {store} is not an active store in {}",
            g.config.display()
        );
    }
    let deps = crate::startup::build(&g.settings(), &config, 4).await?;
    let ids = match what {
        BackfillCommand::Invoices {
            store,
            since,
            until,
        } => {
            let since = crate::backfill::parse_date("--since", &since)?;
            let until = until
                .map(|u| crate::backfill::parse_date("--until", &u))
                .transpose()?;
            crate::backfill::invoices(&deps, &store, since, until).await?
        }
        BackfillCommand::Tracking { store } => crate::backfill::tracking(&deps, &store).await?,
    };
    println!("enqueued {} job(s) on the bulk lane", ids.len());
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(ids.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "completed [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let outcome = crate::backfill::wait(&deps, &ids, &bar).await?;
    bar.finish_and_clear();
    println!(
        "created {}, skipped {}, failed {}",
        outcome.created, outcome.skipped, outcome.failed
    );
    Ok(())
}

async fn api(
    g: &GlobalArgs,
    listen: std::net::SocketAddr,
    dashboard: crate::http::dashboard::DashboardArgs,
) -> anyhow::Result<()> {
    let config = g.load_config()?;
    let token = config
        .admin_token
        .clone()
        .context("the admin API needs a bearer token: add [admin] token_env = \"VAR\" to the config and set VAR")?;
    let deps = crate::startup::build(&g.settings(), &config, 8).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(%listen, dashboard = %format!("http://{listen}/dashboard/"), "API listening");
    let mut state = crate::http::AppState::new(deps, &config, token);
    state.dashboard = dashboard.settings();
    crate::http::serve(listener, state, crate::startup::shutdown_signal()).await
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

async fn queues(
    g: &GlobalArgs,
    json: bool,
    watch: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let mut conn = crate::queue::connect(&g.redis_url).await?;
    let db = crate::ledger::connect(&g.database_url, 1).await?;
    loop {
        let snapshot = crate::ops::queues::snapshot(
            &mut conn,
            &db,
            &g.namespace,
            crate::http::ops::worker_liveness(),
        )
        .await
        .context("reading queue figures")?;
        let text = if json {
            serde_json::to_string_pretty(&snapshot)?
        } else {
            crate::ops::queues::render_table(&snapshot)
        };
        let Some(period) = watch else {
            println!("{text}");
            return Ok(());
        };
        // Clear the screen and home the cursor, then redraw.
        print!(
            "\x1b[2J\x1b[H{text}\n(every {}; Ctrl-C to stop)\n",
            humantime::format_duration(period)
        );
        use std::io::Write as _;
        std::io::stdout().flush()?;
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn jobs_command(g: &GlobalArgs, action: JobsCommand) -> anyhow::Result<()> {
    match action {
        JobsCommand::Failed {
            filter,
            ungrouped,
            resolved,
            limit,
            json,
        } => {
            let db = crate::ledger::connect(&g.database_url, 2).await?;
            let mut filter = filter.to_filter()?;
            filter.include_resolved = resolved;
            if ungrouped {
                let rows = crate::ledger::dead_letters::list(&db, &filter, limit).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    for d in &rows {
                        println!(
                            "{} {} {:<14} {:<5} {:<12} {} [{}] {}{}",
                            d.failed_at.format("%Y-%m-%d %H:%M:%S"),
                            d.job_id,
                            d.kind,
                            d.store.as_deref().unwrap_or("-"),
                            d.order_ref.as_deref().unwrap_or("-"),
                            d.fingerprint,
                            d.error_class,
                            d.error_message,
                            d.resolution
                                .as_deref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        );
                    }
                    println!("{} failed job(s)", rows.len());
                }
            } else {
                let groups = crate::ledger::dead_letters::groups(&db, &filter).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&groups)?);
                } else {
                    println!(
                        "{:<12} {:>6}  {:<14} {:<16} {:<19}  message",
                        "fingerprint", "count", "kind", "class", "last failed"
                    );
                    for grp in &groups {
                        println!(
                            "{:<12} {:>6}  {:<14} {:<16} {:<19}  {} (stores: {})",
                            grp.fingerprint,
                            grp.count,
                            grp.kind,
                            grp.error_class,
                            grp.last_failed_at.format("%Y-%m-%d %H:%M:%S"),
                            grp.sample_message,
                            grp.stores.join(",")
                        );
                    }
                    let total: i64 = groups.iter().map(|grp| grp.count).sum();
                    println!("{total} failed job(s) in {} group(s)", groups.len());
                }
            }
            Ok(())
        }
        JobsCommand::Show { id, json } => show_job(g, id, json).await,
        JobsCommand::Replay(selection) => resolve(g, selection, true).await,
        JobsCommand::Discard(selection) => resolve(g, selection, false).await,
        JobsCommand::Prune { older_than } => {
            let age = humantime::parse_duration(&older_than).with_context(|| {
                format!("--older-than '{older_than}' is not a duration (e.g. 90d)")
            })?;
            let db = crate::ledger::connect(&g.database_url, 2).await?;
            let before = chrono::Utc::now() - chrono::Duration::from_std(age)?;
            let n = crate::ledger::dead_letters::prune(&db, before).await?;
            println!("pruned {n} failed-job record(s) older than {older_than}");
            Ok(())
        }
    }
}

/// Who an operator is, for the ledger: `$USER@host` or `cli`.
fn operator() -> String {
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

async fn resolve(g: &GlobalArgs, selection: Selection, replay: bool) -> anyhow::Result<()> {
    let config = g.load_config()?;
    let deps = crate::startup::build(&g.settings(), &config, 4).await?;
    let ids = crate::failures::select(
        &deps.db,
        &selection.ids,
        selection.fingerprint.as_deref(),
        selection.all,
        selection.filter.to_filter()?,
    )
    .await?;
    let by = format!("cli:{}", operator());
    let bar = if selection.json || ids.len() < 2 {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(ids.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    };
    bar.set_message(if replay { "replaying" } else { "discarding" });
    let mut summary = crate::failures::Summary::default();
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        let r = if replay {
            crate::failures::replay(&deps, id, &by, selection.dry_run).await
        } else {
            crate::failures::discard(&deps, id, &by, selection.dry_run).await
        };
        summary.add(&r);
        match &r {
            crate::failures::Resolution::Skipped { job_id, reason } => bar.suspend(|| {
                if !selection.json {
                    println!("skipped {job_id}: {reason}");
                }
            }),
            crate::failures::Resolution::Error { job_id, error } => {
                bar.suspend(|| eprintln!("error {job_id}: {error}"))
            }
            _ => {}
        }
        results.push(r);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let verb = match (replay, selection.dry_run) {
        (true, false) => "replayed",
        (true, true) => "would replay",
        (false, false) => "discarded",
        (false, true) => "would discard",
    };
    if selection.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "summary": summary, "results": results })
            )?
        );
    } else {
        println!(
            "{verb} {}, skipped {}, errors {}",
            summary.resolved, summary.skipped, summary.errors
        );
    }
    if summary.errors > 0 {
        anyhow::bail!("{} job(s) could not be {verb}", summary.errors);
    }
    Ok(())
}

async fn show_job(g: &GlobalArgs, id: uuid::Uuid, json: bool) -> anyhow::Result<()> {
    let db = crate::ledger::connect(&g.database_url, 2).await?;
    let h = crate::failures::history(&db, id)
        .await?
        .with_context(|| format!("no job {id} in the ledger"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&h)?);
        return Ok(());
    }
    let job = &h.job;
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
    for r in &h.runs {
        println!(
            "  run {} attempt {}/{} on {} {} -> {} {}{}{}",
            r.run,
            r.attempt,
            job.max_attempts,
            r.worker,
            r.started_at.format("%H:%M:%S%.3f"),
            r.outcome,
            r.error_class
                .as_ref()
                .map(|c| format!("[{c}] "))
                .unwrap_or_default(),
            r.error_message.as_deref().unwrap_or_default(),
            r.next_run_at
                .map(|t| format!(" (next at {})", t.format("%H:%M:%S%.3f")))
                .unwrap_or_default(),
        );
    }
    if let Some(original) = h.replay_of {
        println!("  replays failed job {original}");
    }
    if let Some(d) = &h.failed {
        let state = match (d.resolution.as_deref(), d.replayed_as) {
            (Some("replayed"), Some(new_job)) => format!(
                "replayed as {new_job} by {} at {}",
                d.resolved_by.as_deref().unwrap_or_default(),
                d.resolved_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            ),
            (Some(r), _) => format!("{r} by {}", d.resolved_by.as_deref().unwrap_or_default()),
            _ => "open".into(),
        };
        println!(
            "  failed {} [{}] fingerprint {}; {state}",
            d.failed_at, d.error_class, d.fingerprint
        );
    }
    for (replay, at) in &h.replays {
        println!("  replayed as {replay} at {at}");
    }
    Ok(())
}
