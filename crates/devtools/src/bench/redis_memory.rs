//! (h) Redis memory over a million jobs: pushed in batches while one worker
//! process consumes them with the janitor on (grace 0), then left to the
//! janitor. Memory should end within a few MB of where it started.
//!
//! `used_memory` is the whole server's: on a Redis that other clients use at
//! the same time their keys count too. `--memory-redis-url` points this
//! section at a private server for a clean reading; the figures of our own
//! namespace (`redis_ns_keys_after`, `redis_ns_kb_after`) are exact either way.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use redis::aio::ConnectionManager;
use redis::AsyncCommands as _;
use tokio::sync::watch;

use crate::demo::{spawn_worker, stop_worker};
use ordersync::domain::JobKind;
use ordersync::domain::{Lane, Source};
use ordersync::queue::{NewJob, QueueKeys};
use ordersync::startup::Settings;

/// Jobs per enqueue call.
const ENQUEUE_BATCH: usize = 5_000;
/// Pending jobs above which the producer waits for the worker: a realistic
/// backlog rather than a million payloads in Redis at once.
const MAX_BACKLOG: u64 = 100_000;
/// Concurrent enqueuers.
const PRODUCERS: usize = 4;
/// How often `used_memory` is sampled for the peak.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Where the section runs.
pub(super) struct Setup<'a> {
    /// Postgres (the benchmark's database).
    pub(super) database_url: &'a str,
    /// Redis to measure.
    pub(super) redis_url: &'a str,
    /// The benchmark's config.
    pub(super) config: &'a ordersync::config::Config,
    /// Its file, for the worker process.
    pub(super) config_path: &'a Path,
    /// Secrets the config names.
    pub(super) secrets: &'a [(String, String)],
    /// Where worker logs go.
    pub(super) dir: &'a Path,
}

/// Run the section with `jobs` no-op jobs; adds its figures to `results`.
///
/// # Errors
/// A service is missing, the worker died, or the jobs did not finish in time.
pub(super) async fn run(
    setup: Setup<'_>,
    jobs: usize,
    results: &mut BTreeMap<&'static str, f64>,
) -> anyhow::Result<()> {
    let settings = Settings {
        database_url: setup.database_url.to_owned(),
        redis_url: setup.redis_url.to_owned(),
        namespace: format!("bench-memory-{}", std::process::id()),
    };
    ordersync::queue::depth::delete_namespace(&settings.redis_url, &settings.namespace).await?;
    let measured = measure(&setup, &settings, jobs, results).await;
    // Also after a failure: a million leftover tasks would skew the next run.
    ordersync::queue::depth::delete_namespace(&settings.redis_url, &settings.namespace).await?;
    measured
}

async fn measure(
    setup: &Setup<'_>,
    settings: &Settings,
    jobs: usize,
    results: &mut BTreeMap<&'static str, f64>,
) -> anyhow::Result<()> {
    let deps = ordersync::startup::build(settings, setup.config, 8).await?;
    let mut conn = ordersync::queue::connect(&settings.redis_url).await?;
    let (runs_before, _, _) = ordersync::ledger::runs::totals(&deps.db).await?;
    let before = used_memory(&mut conn).await?;

    let (stop_sampling, sampling) = watch::channel(false);
    let sampler = tokio::spawn(sample_peak(conn.clone(), sampling));
    let mut worker = spawn_worker(
        setup.config_path,
        settings,
        &setup.dir.join("memory-worker.log"),
        setup.secrets,
        &[
            "--kinds",
            "noop",
            "--concurrency",
            "1000",
            "--fetch-batch",
            "500",
            "--janitor-grace",
            "0s",
            "--janitor-interval",
            "1s",
        ],
    )?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(900);
    let live = QueueKeys::new(&settings.namespace, JobKind::Noop, Lane::Live, 1);
    // Several producers overlap their Postgres and Redis round trips.
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|i| {
            let share = jobs / PRODUCERS + usize::from(i < jobs % PRODUCERS);
            tokio::spawn(produce(
                deps.enqueuer.clone(),
                conn.clone(),
                live.clone(),
                share,
                deadline,
            ))
        })
        .collect();
    for producer in producers {
        producer.await??;
    }
    let expected = runs_before + jobs as i64;
    let last_finished = loop {
        let (done, _, last) = ordersync::ledger::runs::totals(&deps.db).await?;
        if done >= expected {
            break last.context("no runs recorded")?;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {jobs} jobs ran in time",
            done - runs_before
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let consumed_secs = started.elapsed().as_secs_f64();
    let queues: Vec<QueueKeys> = Lane::ALL
        .iter()
        .map(|lane| QueueKeys::new(&settings.namespace, JobKind::Noop, *lane, 1))
        .collect();
    loop {
        if finished_tasks_left(&mut conn, &queues).await? == 0 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the janitor did not clean up in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cleanup_secs = (chrono::Utc::now() - last_finished)
        .to_std()
        .unwrap_or_default()
        .as_secs_f64();
    stop_worker(&mut worker).await;
    let after = used_memory(&mut conn).await?;
    let _ = stop_sampling.send(true);
    let peak = sampler.await?.max(before).max(after);
    let (keys_left, bytes_left) = namespace_usage(&mut conn, &settings.namespace).await?;

    let mb = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    results.insert("memory_jobs", jobs as f64);
    results.insert("memory_jobs_per_s", jobs as f64 / consumed_secs);
    results.insert("redis_mem_before_mb", mb(before));
    results.insert("redis_mem_peak_mb", mb(peak));
    results.insert("redis_mem_after_mb", mb(after));
    results.insert("redis_mem_growth_mb", mb(after) - mb(before));
    results.insert("janitor_cleanup_secs", cleanup_secs);
    results.insert("redis_ns_keys_after", keys_left as f64);
    results.insert("redis_ns_kb_after", bytes_left as f64 / 1024.0);
    println!(
        "(h) {jobs} no-op jobs pushed and consumed in {consumed_secs:.1}s with the janitor on (grace 0); \
         Redis used_memory {:.1} MB before, {:.1} MB peak, {:.1} MB after; the janitor finished \
         {cleanup_secs:.1}s after the last job; {keys_left} keys ({:.1} KB) left in the namespace \
         (Redis at {}: used_memory is server-wide)",
        mb(before),
        mb(peak),
        mb(after),
        bytes_left as f64 / 1024.0,
        ordersync::redact::redact_url(&settings.redis_url),
    );
    Ok(())
}

/// Enqueue `jobs` no-op jobs in batches, waiting while the backlog is full.
async fn produce(
    enqueuer: ordersync::queue::Enqueuer,
    mut conn: ConnectionManager,
    live: QueueKeys,
    jobs: usize,
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut pushed = 0;
    while pushed < jobs {
        let pending: u64 = conn.llen(live.config.active_jobs_list()).await?;
        if pending > MAX_BACKLOG {
            anyhow::ensure!(Instant::now() < deadline, "the worker stopped consuming");
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let batch = ENQUEUE_BATCH.min(jobs - pushed);
        // Ids chosen here make a retried enqueue idempotent: the ledger
        // ignores rows it has, Redis pushes it has (HSETNX).
        let batch_jobs: Vec<NewJob> = (0..batch)
            .map(|_| NewJob {
                job_id: Some(uuid::Uuid::now_v7()),
                ..NewJob::for_store(JobKind::Noop, "BETA")
            })
            .collect();
        let mut tries = 1;
        while let Err(error) = enqueuer.enqueue(Source::Bench, batch_jobs.clone()).await {
            // On a loaded machine a push can outlast the client's 500 ms
            // response timeout although Redis carried it out.
            anyhow::ensure!(tries < 5, "enqueue failed {tries} times: {error:#}");
            eprintln!("enqueue failed ({error:#}); trying the same batch again");
            tries += 1;
        }
        pushed += batch;
    }
    Ok(())
}

/// `used_memory` from `INFO memory`, in bytes.
async fn used_memory(conn: &mut ConnectionManager) -> anyhow::Result<u64> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO memory has no used_memory")
}

/// The highest `used_memory` seen until `stop` turns true.
async fn sample_peak(mut conn: ConnectionManager, mut stop: watch::Receiver<bool>) -> u64 {
    let mut peak = 0;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|stopped| *stopped) => return peak,
        }
        if let Ok(used) = used_memory(&mut conn).await {
            peak = peak.max(used);
        }
    }
}

/// Finished tasks still in Redis: done-set members and payloads.
async fn finished_tasks_left(
    conn: &mut ConnectionManager,
    queues: &[QueueKeys],
) -> anyhow::Result<u64> {
    let mut left = 0;
    for keys in queues {
        let done: u64 = conn.scard(keys.config.done_jobs_set()).await?;
        let payloads: u64 = conn.hlen(keys.config.job_data_hash()).await?;
        left += done + payloads;
    }
    Ok(left)
}

/// Keys left under `namespace` and their `MEMORY USAGE` in bytes.
async fn namespace_usage(
    conn: &mut ConnectionManager,
    namespace: &str,
) -> anyhow::Result<(u64, u64)> {
    let keys: Vec<String> = {
        let mut iter: redis::AsyncIter<'_, String> =
            conn.scan_match(format!("{namespace}:*")).await?;
        let mut keys = Vec::new();
        while let Some(key) = iter.next_item().await {
            keys.push(key?);
        }
        keys
    };
    let mut bytes = 0;
    for key in &keys {
        let usage: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query_async(conn)
            .await?;
        bytes += usage.unwrap_or(0);
    }
    Ok((keys.len() as u64, bytes))
}
