//! (j) Per-store fairness on the bulk lane: a small store's bulk jobs
//! during a 50,000-job backfill of another store. Without turns each of them
//! waits for the whole backlog ahead of it; with turns (`queue/fair.rs`) for
//! about a window's worth of tasks.
//!
//! Figures: `fairness_small_store_p99_s` and `fairness_small_store_p50_s`
//! (enqueue to start of the small store's jobs, read from the ledger), and
//! `fairness_backlog_left_at_last_small_start` (how many of the backfill's
//! jobs had not started when the small store's last job did: the backfill
//! was really in the way).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ordersync::config::Config;
use ordersync::domain::{JobKind, Source};
use ordersync::queue::NewJob;
use ordersync::startup::Settings;

use crate::demo::{spawn_worker, stop_worker};

/// What the section runs against.
pub(crate) struct Setup<'a> {
    pub(crate) server_url: &'a str,
    pub(crate) redis_url: &'a str,
    pub(crate) config: &'a Config,
    pub(crate) config_path: &'a Path,
    pub(crate) secrets: &'a [(String, String)],
    pub(crate) dir: &'a Path,
}

/// The small store's jobs: one every [`SMALL_EVERY`].
const SMALL_JOBS: usize = 50;
const SMALL_EVERY: Duration = Duration::from_millis(100);

/// Run the backfill and the small store's jobs through one worker process.
///
/// # Errors
/// A service is missing, the worker died, or the jobs did not run in time.
pub(crate) async fn run(
    setup: Setup<'_>,
    backfill: usize,
    results: &mut BTreeMap<&'static str, f64>,
) -> anyhow::Result<()> {
    let database_url =
        crate::database::recreate_scratch(setup.server_url, "ordersync_bench_fairness").await?;
    let settings = Settings {
        database_url,
        redis_url: setup.redis_url.to_owned(),
        namespace: format!("bench-fair-{}", std::process::id()),
    };
    let deps = ordersync::startup::build(&settings, setup.config, 8).await?;
    // A few milliseconds of work per job: the backlog drains in tens of
    // seconds, long enough for the small store to arrive in the middle.
    let big: Vec<NewJob> = (0..backfill)
        .map(|_| NewJob {
            args: serde_json::json!({"sleep_ms": 5}),
            ..NewJob::for_store(JobKind::Noop, "ALPH")
        })
        .collect();
    deps.enqueuer.enqueue(Source::Backfill, big).await?;
    let mut worker = spawn_worker(
        setup.config_path,
        &settings,
        &setup.dir.join("fairness-worker.log"),
        setup.secrets,
        &["--kinds", "noop", "--concurrency", "50"],
    )?;
    // The small store arrives once the backfill is under way.
    let deadline = Instant::now() + Duration::from_secs(600);
    while ordersync::ledger::runs::totals(&deps.db).await?.0 < 1_000 {
        anyhow::ensure!(Instant::now() < deadline, "the backfill did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..SMALL_JOBS {
        deps.enqueuer
            .enqueue(
                Source::Backfill,
                vec![NewJob::for_store(JobKind::Noop, "BETA")],
            )
            .await?;
        tokio::time::sleep(SMALL_EVERY).await;
    }
    let expected = (backfill + SMALL_JOBS) as i64;
    loop {
        if let Some(status) = worker.try_wait()? {
            anyhow::bail!("the worker exited ({status}); see fairness-worker.log");
        }
        let (done, _, _) = ordersync::ledger::runs::totals(&deps.db).await?;
        if done >= expected {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {done} of {expected} jobs ran in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_worker(&mut worker).await;

    let mut waits: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM r.started_at - j.enqueued_at)::float8
         FROM jobs j JOIN job_runs r ON r.job_id = j.job_id AND r.run = 1
         WHERE j.store = 'BETA'",
    )
    .fetch_all(&deps.db)
    .await?;
    anyhow::ensure!(
        waits.len() == SMALL_JOBS,
        "{} of the small store's {SMALL_JOBS} jobs ran",
        waits.len()
    );
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs j JOIN job_runs r ON r.job_id = j.job_id AND r.run = 1
         WHERE j.store = 'ALPH'
           AND r.started_at > (SELECT max(r2.started_at) FROM jobs j2
                               JOIN job_runs r2 ON r2.job_id = j2.job_id
                               WHERE j2.store = 'BETA')",
    )
    .fetch_one(&deps.db)
    .await
    .context("counting the backlog left")?;
    waits.sort_by(f64::total_cmp);
    results.insert(
        "fairness_small_store_p50_s",
        super::percentile(&waits, 0.50),
    );
    results.insert(
        "fairness_small_store_p99_s",
        super::percentile(&waits, 0.99),
    );
    results.insert("fairness_backlog_left_at_last_small_start", left as f64);
    println!(
        "(j) {SMALL_JOBS} bulk jobs of a small store during a {backfill}-job backfill of another \
         ({left} of the backfill's jobs started after the small store's last)"
    );
    ordersync::queue::depth::delete_namespace(setup.redis_url, &settings.namespace).await?;
    Ok(())
}
