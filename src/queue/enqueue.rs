//! Enqueue: a ledger row first (who asked, when, the payload), then the task
//! in Redis, in chunks so neither a huge Lua call nor a huge INSERT happens.

use std::sync::{Arc, LazyLock};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{JobEnvelope, JobKind, Lane, Policies, Source};
use crate::ledger;
use crate::queue::QueueKeys;

static PUSH_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/push.lua")));

/// Tasks per push script call and ledger rows per INSERT: large enough to be
/// fast, small enough to keep Redis responsive between chunks.
pub const ENQUEUE_CHUNK: usize = 1_000;

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Which handler runs it.
    pub kind: JobKind,
    /// The store it works for.
    pub store: String,
    /// The order reference, for per-order jobs.
    pub order_ref: Option<String>,
    /// Kind-specific arguments.
    pub args: serde_json::Value,
    /// A deterministic id makes the enqueue idempotent (follow-up jobs);
    /// `None` draws a fresh UUIDv7.
    pub job_id: Option<Uuid>,
    /// Run no earlier than this.
    pub run_at: Option<DateTime<Utc>>,
    /// The failed job this one replays.
    pub replay_of: Option<Uuid>,
}

impl NewJob {
    /// A per-store job to run now.
    pub fn for_store(kind: JobKind, store: &str) -> Self {
        Self {
            kind,
            store: store.to_owned(),
            order_ref: None,
            args: serde_json::Value::Null,
            job_id: None,
            run_at: None,
            replay_of: None,
        }
    }

    /// A per-order job to run now.
    pub fn for_order(kind: JobKind, store: &str, order_ref: &str) -> Self {
        Self {
            order_ref: Some(order_ref.to_owned()),
            ..Self::for_store(kind, store)
        }
    }
}

/// One delivery to push: the envelope and when it is due (`None`: now).
pub type Delivery = (JobEnvelope, Option<DateTime<Utc>>);

/// Deliveries as the ledger's insert takes them.
fn as_rows(deliveries: &[Delivery]) -> Vec<(&JobEnvelope, Option<DateTime<Utc>>)> {
    deliveries.iter().map(|(e, at)| (e, *at)).collect()
}

/// What an enqueue did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PushReport {
    /// Tasks ready to run: in an active list, or on the bulk lane waiting
    /// their store's turn (`fair.rs`).
    pub ready: u64,
    /// Tasks waiting in a delayed set.
    pub delayed: u64,
    /// Tasks already in Redis under the same task id (not pushed again).
    pub duplicates: u64,
}

impl std::ops::AddAssign for PushReport {
    fn add_assign(&mut self, other: Self) {
        self.ready += other.ready;
        self.delayed += other.delayed;
        self.duplicates += other.duplicates;
    }
}

/// Pushes jobs: the only way work enters the queues.
#[derive(Clone)]
pub struct Enqueuer {
    redis: ConnectionManager,
    db: PgPool,
    namespace: Arc<str>,
    policies: Arc<Policies>,
    /// Key names per kind, built once: they are needed on every delivery.
    keys: Arc<std::collections::HashMap<(JobKind, Lane), QueueKeys>>,
}

impl std::fmt::Debug for Enqueuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enqueuer")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Enqueuer {
    /// An enqueuer for the queues under `namespace`.
    pub fn new(
        redis: ConnectionManager,
        db: PgPool,
        namespace: &str,
        policies: Arc<Policies>,
    ) -> Self {
        let keys = JobKind::ALL
            .into_iter()
            .flat_map(|kind| Lane::ALL.map(|lane| (kind, lane)))
            .map(|(kind, lane)| {
                (
                    (kind, lane),
                    QueueKeys::new(
                        namespace,
                        kind,
                        lane,
                        crate::queue::keys::DEFAULT_FETCH_BATCH,
                    ),
                )
            })
            .collect();
        Self {
            redis,
            db,
            namespace: namespace.into(),
            policies,
            keys: Arc::new(keys),
        }
    }

    /// The queue namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The ledger this enqueuer records jobs in.
    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// Keys of one kind's queue.
    pub fn keys(&self, kind: JobKind, lane: Lane) -> &QueueKeys {
        &self.keys[&(kind, lane)]
    }

    /// Record `jobs` in the ledger as enqueued by `source`, then push them.
    /// Returns the envelopes pushed, in order.
    ///
    /// # Errors
    /// Postgres or Redis failed; jobs of earlier chunks stay enqueued. A job
    /// recorded whose push failed is open in the ledger, and the reconciler
    /// pushes it.
    pub async fn enqueue(
        &self,
        source: Source,
        jobs: Vec<NewJob>,
    ) -> anyhow::Result<(Vec<JobEnvelope>, PushReport)> {
        let now = Utc::now();
        let mut report = PushReport::default();
        let mut all = Vec::with_capacity(jobs.len());
        // Two stages in step: while one chunk's ledger rows are inserted, the
        // chunk before it (already committed) is pushed. A chunk is never
        // pushed before its rows commit, so no worker runs a job the ledger
        // does not know yet.
        let mut committed: Vec<Delivery> = Vec::new();
        for chunk in jobs.chunks(ENQUEUE_CHUNK) {
            let pending = self.deliveries(source, chunk, now);
            let rows = as_rows(&pending);
            let (inserted, pushed) = tokio::join!(
                ledger::jobs::insert(&self.db, &self.namespace, &rows),
                self.push(&committed),
            );
            report += pushed?;
            all.extend(committed.drain(..).map(|(e, _)| e));
            inserted.context("recording enqueued jobs in the ledger")?;
            committed = pending;
        }
        report += self.push(&committed).await?;
        all.extend(committed.into_iter().map(|(e, _)| e));
        Ok((all, report))
    }

    /// Record `jobs` in the ledger inside `tx`, the transaction of the change
    /// that causes them (a status change and its text): they exist exactly
    /// when their cause is committed. Nothing goes to Redis yet: after the
    /// commit, hand the deliveries to [`Enqueuer::push_committed`]. If this
    /// process dies in between, they are open in the ledger and the
    /// reconciler pushes them.
    ///
    /// # Errors
    /// Postgres failed (the caller's transaction is then unusable).
    pub async fn record(
        &self,
        tx: &mut sqlx::PgConnection,
        source: Source,
        jobs: &[NewJob],
    ) -> sqlx::Result<Vec<Delivery>> {
        let pending = self.deliveries(source, jobs, Utc::now());
        ledger::jobs::insert(&mut *tx, &self.namespace, &as_rows(&pending)).await?;
        Ok(pending)
    }

    /// Push deliveries recorded by [`Enqueuer::record`] once their
    /// transaction committed. A failure is logged, not returned: the work is
    /// already on record, and the reconciler pushes what Redis lacks.
    pub async fn push_committed(&self, deliveries: &[Delivery]) {
        if deliveries.is_empty() {
            return;
        }
        if let Err(error) = self.push(deliveries).await {
            tracing::warn!(
                error = format!("{error:#}"),
                jobs = deliveries.len(),
                "pushing committed follow-up jobs failed; the reconciler will push them"
            );
        }
    }

    /// First deliveries of `jobs`, enqueued by `source` at `now`.
    fn deliveries(&self, source: Source, jobs: &[NewJob], now: DateTime<Utc>) -> Vec<Delivery> {
        jobs.iter()
            .map(|job| {
                let envelope = JobEnvelope {
                    job_id: job.job_id.unwrap_or_else(Uuid::now_v7),
                    kind: job.kind,
                    store: job.store.clone(),
                    order_ref: job.order_ref.clone(),
                    args: job.args.clone(),
                    attempt: 1,
                    run: 1,
                    max_attempts: self.policies.get(job.kind).max_attempts,
                    enqueued_at: now,
                    source,
                    replay_of: job.replay_of,
                    ready_at: None,
                    infra_retries: 0,
                };
                (envelope, job.run_at)
            })
            .collect()
    }

    /// The Redis key of the metadata hash of `envelope`'s task.
    pub fn meta_key(&self, envelope: &JobEnvelope) -> String {
        format!(
            "{}:{}",
            self.keys(envelope.kind, Lane::of(envelope.source))
                .config
                .job_meta_hash(),
            envelope.task_id()
        )
    }

    /// The connection this enqueuer pushes on.
    pub fn connection(&self) -> ConnectionManager {
        self.redis.clone()
    }

    /// Push deliveries (first runs, retries, deferrals) to Redis. Tasks with
    /// a due time in the future wait in the kind's delayed set.
    ///
    /// # Errors
    /// Redis failed or an envelope did not serialize.
    pub async fn push(&self, deliveries: &[Delivery]) -> anyhow::Result<PushReport> {
        let mut report = PushReport::default();
        let mut by_queue: std::collections::BTreeMap<(JobKind, Lane), Vec<&Delivery>> =
            Default::default();
        for delivery in deliveries {
            by_queue
                .entry((delivery.0.kind, Lane::of(delivery.0.source)))
                .or_default()
                .push(delivery);
        }
        let now = Utc::now();
        let mut conn = self.redis.clone();
        for ((kind, lane), items) in by_queue {
            let keys = self.keys(kind, lane);
            for chunk in items.chunks(ENQUEUE_CHUNK) {
                let mut invocation = PUSH_SCRIPT.prepare_invoke();
                invocation
                    .key(keys.config.job_data_hash())
                    .key(keys.config.active_jobs_list())
                    .key(keys.config.signal_list())
                    .key(keys.config.job_meta_hash())
                    .key(keys.delayed())
                    .key(keys.fair_ring())
                    .key(keys.fair_prefix())
                    .arg("1")
                    .arg(keys.fair_window());
                for (envelope, run_at) in chunk {
                    // Rounded up: the promoter moves a task once its score is
                    // at most the current millisecond, so a due time inside
                    // a millisecond must not be promoted at that
                    // millisecond's start, before it is due.
                    let due_ms = run_at
                        .filter(|t| *t > now)
                        .map(|t| {
                            let ms = t.timestamp_millis();
                            if t.timestamp_subsec_nanos() % 1_000_000 == 0 {
                                ms
                            } else {
                                ms + 1
                            }
                        })
                        .unwrap_or(0);
                    let ready_at = if due_ms > 0 { *run_at } else { Some(now) };
                    let payload = serde_json::to_vec(&JobEnvelope {
                        ready_at,
                        ..(*envelope).clone()
                    })
                    .context("serializing a job envelope")?;
                    invocation
                        .arg(envelope.task_id())
                        .arg(payload)
                        .arg(envelope.max_attempts)
                        .arg(due_ms)
                        .arg(&envelope.store);
                }
                let (ready, delayed, duplicates): (u64, u64, u64) =
                    invocation.invoke_async(&mut conn).await.with_context(|| {
                        format!(
                            "pushing {} task(s) to Redis queue {}",
                            chunk.len(),
                            keys.name
                        )
                    })?;
                report += PushReport {
                    ready,
                    delayed,
                    duplicates,
                };
            }
        }
        Ok(report)
    }
}
