//! `ordersync-worker`: what a worker container runs. Consumes the queues
//! until SIGTERM, then lets in-flight jobs finish.

use std::collections::HashMap;

use anyhow::Context as _;
use clap::Parser;
use ordersync::cli::GlobalArgs;
use ordersync::domain::JobKind;
use ordersync::worker::{self, WorkerOptions};

/// Consume ordersync's queues.
#[derive(Debug, Parser)]
#[command(name = "ordersync-worker", version, about, args_override_self = true)]
struct WorkerCli {
    #[command(flatten)]
    global: GlobalArgs,
    /// Kinds to consume (default: all five job kinds).
    #[arg(long, env = "ORDERSYNC_KINDS", value_delimiter = ',')]
    kinds: Vec<JobKind>,
    /// Concurrent handlers per kind, overriding the defaults (e.g. 100).
    #[arg(long, env = "ORDERSYNC_CONCURRENCY")]
    concurrency: Option<usize>,
    /// Tasks fetched per Redis round trip.
    #[arg(long, env = "ORDERSYNC_FETCH_BATCH", default_value_t = ordersync::queue::keys::DEFAULT_FETCH_BATCH)]
    fetch_batch: usize,
    /// apalis workers (fetch/ack loops) per queue.
    #[arg(long, env = "ORDERSYNC_FETCHERS", default_value_t = ordersync::worker::DEFAULT_FETCHERS)]
    fetchers: usize,
    /// Postgres connections.
    #[arg(long, env = "ORDERSYNC_DB_POOL", default_value_t = 16)]
    db_pool: u32,
    /// Heartbeat period, seconds.
    #[arg(long, env = "ORDERSYNC_HEARTBEAT_SECS", default_value_t = 5)]
    heartbeat_secs: u64,
    /// Missed heartbeats before a worker's in-flight jobs are re-enqueued.
    #[arg(long, env = "ORDERSYNC_MISSED_HEARTBEATS", default_value_t = 3)]
    missed_heartbeats: usize,
    /// Failed-job records older than this are pruned (e.g. 90d).
    #[arg(long, env = "ORDERSYNC_DEAD_LETTER_RETENTION", default_value = "90d")]
    dead_letter_retention: humantime::Duration,
    /// Address of this worker's /metrics, /healthz and /readyz (port 0:
    /// any free port, logged at start).
    #[arg(long, env = "ORDERSYNC_METRICS_LISTEN", default_value = "0.0.0.0:9100")]
    metrics_listen: std::net::SocketAddr,
    /// Worker name (default: host-pid-random; must be unique per process).
    #[arg(long, env = "ORDERSYNC_WORKER_NAME")]
    name: Option<String>,
    /// On SIGTERM, how long running jobs may take to finish (e.g. 30s); the
    /// rest are cut off and handed back to the queue.
    #[arg(long, env = "ORDERSYNC_SHUTDOWN_TIMEOUT", default_value = "30s")]
    shutdown_timeout: humantime::Duration,
    /// Finished tasks are deleted from Redis once this old (e.g. 5m). Keep it
    /// longer than heartbeat x (missed heartbeats + 1).
    #[arg(long, env = "ORDERSYNC_JANITOR_GRACE", default_value = "5m")]
    janitor_grace: humantime::Duration,
    /// How long the janitor waits after a sweep that found nothing to delete.
    #[arg(long, env = "ORDERSYNC_JANITOR_INTERVAL", default_value = "10s")]
    janitor_interval: humantime::Duration,
    /// How often the reconciler (one worker process at a time) pushes again
    /// the jobs the ledger holds unfinished that Redis has lost.
    #[arg(long, env = "ORDERSYNC_RECONCILE_INTERVAL", default_value = "30s")]
    reconcile_interval: humantime::Duration,
    /// Jobs enqueued more recently than this are left to their own push.
    #[arg(long, env = "ORDERSYNC_RECONCILE_GRACE", default_value = "30s")]
    reconcile_grace: humantime::Duration,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = WorkerCli::parse();
    ordersync::telemetry::init(cli.global.log_json);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: WorkerCli) -> anyhow::Result<()> {
    let config = cli.global.load_config()?;
    let deps = ordersync::startup::build(&cli.global.settings(), &config, cli.db_pool).await?;
    let listener = tokio::net::TcpListener::bind(cli.metrics_listen)
        .await
        .with_context(|| format!("listening for metrics on {}", cli.metrics_listen))?;
    tracing::info!(listen = %listener.local_addr()?, "metrics, health and readiness listening");
    let probes = ordersync::http::ops::Probes {
        db: deps.db.clone(),
        redis: deps.enqueuer.connection(),
    };
    // Registered before the first job so every series exists from the start.
    let _ = ordersync::ops::metrics::recorder();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, ordersync::http::ops::worker_router(probes)).await
        {
            tracing::error!(%error, "metrics server stopped");
        }
    });
    let runs = ordersync::ledger::runs::RunWriter::start(deps.db.clone());
    let mut options = WorkerOptions::new(&cli.global.redis_url);
    if !cli.kinds.is_empty() {
        options.kinds = cli.kinds;
    }
    if let Some(n) = cli.concurrency {
        options.concurrency = options
            .kinds
            .iter()
            .map(|k| (*k, n))
            .collect::<HashMap<_, _>>();
    }
    options.fetch_batch = cli.fetch_batch;
    options.fetchers = cli.fetchers;
    options.heartbeat = std::time::Duration::from_secs(cli.heartbeat_secs.max(1));
    options.missed_heartbeats = cli.missed_heartbeats;
    options.dead_letter_retention = cli.dead_letter_retention.into();
    if let Some(name) = cli.name {
        options.name = name;
    }
    options.shutdown_timeout = cli.shutdown_timeout.into();
    options.janitor_grace = cli.janitor_grace.into();
    options.janitor_interval = cli.janitor_interval.into();
    options.reconcile_interval = cli.reconcile_interval.into();
    options.reconcile_grace = cli.reconcile_grace.into();
    anyhow::ensure!(
        !options.reconcile_interval.is_zero(),
        "--reconcile-interval must be more than zero: it is the pause between reconciler passes"
    );
    anyhow::ensure!(
        !options.janitor_interval.is_zero(),
        "--janitor-interval must be more than zero: it is the pause between sweeps that find nothing"
    );
    worker::run(deps, runs, options, ordersync::startup::shutdown_signal()).await
}
