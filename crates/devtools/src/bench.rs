//! `ordersync bench` (`just bench`): throughput, wake-up latency, the
//! provider pipeline, worker memory and Redis memory over a million jobs,
//! provider rate limits and an ERP outage,
//! measured against the real Redis and Postgres and the simulator. Prints a
//! table and writes `target/bench/results.json`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use clap::Args;
use sqlx::PgPool;

use crate::demo::{spawn_worker, stop_worker, wait_drained};
use ordersync::cli::GlobalArgs;
use ordersync::domain::JobKind;
use ordersync::domain::NormalizedStatus;
use ordersync::domain::Source;
use ordersync::queue::NewJob;
use ordersync::startup::Settings;
use ordersync_simulator::{Knobs, Service, SimConfig};

mod abuse;
mod fairness;
mod limits;
mod peers;
mod reconcile;
mod redis_memory;
mod trace_orders;

/// A benchmark section that can run on its own (`--only`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum BenchSection {
    /// (h) Redis memory before, during and after a million jobs.
    RedisMemory,
    /// (i) Signed webhooks during 200 stalled or slow unauthenticated
    /// connections against an `ordersync api` process.
    Abuse,
    /// (i) The reconciler's passes over a million finished jobs and ten
    /// thousand that Redis lost.
    Reconcile,
    /// (j) A small store's bulk jobs during a 50,000-job backfill of another.
    Fairness,
    /// (k) Three worker processes against a rate-limited courier account,
    /// and 1,000 invoices through a 60-second ERP outage.
    Limits,
    /// (d) `--pipeline-orders` orders through fetch_tracking and the status
    /// polls the scheduler would still make, then a poll of every order.
    Pipeline,
}

/// `ordersync bench`.
#[derive(Debug, Clone, Args)]
pub(crate) struct BenchArgs {
    /// Jobs in the no-op backlog (b).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) jobs: usize,
    /// Idle wake-up samples (c).
    #[arg(long, default_value_t = 200)]
    pub(crate) wake_samples: usize,
    /// Orders through fetch_tracking + refresh_status (d).
    #[arg(long, default_value_t = 20_000)]
    pub(crate) pipeline_orders: usize,
    /// Simulated provider latency for (d), ms.
    #[arg(long, default_value_t = 20)]
    pub(crate) latency_ms: u64,
    /// Only the queue benchmarks (a, b, b', c).
    #[arg(long)]
    pub(crate) skip_pipeline: bool,
    /// Skip (b'), BullMQ's no-op benchmark on the same Redis (needs Node.js
    /// and `npm ci --prefix crates/devtools/peers/bullmq`).
    #[arg(long)]
    pub(crate) no_peers: bool,
    /// Concurrency of the no-op worker (b).
    #[arg(long, default_value_t = 1000)]
    pub(crate) noop_concurrency: usize,
    /// Fetch batch of the no-op worker (b).
    #[arg(long, default_value_t = 500)]
    pub(crate) noop_fetch_batch: usize,
    /// Webhooks per second for (g).
    #[arg(long, default_value_t = 500)]
    pub(crate) webhook_rate: u64,
    /// Seconds of webhooks for (g).
    #[arg(long, default_value_t = 10)]
    pub(crate) webhook_secs: u64,
    /// Run only this section.
    #[arg(long, value_enum)]
    pub(crate) only: Option<BenchSection>,
    /// Stalled or slow unauthenticated connections held open in (i).
    #[arg(long, default_value_t = 200)]
    pub(crate) abuse_connections: usize,
    /// Signed webhooks per second during (i).
    #[arg(long, default_value_t = 50)]
    pub(crate) abuse_webhook_rate: u64,
    /// Seconds of signed webhooks in (i).
    #[arg(long, default_value_t = 20)]
    pub(crate) abuse_secs: u64,
    /// No-op jobs pushed and consumed for the Redis memory section (h).
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) memory_jobs: usize,
    /// Redis for the memory section (default: REDIS_URL). `used_memory` is
    /// server-wide, so a private server gives a reading nobody else disturbs.
    #[arg(long)]
    pub(crate) memory_redis_url: Option<String>,
    /// Orders seeded for the order-tracing benchmark (h); 0 skips it.
    /// Seeding a million takes minutes, so it is opt-in: `just bench` passes
    /// `--trace-orders 1000000`.
    #[arg(long, default_value_t = 0)]
    pub(crate) trace_orders: i64,
    /// Random orders traced in (h).
    #[arg(long, default_value_t = 200)]
    pub(crate) trace_samples: usize,
    /// Run only (h), merging its figures into an existing results file.
    #[arg(long, requires = "trace_orders")]
    pub(crate) only_trace_orders: bool,
    /// Finished jobs in the reconciler's ledger (i); 0 skips the section.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) reconcile_finished: i64,
    /// Open jobs Redis has lost, for the reconciler to push (i).
    #[arg(long, default_value_t = 10_000)]
    pub(crate) reconcile_missing: i64,
    /// Jobs in the big store's backfill for the fairness section (j).
    #[arg(long, default_value_t = 50_000)]
    pub(crate) fairness_backfill: usize,
    /// Database the benchmark recreates on the DATABASE_URL server.
    #[arg(long, default_value = "ordersync_bench")]
    pub(crate) database: String,
    /// Where to write the results.
    #[arg(long, default_value = "target/bench/results.json")]
    pub(crate) output: PathBuf,
}

/// Run every benchmark.
///
/// # Errors
/// A service is missing or a worker died.
pub(crate) async fn run(g: &GlobalArgs, args: BenchArgs) -> anyhow::Result<()> {
    let mut results: BTreeMap<&'static str, f64> = BTreeMap::new();
    if args.only_trace_orders {
        trace_orders::run(
            &g.database_url,
            &args.database,
            args.trace_orders,
            args.trace_samples,
            &mut results,
        )
        .await?;
        return write_results(&args, &results, true);
    }
    let database_url = crate::database::recreate_scratch(&g.database_url, &args.database).await?;
    let dir = std::env::temp_dir().join(format!("ordersync-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    // The simulator serves the pipeline; the no-op benches only need a valid config.
    let mut sim_config = SimConfig::demo(args.pipeline_orders);
    sim_config.courier_coverage = 1.0;
    let sim = ordersync_simulator::start(sim_config, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let (toml, secrets) = ordersync_simulator::ordersync_config(&sim, "");
    let config_path = dir.join("ordersync.toml");
    std::fs::write(&config_path, &toml)?;
    let env: HashMap<String, String> = secrets.iter().cloned().collect();
    let config =
        ordersync::config::Config::resolve(toml::from_str(&toml)?, &|name| env.get(name).cloned())?;
    let memory_setup = redis_memory::Setup {
        database_url: &database_url,
        redis_url: args.memory_redis_url.as_deref().unwrap_or(&g.redis_url),
        config: &config,
        config_path: &config_path,
        secrets: &secrets,
        dir: &dir,
    };
    if args.only == Some(BenchSection::RedisMemory) {
        redis_memory::run(memory_setup, args.memory_jobs, &mut results).await?;
        sim.shutdown().await;
        return write_results(&args, &results, true);
    }
    let abuse_setup = abuse::Setup {
        database_url: &database_url,
        redis_url: &g.redis_url,
        config_path: &config_path,
        secrets: &secrets,
        config: &config,
        sim: &sim,
        dir: &dir,
    };
    let abuse_load = abuse::Load {
        connections: args.abuse_connections,
        webhook_rate: args.abuse_webhook_rate,
        secs: args.abuse_secs,
    };
    if args.only == Some(BenchSection::Abuse) {
        abuse::run(abuse_setup, abuse_load, &mut results).await?;
        sim.shutdown().await;
        return write_results(&args, &results, true);
    }
    let fairness_setup = fairness::Setup {
        server_url: &g.database_url,
        redis_url: &g.redis_url,
        config: &config,
        config_path: &config_path,
        secrets: &secrets,
        dir: &dir,
    };
    if args.only == Some(BenchSection::Fairness) {
        fairness::run(fairness_setup, args.fairness_backfill, &mut results).await?;
        sim.shutdown().await;
        return write_results(&args, &results, true);
    }
    let limits_setup = limits::Setup {
        server_url: &g.database_url,
        redis_url: &g.redis_url,
        dir: &dir,
    };
    if args.only == Some(BenchSection::Limits) {
        limits::run(limits_setup, &mut results).await?;
        sim.shutdown().await;
        return write_results(&args, &results, true);
    }
    if args.only == Some(BenchSection::Reconcile) {
        reconcile::run(
            &g.database_url,
            &g.redis_url,
            &config,
            args.reconcile_finished,
            args.reconcile_missing,
            &mut results,
        )
        .await?;
        sim.shutdown().await;
        return write_results(&args, &results, true);
    }

    // (a) bulk enqueue, (b) no-op consumption, (c) idle wake-up.
    let settings = Settings {
        database_url: database_url.clone(),
        redis_url: g.redis_url.clone(),
        namespace: format!("bench-noop-{}", std::process::id()),
    };
    if args.only == Some(BenchSection::Pipeline) {
        let rss = pipeline(
            g,
            &args,
            &sim,
            &config,
            &config_path,
            &secrets,
            settings,
            &dir,
            &mut results,
        )
        .await?;
        results.insert("worker_rss_pipeline_mb", rss);
        sim.shutdown().await;
        return write_results(&args, &results, true);
    }
    let deps = ordersync::startup::build(&settings, &config, 8).await?;
    let jobs: Vec<NewJob> = (0..args.jobs)
        .map(|_| NewJob::for_store(JobKind::Noop, "BETA"))
        .collect();
    let started = Instant::now();
    deps.enqueuer.enqueue(Source::Bench, jobs).await?;
    let enqueue_secs = started.elapsed().as_secs_f64();
    results.insert("enqueue_per_s", args.jobs as f64 / enqueue_secs);
    println!(
        "(a) enqueued {} jobs (ledger row + Redis) in {enqueue_secs:.2}s",
        args.jobs
    );

    let mut worker = spawn_worker(
        &config_path,
        &settings,
        &dir.join("noop-worker.log"),
        &secrets,
        &[
            "--kinds",
            "noop",
            "--concurrency",
            "1000",
            "--fetch-batch",
            "500",
        ],
    )?;
    let deadline = Instant::now() + Duration::from_secs(600);
    wait_for_runs(&deps.db, args.jobs as i64, deadline).await?;
    let (_, first_start, last_end) = ordersync::ledger::runs::totals(&deps.db).await?;
    let (first_start, last_end) = first_start.zip(last_end).context("no runs recorded")?;
    let consume_secs = (last_end - first_start)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    results.insert("noop_consume_per_s", args.jobs as f64 / consume_secs);
    let noop_rss = peak_rss_mb(&worker);
    println!(
        "(b) one worker consumed {} no-op jobs with ledger rows in {consume_secs:.2}s",
        args.jobs
    );

    if !args.no_peers {
        peers::run(&g.redis_url, args.jobs, &mut results).await?;
    }

    // Idle on purpose between samples: this measures an idle worker's wake-up.
    let mut latencies = start_latencies(&deps, Source::Bench, args.wake_samples).await?;
    latencies.sort_by(f64::total_cmp);
    results.insert("wake_p50_ms", percentile(&latencies, 0.50));
    results.insert("wake_p99_ms", percentile(&latencies, 0.99));
    println!("(c) {} idle wake-ups measured", latencies.len());

    // (f) priority lanes: a bulk backlog in flight (a backfill) must not delay
    // a webhook's job.
    // Each bulk job takes 100 ms, so the backlog is still being worked on
    // while the webhook jobs are timed.
    let bulk: Vec<NewJob> = (0..args.jobs)
        .map(|_| NewJob {
            args: serde_json::json!({"sleep_ms": 100}),
            ..NewJob::for_store(JobKind::Noop, "BETA")
        })
        .collect();
    deps.enqueuer.enqueue(Source::Backfill, bulk).await?;
    let mut live = start_latencies(&deps, Source::Webhook, 50).await?;
    let mut conn = ordersync::queue::connect(&g.redis_url).await?;
    let bulk_left = ordersync::queue::depth::lane_depth(
        &mut conn,
        &settings.namespace,
        JobKind::Noop,
        ordersync::domain::Lane::Bulk,
    )
    .await?;
    live.sort_by(f64::total_cmp);
    results.insert("priority_live_p50_ms", percentile(&live, 0.50));
    results.insert("priority_live_p99_ms", percentile(&live, 0.99));
    println!(
        "(f) 50 webhook jobs during a {}-job bulk backlog ({} bulk jobs still pending or in flight after them)",
        args.jobs,
        bulk_left.pending + bulk_left.in_flight
    );
    stop_worker(&mut worker).await;
    ordersync::queue::depth::delete_namespace(&g.redis_url, &settings.namespace).await?;

    if args.reconcile_finished > 0 {
        reconcile::run(
            &g.database_url,
            &g.redis_url,
            &config,
            args.reconcile_finished,
            args.reconcile_missing,
            &mut results,
        )
        .await?;
    }

    fairness::run(fairness_setup, args.fairness_backfill, &mut results).await?;
    limits::run(limits_setup, &mut results).await?;

    let (p50, p99, sent) =
        webhooks(&deps, &config, &sim, args.webhook_rate, args.webhook_secs).await?;
    results.insert("webhook_p50_ms", p50);
    results.insert("webhook_p99_ms", p99);
    println!(
        "(g) {sent} signed WooCommerce webhooks at {}/s",
        args.webhook_rate
    );
    ordersync::queue::depth::delete_namespace(&g.redis_url, &settings.namespace).await?;
    abuse::run(abuse_setup, abuse_load, &mut results).await?;

    let pipeline_rss = if args.skip_pipeline {
        0.0
    } else {
        pipeline(
            g,
            &args,
            &sim,
            &config,
            &config_path,
            &secrets,
            settings,
            &dir,
            &mut results,
        )
        .await?
    };
    redis_memory::run(memory_setup, args.memory_jobs, &mut results).await?;
    sim.shutdown().await;

    results.insert("worker_rss_mb", noop_rss.max(pipeline_rss));
    results.insert("worker_rss_noop_mb", noop_rss);
    results.insert("worker_rss_pipeline_mb", pipeline_rss);

    if args.trace_orders > 0 {
        trace_orders::run(
            &g.database_url,
            &args.database,
            args.trace_orders,
            args.trace_samples,
            &mut results,
        )
        .await?;
    }
    write_results(&args, &results, false)
}

/// Print the table and write the results file; with `merge`, figures
/// already in the file that this run did not measure are kept.
fn write_results(
    args: &BenchArgs,
    results: &BTreeMap<&'static str, f64>,
    merge: bool,
) -> anyhow::Result<()> {
    println!("\n{:<28} {:>12}", "metric", "value");
    for (k, v) in results {
        println!("{k:<28} {v:>12.1}");
    }
    let mut all: BTreeMap<String, f64> = if merge {
        std::fs::read_to_string(&args.output)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    all.extend(results.iter().map(|(k, v)| ((*k).to_owned(), *v)));
    if let Some(parent) = args.output.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.output, serde_json::to_string_pretty(&all)?)
        .with_context(|| format!("writing {}", args.output.display()))?;
    println!("\nwritten to {}", args.output.display());
    Ok(())
}

/// (d): 20,000 orders through fetch_tracking + refresh_status with provider
/// latency: the list of every store, then a poll of each order not at a
/// final status that the list did not show (the scheduler's rule: the list
/// carries the status a poll would read); `pipeline_orders_per_s` is over
/// both. Then, timed apart, a poll of every such order regardless
/// (`pipeline_polls_per_s`: the polling path under the same latency).
/// Returns the worker's peak RSS.
#[allow(clippy::too_many_arguments)]
async fn pipeline(
    g: &GlobalArgs,
    args: &BenchArgs,
    sim: &ordersync_simulator::SimHandle,
    config: &ordersync::config::Config,
    config_path: &std::path::Path,
    secrets: &[(String, String)],
    settings: Settings,
    dir: &std::path::Path,
    results: &mut BTreeMap<&'static str, f64>,
) -> anyhow::Result<f64> {
    let settings = Settings {
        namespace: format!("bench-pipeline-{}", std::process::id()),
        ..settings
    };
    let deps = ordersync::startup::build(&settings, config, 8).await?;
    let mut worker = spawn_worker(
        config_path,
        &settings,
        &dir.join("pipeline-worker.log"),
        secrets,
        &["--concurrency", "256", "--db-pool", "32"],
    )?;
    let stores: Vec<String> = config.stores.iter().map(|s| s.code.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(600);
    let waves = crate::demo::Waves {
        deps: &deps,
        source: Source::Bench,
        stores: &stores,
        redis_url: &g.redis_url,
        namespace: &settings.namespace,
        deadline,
    };
    waves
        .run(JobKind::ImportOrders, std::slice::from_mut(&mut worker))
        .await?;
    for service in [Service::Courier, Service::Shop, Service::Erp, Service::Sms] {
        sim.set_knobs(
            service,
            Knobs {
                latency: Duration::from_millis(args.latency_ms),
                ..Default::default()
            },
        );
    }
    let started = Instant::now();
    let listed_since = chrono::Utc::now();
    waves
        .run(JobKind::FetchTracking, std::slice::from_mut(&mut worker))
        .await?;
    let tracking_secs = started.elapsed().as_secs_f64();
    let finals: Vec<&str> = NormalizedStatus::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    let polls = |listed_before: Option<chrono::DateTime<chrono::Utc>>| {
        let deps = &deps;
        let finals = &finals;
        let stores = &stores;
        async move {
            let mut jobs = Vec::new();
            for store in stores {
                for reference in ordersync::ledger::orders::needing_refresh(
                    &deps.db,
                    store,
                    finals,
                    listed_before,
                )
                .await?
                {
                    jobs.push(NewJob::for_order(JobKind::RefreshStatus, store, &reference));
                }
            }
            anyhow::Ok(jobs)
        }
    };
    let mut tracked = 0usize;
    for store in &stores {
        tracked += ordersync::ledger::orders::needing_refresh(&deps.db, store, &[], None)
            .await?
            .len();
    }
    let refreshes = polls(Some(listed_since)).await?;
    let refreshed = refreshes.len();
    deps.enqueuer.enqueue(Source::Bench, refreshes).await?;
    wait_drained(
        &g.redis_url,
        &settings.namespace,
        deadline,
        std::slice::from_mut(&mut worker),
    )
    .await?;
    let pipeline_secs = started.elapsed().as_secs_f64();
    let every_poll = polls(None).await?;
    let polled = every_poll.len();
    let polls_started = Instant::now();
    deps.enqueuer.enqueue(Source::Bench, every_poll).await?;
    wait_drained(
        &g.redis_url,
        &settings.namespace,
        deadline,
        std::slice::from_mut(&mut worker),
    )
    .await?;
    let polls_secs = polls_started.elapsed().as_secs_f64();
    results.insert("pipeline_polls_per_s", polled as f64 / polls_secs);
    results.insert(
        "pipeline_orders_per_s",
        args.pipeline_orders as f64 / pipeline_secs,
    );
    results.insert("pipeline_tracking_secs", tracking_secs);
    results.insert("pipeline_refreshed_orders", refreshed as f64);
    results.insert("pipeline_tracked_orders", tracked as f64);
    let rss = peak_rss_mb(&worker);
    println!(
        "(d) {} orders: tracking for {tracked} in {tracking_secs:.2}s, {refreshed} status polls of orders the list did not show, {pipeline_secs:.2}s in all; then {polled} polls (every order not final) in {polls_secs:.2}s",
        args.pipeline_orders
    );
    stop_worker(&mut worker).await;
    ordersync::queue::depth::delete_namespace(&g.redis_url, &settings.namespace).await?;

    Ok(rss)
}

/// (g): signed order webhooks at `rate`/s for `secs` against `ordersync
/// api`'s router on loopback; each is a distinct change (no dedupe
/// short-cut), so each upserts its order and enqueues its invoice.
/// Returns p50 and p99 response times (ms) and the requests sent.
async fn webhooks(
    deps: &ordersync::jobs::Deps,
    config: &ordersync::config::Config,
    sim: &ordersync_simulator::SimHandle,
    rate: u64,
    secs: u64,
) -> anyhow::Result<(f64, f64, usize)> {
    use hmac::Mac as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!(
        "http://{}/webhooks/woocommerce/BETA",
        listener.local_addr()?
    );
    let state =
        ordersync::http::AppState::new(deps.clone(), config, secrecy::SecretString::from("bench"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ordersync::http::serve(listener, state, async {
        let _ = stop_rx.await;
    }));
    let secret = config
        .store("BETA")
        .and_then(|s| s.webhook_secret.clone())
        .context("BETA has no webhook secret in the bench config")?;
    let orders = sim.shop_orders("BETA");
    let http = reqwest::Client::new();
    let total = (rate * secs) as usize;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    let mut requests = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let mut order = orders[i % orders.len()].clone();
        let modified = chrono::NaiveDate::from_ymd_opt(2030, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default()
            + chrono::Duration::seconds(i as i64);
        order["date_modified_gmt"] =
            serde_json::json!(modified.format("%Y-%m-%dT%H:%M:%S").to_string());
        let body = serde_json::to_vec(&order)?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(
            secrecy::ExposeSecret::expose_secret(&secret).as_bytes(),
        )?;
        mac.update(&body);
        let signature = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            mac.finalize().into_bytes(),
        );
        let request = http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-wc-webhook-signature", signature)
            .header("x-wc-webhook-topic", "order.updated")
            .body(body);
        requests.push(tokio::spawn(async move {
            let started = Instant::now();
            let response = request.send().await;
            (
                started.elapsed().as_secs_f64() * 1000.0,
                response.map(|r| r.status().as_u16()).unwrap_or(0),
            )
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for r in requests {
        let (ms, status) = r.await?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "a webhook was answered {status}"
        );
        latencies.push(ms);
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    latencies.sort_by(f64::total_cmp);
    Ok((
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        total,
    ))
}

/// Push `samples` no-op jobs from `source`, one every 20 ms, each after the
/// previous one started; returns push-to-start latencies in ms.
async fn start_latencies(
    deps: &ordersync::jobs::Deps,
    source: Source,
    samples: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let pushed = Utc::now();
        let (envelopes, _) = deps
            .enqueuer
            .enqueue(source, vec![NewJob::for_store(JobKind::Noop, "BETA")])
            .await?;
        let started_at = wait_for_start(
            &deps.db,
            envelopes[0].job_id,
            Instant::now() + Duration::from_secs(30),
        )
        .await?;
        latencies.push(
            (started_at - pushed)
                .to_std()
                .unwrap_or_default()
                .as_secs_f64()
                * 1000.0,
        );
    }
    Ok(latencies)
}

async fn wait_for_runs(db: &PgPool, expected: i64, deadline: Instant) -> anyhow::Result<()> {
    loop {
        let (done, _, _) = ordersync::ledger::runs::totals(db).await?;
        if done >= expected {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {expected} jobs ran in time"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_for_start(
    db: &PgPool,
    job_id: uuid::Uuid,
    deadline: Instant,
) -> anyhow::Result<chrono::DateTime<Utc>> {
    loop {
        if let Some(t) = ordersync::ledger::runs::first_start(db, job_id).await? {
            return Ok(t);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "job {job_id} did not start in time"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

/// Peak resident memory (VmHWM) of a child process, MiB.
fn peak_rss_mb(child: &tokio::process::Child) -> f64 {
    let Some(pid) = child.id() else { return 0.0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
