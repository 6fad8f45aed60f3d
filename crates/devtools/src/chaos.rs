//! `ordersync-dev chaos` (`just chaos`): the fault scenarios of
//! `tests/it/faults.rs`, soaked: more orders, three workers, a longer kill
//! storm and a 30-second Postgres outage, each against its own private Redis
//! and Postgres. Prints what each fault cost and writes
//! `target/chaos/results.json`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use ordersync_testkit::scenario::{self, Fault, Outcome, Scenario};

/// Which fault to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FaultName {
    /// Every fault below, one after the other.
    All,
    /// `kill -9` a worker every `--storm-every` for `--storm-for`.
    KillStorm,
    /// `FLUSHALL` mid-run.
    Flushall,
    /// Redis restarted without persistence.
    RedisRestart,
    /// Redis restarted from its append-only file (fsync every second).
    RedisRestartAof,
    /// Postgres down for `--postgres-down`.
    PostgresDown,
}

/// `ordersync-dev chaos`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ChaosArgs {
    /// The fault.
    #[arg(long, value_enum, default_value = "all")]
    pub(crate) fault: FaultName,
    /// Orders in the shops (two stores).
    #[arg(long, default_value_t = 3_000)]
    pub(crate) orders: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 3)]
    pub(crate) workers: usize,
    /// Scheduler ticks (1.5 s apart) before the fault.
    #[arg(long, default_value_t = 8)]
    pub(crate) ticks_before: u32,
    /// Scheduler ticks after it.
    #[arg(long, default_value_t = 6)]
    pub(crate) ticks_after: u32,
    /// Provider latency, ms.
    #[arg(long, default_value_t = 40)]
    pub(crate) latency_ms: u64,
    /// Share of provider requests answered 5xx.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) error_rate: f64,
    /// Kill storm: between kills.
    #[arg(long, default_value = "2s")]
    pub(crate) storm_every: humantime::Duration,
    /// Kill storm: how long.
    #[arg(long, default_value = "2m")]
    pub(crate) storm_for: humantime::Duration,
    /// How long Postgres is down.
    #[arg(long, default_value = "30s")]
    pub(crate) postgres_down: humantime::Duration,
    /// Where to write the results.
    #[arg(long, default_value = "target/chaos/results.json")]
    pub(crate) output: PathBuf,
}

/// Run the chosen faults and report.
///
/// # Errors
/// A scenario could not start, or did not settle in time.
pub(crate) async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    let worker_bin = std::env::current_exe()?.with_file_name("ordersync-worker");
    let faults: Vec<Fault> = match args.fault {
        FaultName::All => vec![
            kill_storm(&args),
            Fault::FlushAll,
            Fault::RedisRestart,
            Fault::RedisRestartAof,
            postgres_down(&args),
        ],
        FaultName::KillStorm => vec![kill_storm(&args)],
        FaultName::Flushall => vec![Fault::FlushAll],
        FaultName::RedisRestart => vec![Fault::RedisRestart],
        FaultName::RedisRestartAof => vec![Fault::RedisRestartAof],
        FaultName::PostgresDown => vec![postgres_down(&args)],
    };
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failures = Vec::new();
    for fault in faults {
        println!("chaos: {} ...", fault.name());
        let scenario = Scenario {
            fault,
            orders: args.orders,
            workers: args.workers,
            worker_bin: worker_bin.clone(),
            ticks_before: args.ticks_before,
            ticks_after: args.ticks_after,
            latency: Duration::from_millis(args.latency_ms),
            error_rate: args.error_rate,
            settle_deadline: Duration::from_secs(120),
            log_dir: Some(PathBuf::from(format!("target/chaos/{}", fault.name()))),
        };
        match scenario::run(scenario).await {
            Ok(outcome) => {
                if !outcome.is_clean() {
                    failures.push(format!("{}: {outcome:?}", fault.name()));
                }
                outcomes.push(outcome);
            }
            Err(error) => failures.push(format!("{}: {error:#}", fault.name())),
        }
    }
    print!("{}", table(&outcomes));
    if let Some(dir) = args.output.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.output, serde_json::to_string_pretty(&outcomes)?)?;
    println!("results written to {}", args.output.display());
    if !failures.is_empty() {
        anyhow::bail!("faults that broke a promise:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

fn kill_storm(args: &ChaosArgs) -> Fault {
    Fault::KillStorm {
        every: args.storm_every.into(),
        lasting: args.storm_for.into(),
    }
}

fn postgres_down(args: &ChaosArgs) -> Fault {
    Fault::PostgresDown {
        lasting: args.postgres_down.into(),
    }
}

fn table(outcomes: &[Outcome]) -> String {
    let mut out = format!(
        "{:<18} {:>7} {:>8} {:>12} {:>13} {:>6} {:>8} {:>6} {:>8} {:>6} {:>8} {:>7} {:>8} {:>9}\n",
        "fault",
        "jobs",
        "open",
        "no_text",
        "changes",
        "sent",
        "unknown",
        "dup_tx",
        "invoices",
        "dup_in",
        "died",
        "outage",
        "reconc",
        "settle_s"
    );
    for o in outcomes {
        out.push_str(&format!(
            "{:<18} {:>7} {:>8} {:>12} {:>13} {:>6} {:>8} {:>6} {:>8} {:>6} {:>8} {:>7} {:>8} {:>9.1}\n",
            o.fault,
            o.jobs,
            o.non_terminal,
            o.changes_without_text,
            o.notifying_changes,
            o.texts_sent,
            o.texts_unknown,
            o.duplicate_texts,
            o.invoices,
            o.duplicate_invoices,
            o.worker_died_runs,
            o.failed_on_our_outage,
            o.reconciled,
            o.settled_after_secs
        ));
    }
    out
}
