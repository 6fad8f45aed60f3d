//! (k) Provider limits with real worker processes against the simulator,
//! the bench-scale version of `tests/it/limits.rs`:
//!
//! - Rate limit: three `ordersync-worker` processes at their default
//!   concurrency poll the status of [`RATE_ORDERS`] orders of ALPH, whose
//!   courier account `alph` is limited to [`RATE_PER_S`] requests per second
//!   with a burst of [`BURST`]. The simulator counts requests per credential
//!   per wall-clock second; the busiest second is
//!   `ratelimit_observed_max_per_s` (at most rate + burst if the shared
//!   limit holds), next to `ratelimit_configured_per_s`.
//! - ERP outage: the ERP answers every request with a 5xx for
//!   [`OUTAGE`] while [`OUTAGE_INVOICES`] `create_invoice` jobs are enqueued,
//!   then comes back. `outage_dead_letters` counts dead letters once every
//!   job is final (expect 0: the breaker parks jobs without using their
//!   attempts) and `outage_recovery_s` is the time from the ERP coming back
//!   until the simulator holds an invoice for every order. The breaker runs
//!   with its defaults (10 failures in a row, open 30 s), so the recovery
//!   includes the wait for the next probe.
//!
//! Production retry policies throughout: what an operator gets.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ordersync::domain::{JobKind, NormalizedStatus, Source};
use ordersync::queue::NewJob;
use ordersync::startup::Settings;
use ordersync_simulator::{Knobs, Service, SimConfig, SimHandle};

use crate::demo::{spawn_worker, stop_worker, wait_drained, Waves};

/// What the section runs against.
pub(crate) struct Setup<'a> {
    pub(crate) server_url: &'a str,
    pub(crate) redis_url: &'a str,
    pub(crate) dir: &'a Path,
}

/// The `alph` courier account's limit: the example.
const RATE_PER_S: u64 = 50;
const BURST: u64 = 10;
/// ALPH's orders: tens of seconds of status polls at the limit.
const RATE_ORDERS: usize = 1_000;
/// Worker processes sharing the limit through Redis.
const WORKERS: usize = 3;
/// The outage: 60 s under 1,000 invoices.
const OUTAGE: Duration = Duration::from_secs(60);
const OUTAGE_INVOICES: usize = 1_000;

/// Run both scenarios on a simulator, database and namespace of their own
/// (the simulator's per-second counts cover its whole life).
///
/// # Errors
/// A service is missing, a worker died, or the work did not finish in time.
pub(crate) async fn run(
    setup: Setup<'_>,
    results: &mut BTreeMap<&'static str, f64>,
) -> anyhow::Result<()> {
    let database_url =
        crate::database::recreate_scratch(setup.server_url, "ordersync_bench_limits").await?;
    let mut sim_config = SimConfig::demo(RATE_ORDERS * 6);
    sim_config.courier_coverage = 1.0;
    // ALPH (its own courier account, the limited one) and BETA (for the
    // invoices) are enough; BETA starts with a handful of orders.
    sim_config
        .stores
        .retain(|s| s.code == "ALPH" || s.code == "BETA");
    for store in &mut sim_config.stores {
        if store.code == "BETA" {
            store.orders = 10;
        }
    }
    let sim = ordersync_simulator::start(sim_config, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let limits = format!("\n[limits.courier.alph]\nrate_per_s = {RATE_PER_S}\nburst = {BURST}\n");
    let (toml, secrets) = ordersync_simulator::ordersync_config(&sim, &limits);
    let config_path = setup.dir.join("limits.toml");
    std::fs::write(&config_path, &toml)?;
    let env: HashMap<String, String> = secrets.iter().cloned().collect();
    let config =
        ordersync::config::Config::resolve(toml::from_str(&toml)?, &|name| env.get(name).cloned())?;
    let settings = Settings {
        database_url,
        redis_url: setup.redis_url.to_owned(),
        namespace: format!("bench-limits-{}", std::process::id()),
    };
    let deps = ordersync::startup::build(&settings, &config, 8).await?;
    let mut workers = (0..WORKERS)
        .map(|i| {
            spawn_worker(
                &config_path,
                &settings,
                &setup.dir.join(format!("limits-worker-{i}.log")),
                &secrets,
                &[],
            )
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let outcome = scenarios(&deps, &settings, &sim, &mut workers, results).await;
    for worker in &mut workers {
        stop_worker(worker).await;
    }
    sim.shutdown().await;
    ordersync::queue::depth::delete_namespace(setup.redis_url, &settings.namespace).await?;
    outcome
}

async fn scenarios(
    deps: &ordersync::jobs::Deps,
    settings: &Settings,
    sim: &SimHandle,
    workers: &mut [tokio::process::Child],
    results: &mut BTreeMap<&'static str, f64>,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(900);
    let stores = ["ALPH".to_owned(), "BETA".to_owned()];
    let waves = Waves {
        deps,
        source: Source::Bench,
        stores: &stores,
        redis_url: &settings.redis_url,
        namespace: &settings.namespace,
        deadline,
    };
    waves.run(JobKind::ImportOrders, workers).await?;
    waves.run(JobKind::FetchTracking, workers).await?;

    // Rate limit: every ALPH order not yet at a final status gets a poll.
    let finals: Vec<&str> = NormalizedStatus::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    let polls: Vec<NewJob> =
        ordersync::ledger::orders::needing_refresh(&deps.db, "ALPH", &finals, None)
            .await?
            .iter()
            .map(|reference| NewJob::for_order(JobKind::RefreshStatus, "ALPH", reference))
            .collect();
    let poll_count = polls.len();
    anyhow::ensure!(
        poll_count >= RATE_ORDERS / 2,
        "only {poll_count} of ALPH's {RATE_ORDERS} orders need a status poll"
    );
    let started = Instant::now();
    deps.enqueuer.enqueue(Source::Bench, polls).await?;
    wait_drained(&settings.redis_url, &settings.namespace, deadline, workers).await?;
    let poll_secs = started.elapsed().as_secs_f64();
    let peak = sim.peak_requests_per_second(Service::Courier);
    let parked = count(
        deps,
        "SELECT count(*) FROM job_runs r JOIN jobs j ON j.job_id = r.job_id
         WHERE j.kind = 'refresh_status' AND r.error_class = 'held_back'",
    )
    .await?;
    results.insert("ratelimit_configured_per_s", RATE_PER_S as f64);
    results.insert("ratelimit_burst", BURST as f64);
    results.insert("ratelimit_observed_max_per_s", peak as f64);
    results.insert("ratelimit_polls_per_s", poll_count as f64 / poll_secs);
    println!(
        "(k) {WORKERS} worker processes, {poll_count} status polls against courier account alph \
         limited to {RATE_PER_S}/s + burst {BURST}: busiest second {peak} requests, \
         {poll_secs:.1}s in all, {parked} runs parked waiting for the budget"
    );

    // ERP outage.
    let references: Vec<String> = (0..OUTAGE_INVOICES)
        .map(|_| {
            let order = sim.add_shop_order("BETA", "cod", "processing", false);
            order["number"]
                .as_str()
                .map(|number| format!("BETA-{number}"))
                .context("the simulator added no order to BETA")
        })
        .collect::<anyhow::Result<_>>()?;
    let beta = ["BETA".to_owned()];
    Waves {
        stores: &beta,
        ..waves
    }
    .run(JobKind::ImportOrders, workers)
    .await?;
    sim.set_knobs(
        Service::Erp,
        Knobs {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    let down_at = Instant::now();
    let invoices: Vec<NewJob> = references
        .iter()
        .map(|reference| NewJob::for_order(JobKind::CreateInvoice, "BETA", reference))
        .collect();
    deps.enqueuer.enqueue(Source::Bench, invoices).await?;
    // The outage lasts its fixed time whatever the workers do; they must
    // stay alive through it.
    while down_at.elapsed() < OUTAGE {
        for worker in workers.iter_mut() {
            if let Some(status) = worker.try_wait()? {
                anyhow::bail!("a worker process exited during the outage ({status}); see its log");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let erp_requests_down = sim.request_count(Service::Erp);
    sim.set_knobs(Service::Erp, Knobs::default());
    let up_at = Instant::now();
    loop {
        let missing = references
            .iter()
            .filter(|r| sim.invoice_count(r) == 0)
            .count();
        if missing == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{missing} of {OUTAGE_INVOICES} invoices not created in time after the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovery_secs = up_at.elapsed().as_secs_f64();
    wait_drained(&settings.redis_url, &settings.namespace, deadline, workers).await?;
    let dead_letters = count(deps, "SELECT count(*) FROM dead_letters").await?;
    let duplicates: usize = references
        .iter()
        .map(|r| sim.invoice_count(r).saturating_sub(1))
        .sum();
    let attempts_failed = count(
        deps,
        "SELECT count(*) FROM job_runs r JOIN jobs j ON j.job_id = r.job_id
         WHERE j.kind = 'create_invoice' AND r.outcome IN ('retry', 'failed')",
    )
    .await?;
    results.insert("outage_dead_letters", dead_letters as f64);
    results.insert("outage_recovery_s", recovery_secs);
    results.insert("outage_duplicate_invoices", duplicates as f64);
    results.insert("outage_attempts_used", attempts_failed as f64);
    println!(
        "(k) ERP down {}s under {OUTAGE_INVOICES} invoices ({erp_requests_down} requests reached it): \
         every invoice created {recovery_secs:.1}s after it came back, {dead_letters} dead letters, \
         {duplicates} duplicates, {attempts_failed} attempts used on failures",
        OUTAGE.as_secs()
    );
    Ok(())
}

async fn count(deps: &ordersync::jobs::Deps, sql: &str) -> anyhow::Result<i64> {
    sqlx::query_scalar(sql)
        .fetch_one(&deps.db)
        .await
        .with_context(|| format!("counting with {sql}"))
}
