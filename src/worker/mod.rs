//! The worker process: one apalis worker per consumed queue, our promoter,
//! the janitor, wake-ups by Redis pub/sub, and a graceful stop
//! (`shutdown.rs`).

pub mod execute;
pub mod registry;
pub mod settle;
pub mod shutdown;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use apalis::prelude::*;
use apalis_redis::RedisStorage;
use futures::StreamExt;
use tokio::sync::watch;

use crate::domain::{JobKind, Lane};
use crate::jobs::Deps;
use crate::ledger::runs::RunWriter;
use crate::queue::keys::DEFAULT_FETCH_BATCH;
use crate::queue::{janitor, liveness, promoter, quarantine, reconcile, QueueKeys};
pub use execute::Executor;
use shutdown::{Drain, Roster};

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Redis URL.
    pub redis_url: String,
    /// Kinds to consume.
    pub kinds: Vec<JobKind>,
    /// Concurrent handlers per kind (overrides the registry's defaults).
    pub concurrency: HashMap<JobKind, usize>,
    /// Tasks fetched per round trip.
    pub fetch_batch: usize,
    /// apalis workers (each with its own connection) per queue.
    pub fetchers: usize,
    /// Fallback poll when no pub/sub wake-up arrives (an idle worker
    /// normally wakes on the push's PUBLISH within a millisecond or two).
    pub poll_interval: Duration,
    /// Heartbeat period (orphaned jobs wait `heartbeat x missed_heartbeats`).
    pub heartbeat: Duration,
    /// Heartbeats a worker may miss before its jobs are re-enqueued.
    pub missed_heartbeats: usize,
    /// Failed-job records older than this are pruned (hourly).
    pub dead_letter_retention: Duration,
    /// Unique name: host, pid and a random suffix, so a restarted process
    /// never waits on its dead predecessor's registration.
    pub name: String,
    /// After a stop is requested, how long running jobs may take to finish;
    /// the rest are cut off and handed back to the queue.
    pub shutdown_timeout: Duration,
    /// Finished tasks are deleted from Redis once this old (see
    /// [`janitor::DEFAULT_GRACE`] for why it must outlast a redelivery).
    pub janitor_grace: Duration,
    /// How long the janitor waits after a sweep that found nothing to delete.
    pub janitor_interval: Duration,
    /// How often the reconciler's lease holder compares the ledger's open
    /// jobs with Redis (see `queue/reconcile.rs`).
    pub reconcile_interval: Duration,
    /// Jobs younger than this are left to their own push.
    pub reconcile_grace: Duration,
}

impl WorkerOptions {
    /// Defaults for `redis_url`: every real kind, registry concurrency.
    pub fn new(redis_url: &str) -> Self {
        Self {
            redis_url: redis_url.to_owned(),
            kinds: registry::default_kinds(),
            concurrency: HashMap::new(),
            fetch_batch: DEFAULT_FETCH_BATCH,
            fetchers: DEFAULT_FETCHERS,
            poll_interval: Duration::from_millis(200),
            heartbeat: crate::queue::keys::HEARTBEAT_INTERVAL,
            missed_heartbeats: crate::queue::keys::MISSED_HEARTBEATS,
            dead_letter_retention: DEAD_LETTER_RETENTION,
            name: unique_worker_name(),
            shutdown_timeout: shutdown::DEFAULT_SHUTDOWN_TIMEOUT,
            janitor_grace: janitor::DEFAULT_GRACE,
            janitor_interval: janitor::DEFAULT_INTERVAL,
            reconcile_interval: reconcile::DEFAULT_INTERVAL,
            reconcile_grace: reconcile::DEFAULT_GRACE,
        }
    }

    fn concurrency_of(&self, kind: JobKind) -> usize {
        self.concurrency
            .get(&kind)
            .copied()
            .unwrap_or_else(|| registry::default_concurrency(kind))
            .max(1)
    }
}

/// apalis workers per queue in one process, by default.
pub const DEFAULT_FETCHERS: usize = 2;

/// Default retention of failed-job records.
pub const DEAD_LETTER_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// `host-pid-xxxx`.
pub fn unique_worker_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let suffix: u16 = rand::random();
    format!("{host}-{}-{suffix:04x}", std::process::id())
}

/// Run workers for `options.kinds` until `shutdown` resolves; then fetch
/// nothing more, let running jobs finish within `options.shutdown_timeout`,
/// and hand everything else back to the queue (see `shutdown.rs`).
///
/// # Errors
/// Redis is unreachable at start-up.
pub async fn run(
    deps: Deps,
    runs: RunWriter,
    options: WorkerOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let client = redis::Client::open(options.redis_url.as_str()).context("invalid Redis URL")?;
    let namespace = deps.enqueuer.namespace().to_owned();
    let starts = crate::queue::starts::StartRecorder::start(
        client
            .get_connection_manager()
            .await
            .context("connecting to Redis")?,
        &namespace,
    );
    let executor = Arc::new(Executor {
        deps,
        runs,
        worker: options.name.as_str().into(),
        starts,
        metrics: crate::ops::metrics::JobMetrics::new(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut promote_conn = client
        .get_connection_manager()
        .await
        .context("connecting to Redis")?;
    let queues: Vec<(JobKind, Lane, QueueKeys)> = options
        .kinds
        .iter()
        .flat_map(|kind| Lane::ALL.map(|lane| (*kind, lane)))
        .map(|(kind, lane)| {
            let keys = QueueKeys::new(&namespace, kind, lane, options.fetch_batch)
                .with_liveness(options.heartbeat, options.missed_heartbeats);
            (kind, lane, keys)
        })
        .collect();
    let keys: Vec<QueueKeys> = queues.iter().map(|(_, _, k)| k.clone()).collect();
    // Promote before the first fetch: a restarted worker facing thousands of
    // due retries must not hand them to apalis's fetch in one go.
    for k in &keys {
        promoter::promote_due(&mut promote_conn, k)
            .await
            .context("promoting due tasks")?;
    }
    let promoter_task = tokio::spawn(promote_loop(promote_conn, keys.clone(), stop_rx.clone()));
    let pruner_task = tokio::spawn(prune_loop(
        executor.deps.db.clone(),
        options.dead_letter_retention,
        stop_rx.clone(),
    ));
    let redelivery_window = options.heartbeat * (options.missed_heartbeats as u32 + 1);
    if options.janitor_grace < redelivery_window {
        tracing::warn!(
            grace = %humantime::format_duration(options.janitor_grace),
            redelivery_window = %humantime::format_duration(redelivery_window),
            "janitor grace is shorter than a crashed worker's redelivery window: \
             a follow-up re-pushed by a late redelivery could run twice"
        );
    }
    let janitor_task = tokio::spawn(janitor::run(
        client
            .get_connection_manager()
            .await
            .context("connecting to Redis")?,
        keys.clone(),
        options.janitor_grace,
        options.janitor_interval,
        stop_rx.clone(),
    ));
    let drain = Arc::new(Drain::new());
    let roster = Arc::new(Roster::default());
    let shutdown_conn = client
        .get_connection_manager()
        .await
        .context("connecting to Redis")?;
    // Heartbeats of our own, on their own connection and timer: they go on
    // while every handler waits on a stalled Postgres.
    let liveness_task = tokio::spawn(liveness_loop(
        client
            .get_connection_manager()
            .await
            .context("connecting to Redis")?,
        namespace.clone(),
        options.name.clone(),
        roster.clone(),
        options.heartbeat,
    ));
    let maintenance_task = tokio::spawn(maintenance_loop(
        executor.clone(),
        client
            .get_connection_manager()
            .await
            .context("connecting to Redis")?,
        options.name.clone(),
        keys.clone(),
        options.reconcile_interval,
        options.reconcile_grace,
        stop_rx.clone(),
    ));

    tracing::info!(worker = %options.name, %namespace, kinds = %options.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","), "worker starting");
    let mut queue_tasks = Vec::new();
    for (kind, lane, k) in queues {
        // apalis runs fetch and ack strictly one after the other per worker;
        // several fetchers per queue overlap those round trips. Each lane has
        // its own fetchers and concurrency, so bulk work never blocks live work.
        let fetchers = options.fetchers.max(1);
        let concurrency = options.concurrency_of(kind).div_ceil(fetchers);
        for fetcher in 0..fetchers {
            let lane_name = match lane {
                Lane::Live => "",
                Lane::Bulk => "-bulk",
            };
            queue_tasks.push(tokio::spawn(supervise_queue(
                client.clone(),
                kind,
                k.clone(),
                concurrency,
                options.poll_interval,
                format!("{}-{}{lane_name}-{fetcher}", options.name, kind.as_str()),
                executor.clone(),
                Workers {
                    drain: drain.clone(),
                    roster: roster.clone(),
                    stop: stop_rx.clone(),
                },
            )));
        }
    }
    shutdown.await;
    tracing::info!(
        worker = %options.name,
        timeout = %humantime::format_duration(options.shutdown_timeout),
        "shutdown requested: fetching nothing more, finishing running jobs"
    );
    let _ = stop_tx.send(true);
    shutdown::Shutdown {
        conn: shutdown_conn,
        queue_tasks,
        drain,
        roster,
        timeout: options.shutdown_timeout,
        liveness: liveness_task,
        process: options.name.clone(),
        namespace: namespace.clone(),
    }
    .finish()
    .await;
    let _ = maintenance_task.await;
    let _ = promoter_task.await;
    let _ = pruner_task.await;
    let _ = janitor_task.await;
    tracing::info!(worker = %options.name, "worker stopped");
    Ok(())
}

async fn promote_loop(
    mut conn: redis::aio::ConnectionManager,
    keys: Vec<QueueKeys>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(promoter::PROMOTE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        for k in &keys {
            if let Err(error) = promoter::promote_due(&mut conn, k).await {
                tracing::warn!(%error, queue = %k.name, "promoting due tasks failed");
            }
        }
    }
}

/// Refresh this process's heartbeat and every registration it holds, every
/// half heartbeat, until aborted (at the end of shutdown).
async fn liveness_loop(
    mut conn: redis::aio::ConnectionManager,
    namespace: String,
    process: String,
    roster: Arc<Roster>,
    heartbeat: Duration,
) {
    let mut tick = tokio::time::interval((heartbeat / 2).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(error) =
            liveness::heartbeat(&mut conn, &namespace, &process, &roster.all()).await
        {
            tracing::warn!(%error, "heartbeat failed");
        }
    }
}

/// The lease holder's housekeeping, at start-up and every `interval`: bring
/// back what Redis lost (the reconciler), and delete what dead workers left.
#[allow(clippy::too_many_arguments)]
async fn maintenance_loop(
    executor: Arc<Executor>,
    mut conn: redis::aio::ConnectionManager,
    process: String,
    queues: Vec<QueueKeys>,
    interval: Duration,
    grace: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let enqueuer = &executor.deps.enqueuer;
    // Keys from before registrations were listed are found by one SCAN, the
    // first time this process holds the lease.
    let mut swept_keyspace = false;
    loop {
        match reconcile::hold_lease(&mut conn, enqueuer.namespace(), &process, interval * 3).await {
            Ok(true) => {
                let started = std::time::Instant::now();
                match reconcile::pass(enqueuer, grace, reconcile::Mode::Repush, &process).await {
                    Ok(report) if report.missing > 0 => {
                        tracing::warn!(
                            missing = report.missing,
                            pushed = report.pushed,
                            examined = report.examined,
                            elapsed_ms = started.elapsed().as_millis() as u64,
                            "reconciler: Redis had lost jobs the ledger holds; pushed them again"
                        );
                        executor.metrics.reconciled(&report);
                    }
                    Ok(report) => tracing::debug!(
                        examined = report.examined,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "reconciler: Redis holds every open job"
                    ),
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "reconciler pass failed")
                    }
                }
                match liveness::sweep_dead(
                    &mut conn,
                    enqueuer.namespace(),
                    &queues,
                    !swept_keyspace,
                )
                .await
                {
                    Ok(n) => {
                        swept_keyspace = true;
                        if n > 0 {
                            tracing::info!(removed = n, "removed keys left by dead workers");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "sweeping dead workers' keys failed"),
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "reconciler lease check failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Hourly: delete failed-job records past their retention. Several workers
/// doing it at once is harmless (a DELETE by age).
async fn prune_loop(db: sqlx::PgPool, retention: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let before = chrono::Utc::now()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        match crate::ledger::dead_letters::prune(&db, before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "pruned failed-job records past retention"),
            Err(error) => tracing::warn!(%error, "pruning failed-job records failed"),
        }
    }
}

/// What every apalis worker of the process shares besides the executor.
#[derive(Clone)]
struct Workers {
    /// Running deliveries (for shutdown).
    drain: Arc<Drain>,
    /// Registrations made (for shutdown).
    roster: Arc<Roster>,
    /// Turns true when the process stops.
    stop: watch::Receiver<bool>,
}

/// Keep one queue's apalis worker running: if it dies (Redis restarted, a
/// script error), start a new one under a new name after a short pause.
#[allow(clippy::too_many_arguments)]
async fn supervise_queue(
    client: redis::Client,
    kind: JobKind,
    keys: QueueKeys,
    concurrency: usize,
    poll_interval: Duration,
    base_name: String,
    executor: Arc<Executor>,
    workers: Workers,
) {
    let mut stop = workers.stop.clone();
    let mut generation = 0u32;
    loop {
        let name = if generation == 0 {
            base_name.clone()
        } else {
            format!("{base_name}-r{generation}")
        };
        workers.roster.add(&keys, &name);
        let result = run_queue(
            client.clone(),
            keys.clone(),
            concurrency,
            poll_interval,
            name.clone(),
            executor.clone(),
            workers.clone(),
        )
        .await;
        if *stop.borrow() {
            return;
        }
        generation += 1;
        // The dead registration is no longer kept alive: what it fetched and
        // did not finish is re-enqueued by a live worker once it lapses.
        workers.roster.remove(&name);
        match result {
            Ok(()) => tracing::warn!(queue = %keys.name, "worker ended unexpectedly; restarting"),
            Err(error) => {
                tracing::error!(queue = %keys.name, error = format!("{error:#}"), "worker failed; restarting")
            }
        }
        // A payload apalis could not decode ends the fetch loop that got it;
        // take it out of the queue before it ends the next one.
        quarantine_undecodable(&client, kind, &keys, &name, &executor).await;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Take the undecodable tasks fetched by dead apalis worker `name` out of
/// the queue and keep them in the ledger.
async fn quarantine_undecodable(
    client: &redis::Client,
    kind: JobKind,
    keys: &QueueKeys,
    name: &str,
    executor: &Executor,
) {
    let taken = match client.get_connection_manager().await {
        Ok(mut conn) => quarantine::take_undecodable(&mut conn, keys, name).await,
        Err(error) => Err(error),
    };
    match taken {
        Ok(tasks) => {
            for task in tasks {
                executor.quarantine(&keys.name, kind, task).await;
            }
        }
        Err(error) => {
            tracing::warn!(%error, queue = %keys.name, "could not look for undecodable tasks")
        }
    }
}

async fn run_queue(
    client: redis::Client,
    keys: QueueKeys,
    concurrency: usize,
    poll_interval: Duration,
    name: String,
    executor: Arc<Executor>,
    workers: Workers,
) -> anyhow::Result<()> {
    let conn = client
        .get_connection_manager()
        .await
        .context("connecting to Redis")?;
    let wake = wake_stream(&client, keys.wake_channel()).await?;
    let storage = RedisStorage::<serde_json::Value>::new(conn)
        .with_config(keys.config.clone())
        .poll_with_strategy(Strategy::new().stream(wake).interval(poll_interval));
    apalis_worker(storage, &name, concurrency, executor, workers)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))
}

type QueueStorage = PollWith<RedisStorage<serde_json::Value>, Strategy>;

/// The apalis worker of one queue, boxed: building it in a plain function
/// gives the compiler concrete types to prove `Send` against (an async fn
/// here trips rustc's higher-ranked lifetime inference).
fn apalis_worker(
    storage: QueueStorage,
    name: &str,
    concurrency: usize,
    executor: Arc<Executor>,
    workers: Workers,
) -> futures::future::BoxFuture<'static, Result<(), WorkerError>> {
    let worker = WorkerBuilder::new(name)
        .backend(storage)
        .data(executor)
        .data(workers.drain)
        .concurrency(concurrency)
        .parallelize(|task| tokio::spawn(task))
        .build(handle);
    let stop = workers.stop;
    Box::pin(worker.run_with_ctx(move |ctx| {
        let stop = stop.clone();
        async move { shutdown::stop_when_told(ctx, stop).await }
    }))
}

async fn handle(
    payload: serde_json::Value,
    executor: Data<Arc<Executor>>,
    drain: Data<Arc<Drain>>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let _running = drain.start(task_id.to_string());
    tokio::select! {
        biased;
        () = executor.execute(payload) => Ok(()),
        // Only after this worker's apalis loop is gone, so this cannot be
        // acked: the task is handed back to the queue.
        () = drain.cut_off_signal() => Err("cut off by the shutdown timeout".into()),
    }
}

/// A stream that yields whenever our push or promote scripts announce tasks
/// on `channel`. Wake-ups are coalesced: one pending wake is enough.
async fn wake_stream(
    client: &redis::Client,
    channel: String,
) -> anyhow::Result<futures::channel::mpsc::Receiver<()>> {
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .context("opening a Redis pub/sub connection")?;
    pubsub
        .subscribe(&channel)
        .await
        .context("subscribing to wake-ups")?;
    let (mut tx, rx) = futures::channel::mpsc::channel(1);
    tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while messages.next().await.is_some() {
            match tx.try_send(()) {
                Ok(()) => {}
                Err(e) if e.is_full() => {}
                Err(_) => return,
            }
        }
    });
    Ok(rx)
}
