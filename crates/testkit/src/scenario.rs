//! One fault scenario against real processes: private Redis and Postgres,
//! the provider simulator (with 5xx and latency), `ordersync-worker`
//! processes, and the production scheduler enqueueing the work. A fault
//! strikes mid-run; then the run must settle, and what the fault cost is
//! counted in the ledger and the simulator.
//!
//! The figures the issue asks for: jobs left non-terminal, status changes
//! whose text is neither sent nor visibly unknown (nor a visible failure),
//! duplicate invoices and texts, false `worker_died` attempts, attempts
//! spent on our own outage, and how long after the fault every job was
//! terminal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;
use ordersync::domain::{JobKind, NormalizedStatus, Source};
use ordersync::jobs::Deps;
use ordersync::queue::NewJob;
use ordersync::scheduler::{self, TickResult};
use rand::Rng as _;
use serde::Serialize;

use crate::stack::{wait_settled, Stack, StackOptions};

/// What strikes mid-run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` a random worker process every `every` for `lasting`, each
    /// replaced at once by a new process.
    KillStorm {
        /// Between kills.
        every: Duration,
        /// How long the storm lasts.
        lasting: Duration,
    },
    /// `FLUSHALL` on Redis.
    FlushAll,
    /// Redis killed and restarted without persistence: empty.
    RedisRestart,
    /// Redis killed and restarted with its append-only file (fsync every
    /// second): the last second may be lost.
    RedisRestartAof,
    /// Postgres stopped for `lasting`, then started again.
    PostgresDown {
        /// How long it is down.
        lasting: Duration,
    },
}

impl Fault {
    /// A short name for reports.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::KillStorm { .. } => "kill_storm",
            Fault::FlushAll => "flushall",
            Fault::RedisRestart => "redis_restart",
            Fault::RedisRestartAof => "redis_restart_aof",
            Fault::PostgresDown { .. } => "postgres_down",
        }
    }
}

/// How big a run is.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The fault.
    pub fault: Fault,
    /// Orders in the shops (two stores on two courier accounts).
    pub orders: usize,
    /// Worker processes.
    pub workers: usize,
    /// The `ordersync-worker` binary.
    pub worker_bin: PathBuf,
    /// Scheduler ticks before the fault strikes.
    pub ticks_before: u32,
    /// Scheduler ticks after it ends.
    pub ticks_after: u32,
    /// Provider latency.
    pub latency: Duration,
    /// Share of provider requests answered 5xx.
    pub error_rate: f64,
    /// How long the run may take to settle once the fault ended.
    pub settle_deadline: Duration,
    /// Where worker logs go (a temporary directory if `None`).
    pub log_dir: Option<PathBuf>,
}

impl Scenario {
    /// A short run for `just test`: a few hundred orders, two workers.
    pub fn short(fault: Fault, worker_bin: &Path) -> Self {
        Self {
            fault,
            orders: 300,
            workers: 2,
            worker_bin: worker_bin.to_owned(),
            ticks_before: 3,
            ticks_after: 2,
            latency: Duration::from_millis(20),
            error_rate: 0.1,
            settle_deadline: Duration::from_secs(60),
            log_dir: None,
        }
    }
}

/// What a run cost.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// The fault.
    pub fault: String,
    /// Jobs enqueued in all.
    pub jobs: u64,
    /// Deliveries recorded in all.
    pub runs: u64,
    /// Jobs still unfinished in the ledger at the end (must be 0).
    pub non_terminal: u64,
    /// Notifying status changes whose text is not sent, not visibly
    /// unknown and not a visible failure (must be 0).
    pub changes_without_text: u64,
    /// Notifying status changes in all.
    pub notifying_changes: u64,
    /// Texts sent (by the simulator's count).
    pub texts_sent: u64,
    /// Texts of unknown fate (listed by `ordersync sms unknown`).
    pub texts_unknown: u64,
    /// Texts that failed for good (dead letters).
    pub texts_failed: u64,
    /// The same text sent twice to the same phone (must be 0).
    pub duplicate_texts: u64,
    /// Invoices created (by the simulator's count).
    pub invoices: u64,
    /// More than one invoice for one order (must be 0).
    pub duplicate_invoices: u64,
    /// Attempts recorded as `worker_died`.
    pub worker_died_runs: u64,
    /// Jobs that ended failed because our own Postgres or Redis was down.
    pub failed_on_our_outage: u64,
    /// Deliveries the reconciler pushed again.
    pub reconciled: u64,
    /// Seconds from the fault's end until every job was terminal.
    pub settled_after_secs: f64,
}

impl Outcome {
    /// Whether the run kept every promise: nothing left unfinished, no
    /// change without its text, nothing done twice.
    pub fn is_clean(&self) -> bool {
        self.non_terminal == 0
            && self.changes_without_text == 0
            && self.duplicate_texts == 0
            && self.duplicate_invoices == 0
    }
}

/// Retry shapes of production, in milliseconds instead of minutes, and
/// deferrals (payment pending) that look again every half second.
const POLICIES: &str = "[deferral]\ndelay_ms = 500\nmax_age_secs = 3600\n\
[jobs.import_orders]\nbackoff_base_ms = 100\nbackoff_cap_ms = 2000\n\
[jobs.fetch_tracking]\nbackoff_base_ms = 100\nbackoff_cap_ms = 2000\n\
[jobs.refresh_status]\nbackoff_base_ms = 100\nbackoff_cap_ms = 2000\n\
[jobs.create_invoice]\nbackoff_base_ms = 100\nbackoff_cap_ms = 2000\n\
[jobs.send_sms]\nbackoff_base_ms = 100\nbackoff_cap_ms = 2000\n";

/// Between scheduler ticks (claims are per second, so at least one).
const TICK: Duration = Duration::from_millis(1_500);
/// How long after a tick a fault strikes: while its jobs are in flight.
const MID_TICK: Duration = Duration::from_millis(150);

struct Run {
    scenario: Scenario,
    stack: Stack,
}

/// Run `scenario` and count what the fault cost.
///
/// # Errors
/// A service could not be started, or the run did not settle in time (the
/// outcome is in the message).
pub async fn run(scenario: Scenario) -> anyhow::Result<Outcome> {
    let mut run = Run::start(scenario).await?;
    let result = run.drive().await;
    run.stack.stop_workers();
    let outcome = result?;
    run.stack.sim.clone().shutdown().await;
    Ok(outcome)
}

impl Run {
    async fn start(scenario: Scenario) -> anyhow::Result<Self> {
        let stack = Stack::start(StackOptions {
            orders_per_store: scenario.orders / 2,
            append_only_redis: scenario.fault == Fault::RedisRestartAof,
            latency: scenario.latency,
            error_rate: scenario.error_rate,
            status_step: Duration::from_millis(700),
            policies: POLICIES.into(),
            log_dir: scenario.log_dir.clone(),
        })
        .await?;
        let mut run = Run { scenario, stack };
        for _ in 0..run.scenario.workers {
            run.stack.add_worker(&run.scenario.worker_bin)?;
        }
        Ok(run)
    }

    async fn drive(&mut self) -> anyhow::Result<Outcome> {
        let deps = self.stack.deps().await?;
        let stores = self.stack.stores();
        // What the shops and the courier hold first, as an operator would start.
        for kind in [JobKind::ImportOrders, JobKind::FetchTracking] {
            let jobs = stores.iter().map(|s| NewJob::for_store(kind, s)).collect();
            deps.enqueuer.enqueue(Source::Cli, jobs).await?;
            wait_settled(&deps.db, Duration::from_secs(60)).await?;
        }
        for _ in 0..self.scenario.ticks_before {
            self.tick(&deps, &stores).await;
            tokio::time::sleep(TICK).await;
        }
        let fault_ended = self.strike(&deps, &stores).await?;
        let deps = self.stack.deps().await?;
        for _ in 0..self.scenario.ticks_after {
            self.tick(&deps, &stores).await;
            tokio::time::sleep(TICK).await;
        }
        self.pay_pending_orders(&stores);
        let settled = wait_settled(&deps.db, self.scenario.settle_deadline).await;
        let settled_after = fault_ended.elapsed();
        let outcome = self.count(&deps, settled_after).await?;
        if settled.is_err() {
            let whereabouts = self.stack.open_job_whereabouts(&deps).await?;
            anyhow::bail!(
                "the run did not settle within {:?} of the fault: {outcome:?}; \
                 where the unfinished jobs' next deliveries are: {whereabouts}; worker logs in {}",
                self.scenario.settle_deadline,
                self.stack.logs.display()
            );
        }
        Ok(outcome)
    }

    /// One scheduler tick of every periodic kind for every store, as the
    /// production scheduler does it. Failures during a fault are expected.
    async fn tick(&self, deps: &Deps, stores: &[String]) {
        let tick = Utc::now();
        if let Ok(mut conn) = ordersync::queue::connect(&self.stack.settings.redis_url).await {
            for store in stores {
                for kind in [JobKind::RefreshStatus, JobKind::CreateInvoice] {
                    match scheduler::tick_store(deps, &mut conn, store, kind, tick, TICK).await {
                        Ok(TickResult::Enqueued { .. } | TickResult::Skipped(_)) => {}
                        Err(error) => {
                            tracing::debug!(%store, %kind, error = format!("{error:#}"), "tick failed (fault in progress?)")
                        }
                    }
                }
            }
        }
    }

    /// Customers pay: pending orders become payable, so deferred invoices end.
    fn pay_pending_orders(&self, stores: &[String]) {
        for store in stores {
            for order in self.stack.sim.shop_orders(store) {
                let status = order["status"].as_str().unwrap_or_default();
                if ordersync::domain::payment::is_awaiting_payment(status) {
                    if let Some(id) = order["id"].as_i64() {
                        self.stack
                            .sim
                            .set_shop_order_status(store, id, "processing");
                    }
                }
            }
        }
    }

    /// Make the fault happen while the scheduler keeps ticking; returns when
    /// it ended.
    async fn strike(&mut self, deps: &Deps, stores: &[String]) -> anyhow::Result<Instant> {
        match self.scenario.fault {
            Fault::KillStorm { every, lasting } => {
                let until = Instant::now() + lasting;
                while Instant::now() < until {
                    // Kill while the tick's jobs are in flight, not in the
                    // quiet after they drained.
                    self.tick(deps, stores).await;
                    let into_tick = Duration::from_millis(rand::rng().random_range(20..300));
                    tokio::time::sleep(into_tick).await;
                    let victim = rand::rng().random_range(0..self.stack.workers.len());
                    self.stack
                        .replace_worker(victim, &self.scenario.worker_bin)?;
                    tokio::time::sleep(every.saturating_sub(into_tick)).await;
                }
            }
            Fault::FlushAll => {
                self.tick(deps, stores).await;
                tokio::time::sleep(MID_TICK).await;
                self.stack.redis.flushall().await?;
            }
            Fault::RedisRestart | Fault::RedisRestartAof => {
                self.tick(deps, stores).await;
                tokio::time::sleep(MID_TICK).await;
                self.stack.redis.restart()?;
            }
            Fault::PostgresDown { lasting } => {
                self.tick(deps, stores).await;
                tokio::time::sleep(MID_TICK).await;
                self.stack.postgres.stop();
                let until = Instant::now() + lasting;
                while Instant::now() < until {
                    self.tick(deps, stores).await;
                    tokio::time::sleep(TICK).await;
                }
                self.stack.postgres.restart()?;
            }
        }
        Ok(Instant::now())
    }

    async fn count(&self, deps: &Deps, settled_after: Duration) -> anyhow::Result<Outcome> {
        let db = &deps.db;
        let scalar = |sql: &'static str| async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(db)
                .await
                .map(|n| n.max(0) as u64)
        };
        let notifying: Vec<&str> = NormalizedStatus::ALL
            .iter()
            .filter(|s| s.notifies_customer())
            .map(|s| s.as_str())
            .collect();
        // A change is a history row after an earlier one with another status.
        let changes_sql = "WITH changes AS (
                 SELECT h.order_id, h.status,
                        lag(h.status) OVER (PARTITION BY h.order_id ORDER BY h.id) AS previous
                 FROM order_status_history h)
             SELECT count(*) FILTER (WHERE NOT EXISTS (
                        SELECT 1 FROM sms_messages m
                        WHERE m.order_id = c.order_id AND m.status = c.status
                          AND m.state IN ('sent', 'unknown'))
                    AND NOT EXISTS (
                        SELECT 1 FROM dead_letters d
                        WHERE d.kind = 'send_sms' AND d.order_ref = o.reference
                          AND d.payload #>> '{args,status}' = c.status)),
                    count(*)
             FROM changes c JOIN orders o ON o.id = c.order_id
             WHERE c.previous IS NOT NULL AND c.previous <> c.status
               AND c.status = ANY($1) AND o.phone IS NOT NULL";
        let (without_text, changes): (i64, i64) = sqlx::query_as(changes_sql)
            .bind(&notifying)
            .fetch_one(db)
            .await?;
        let texts = self.stack.sim_record("sms").await?;
        let mut per_text: HashMap<(String, String), u64> = HashMap::new();
        for t in &texts {
            *per_text
                .entry((
                    t["recipient"].to_string(),
                    t["message"].as_str().unwrap_or_default().to_owned(),
                ))
                .or_default() += 1;
        }
        let invoices = self.stack.sim_record("invoices").await?;
        let mut per_order: HashMap<String, u64> = HashMap::new();
        for invoice in &invoices {
            *per_order
                .entry(invoice["po_no"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        Ok(Outcome {
            fault: self.scenario.fault.name().to_owned(),
            jobs: scalar("SELECT count(*) FROM jobs").await?,
            runs: scalar("SELECT count(*) FROM job_runs").await?,
            non_terminal: scalar("SELECT count(*) FROM open_jobs").await?,
            changes_without_text: without_text.max(0) as u64,
            notifying_changes: changes.max(0) as u64,
            texts_sent: texts.len() as u64,
            texts_unknown: scalar("SELECT count(*) FROM sms_messages WHERE state = 'unknown'")
                .await?,
            texts_failed: scalar(
                "SELECT count(*) FROM dead_letters WHERE kind = 'send_sms' AND resolution IS NULL",
            )
            .await?,
            duplicate_texts: per_text.values().filter(|n| **n > 1).map(|n| n - 1).sum(),
            invoices: invoices.len() as u64,
            duplicate_invoices: per_order.values().filter(|n| **n > 1).map(|n| n - 1).sum(),
            worker_died_runs: scalar(
                "SELECT count(*) FROM job_runs WHERE error_class = 'worker_died'",
            )
            .await?,
            failed_on_our_outage: scalar(
                "SELECT count(*) FROM dead_letters WHERE error_class IN ('database', 'queue')",
            )
            .await?,
            reconciled: scalar("SELECT count(*) FROM reconciled_jobs").await?,
            settled_after_secs: settled_after.as_secs_f64(),
        })
    }
}
