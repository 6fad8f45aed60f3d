//! (i) The reconciler's cost: a ledger of a million finished jobs and ten
//! thousand open ones that Redis does not hold (what a `FLUSHALL` leaves).
//! A pass reads only `open_jobs`, so the finished jobs should cost nothing.
//!
//! Figures: `reconcile_pass_ms` (the pass that finds and pushes the missing
//! ones), `reconcile_missing_per_s`, and `reconcile_idle_pass_ms` (the next
//! pass, with nothing missing: what every pass costs in steady state).

use std::collections::BTreeMap;
use std::time::Instant;

use ordersync::config::Config;
use ordersync::queue::reconcile::{self, Mode};
use ordersync::startup::Settings;

/// Seed the ledger and time two passes.
///
/// # Errors
/// Postgres or Redis failed, or the pass did not push every missing job.
pub(crate) async fn run(
    server_url: &str,
    redis_url: &str,
    config: &Config,
    finished: i64,
    missing: i64,
    results: &mut BTreeMap<&'static str, f64>,
) -> anyhow::Result<()> {
    let database_url =
        crate::database::recreate_scratch(server_url, "ordersync_bench_reconcile").await?;
    let settings = Settings {
        database_url,
        redis_url: redis_url.to_owned(),
        namespace: format!("bench-reconcile-{}", std::process::id()),
    };
    let deps = ordersync::startup::build(&settings, config, 8).await?;
    let queue = format!("{}:noop", settings.namespace);
    let seeding = Instant::now();
    // Finished jobs: a job row and its succeeded run each, in batches so no
    // statement holds a million rows at once.
    let batch = 100_000;
    let mut done = 0;
    while done < finished {
        let n = batch.min(finished - done);
        sqlx::query(
            "WITH ids AS (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)),
                  j AS (INSERT INTO jobs (job_id, kind, queue, store, payload, source, enqueued_at, max_attempts)
                        SELECT id, 'noop', $2, 'BETA', '{}'::jsonb, 'bench', now(), 3 FROM ids RETURNING job_id)
             INSERT INTO job_runs (job_id, run, attempt, worker, started_at, finished_at, outcome)
             SELECT job_id, 1, 1, 'bench', now(), now(), 'succeeded' FROM j",
        )
        .bind(n)
        .bind(&queue)
        .execute(&deps.db)
        .await?;
        done += n;
    }
    // Open jobs the ledger holds that Redis has never seen, enqueued long
    // enough ago to be past the reconciler's grace.
    sqlx::query(
        "WITH ids AS (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)),
              j AS (INSERT INTO jobs (job_id, kind, queue, store, payload, source, enqueued_at, max_attempts)
                    SELECT id, 'noop', $2, 'BETA',
                           jsonb_build_object('job_id', id, 'kind', 'noop', 'store', 'BETA', 'args', null,
                                              'attempt', 1, 'run', 1, 'max_attempts', 3,
                                              'enqueued_at', now() - interval '1 hour', 'source', 'bench'),
                           'bench', now() - interval '1 hour', 3 FROM ids
                    RETURNING job_id, enqueued_at)
         INSERT INTO open_jobs (job_id, kind, queue, store, due_at, enqueued_at)
         SELECT job_id, 'noop', $2, 'BETA', enqueued_at, enqueued_at FROM j",
    )
    .bind(missing)
    .bind(&queue)
    .execute(&deps.db)
    .await?;
    sqlx::query("ANALYZE").execute(&deps.db).await?;
    println!(
        "(i) seeded {finished} finished and {missing} open jobs in {:.1}s",
        seeding.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let report = reconcile::pass(
        &deps.enqueuer,
        reconcile::DEFAULT_GRACE,
        Mode::Repush,
        "bench",
    )
    .await?;
    let pass = started.elapsed();
    anyhow::ensure!(
        report.pushed == missing as u64,
        "the pass pushed {} of {missing} missing jobs: {report:?}",
        report.pushed
    );
    let started = Instant::now();
    let idle = reconcile::pass(
        &deps.enqueuer,
        reconcile::DEFAULT_GRACE,
        Mode::Repush,
        "bench",
    )
    .await?;
    let idle_pass = started.elapsed();
    anyhow::ensure!(idle.missing == 0, "a second pass still found {idle:?}");
    results.insert("reconcile_pass_ms", pass.as_secs_f64() * 1000.0);
    results.insert(
        "reconcile_missing_per_s",
        missing as f64 / pass.as_secs_f64(),
    );
    results.insert("reconcile_idle_pass_ms", idle_pass.as_secs_f64() * 1000.0);
    println!(
        "(i) a reconciler pass pushed {missing} missing jobs in {:.0} ms; the next pass took {:.0} ms",
        pass.as_secs_f64() * 1000.0,
        idle_pass.as_secs_f64() * 1000.0
    );
    ordersync::queue::depth::delete_namespace(redis_url, &settings.namespace).await?;
    deps.db.close().await;
    Ok(())
}
