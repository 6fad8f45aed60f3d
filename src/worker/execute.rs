//! One delivery: decode the envelope, run the handler (panics included),
//! settle, and only then let apalis ack the task.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use chrono::Utc;
use futures::FutureExt;
use serde::Deserialize as _;
use tracing::Instrument;

use crate::domain::{FailureClass, JobEnvelope, JobKind, RunOutcome};
use crate::jobs::{self, Deps, JobError};
use crate::ledger::runs::{RunRecord, RunWriter};
use crate::ledger::{self, until_done};
use crate::queue::pause::PauseSnapshot;
use crate::queue::quarantine::Undecodable;
use crate::worker::settle;

/// The INFO span every logged line of a job carries.
fn job_span(envelope: &JobEnvelope) -> tracing::Span {
    tracing::info_span!(
        "job",
        job_id = %envelope.job_id,
        kind = %envelope.kind,
        store = %envelope.store,
        order = envelope.order_ref.as_deref().unwrap_or(""),
        attempt = envelope.attempt,
    )
}

/// The dead letter of a delivery that ended the job in failure (`decide`
/// gives every failure a class).
fn dead_letter(
    envelope: &JobEnvelope,
    decision: &settle::Decision,
    error_class: FailureClass,
) -> crate::ledger::dead_letters::NewDeadLetter {
    let error_message = decision.message.clone().unwrap_or_default();
    crate::ledger::dead_letters::NewDeadLetter {
        job_id: envelope.job_id,
        kind: envelope.kind.as_str().to_owned(),
        store: envelope.store.clone(),
        order_ref: envelope.order_ref.clone(),
        payload: serde_json::to_value(envelope).unwrap_or_default(),
        raw_payload: None,
        attempts: envelope.attempt,
        outcome: decision.outcome.as_str(),
        fingerprint: crate::failures::fingerprint(envelope.kind, error_class, &error_message),
        error_class,
        error_message,
        http_status: decision.http_status,
    }
}

/// A delivery that can never run (its payload is not a job), as much of it
/// as could be read.
struct Unrunnable {
    job_id: uuid::Uuid,
    run: u32,
    attempt: u32,
    kind: String,
    store: String,
    order_ref: Option<String>,
    message: String,
    payload: serde_json::Value,
    raw: Option<Vec<u8>>,
}

/// What became of an earlier delivery of the same run.
enum PreviousDelivery {
    /// This is the first; what was paused when it started (unknown when its
    /// start could not be counted: it runs, as it could not settle either).
    None(Option<Arc<PauseSnapshot>>),
    /// It settled (its ledger row exists) but was not acked.
    Settled,
    /// It started and never settled: its worker died.
    Died,
}

/// What every delivery in this process shares.
#[derive(Debug)]
pub struct Executor {
    /// Handler dependencies.
    pub deps: Deps,
    /// Group-commit ledger writer.
    pub runs: RunWriter,
    /// This process's worker name (in the ledger's `worker` column).
    pub worker: Arc<str>,
    /// Counts delivery starts in Redis, in batches.
    pub starts: crate::queue::starts::StartRecorder,
    /// Outcome counters, duration and queue-lag histograms.
    pub metrics: crate::ops::metrics::JobMetrics,
}

impl Executor {
    /// Run one task payload to its settled outcome. Never fails: every result,
    /// a handler panic and an undecodable payload included, becomes a ledger
    /// row, so apalis always acks and never applies its own retry loop.
    pub async fn execute(self: &Arc<Self>, payload: serde_json::Value) {
        let started_at = Utc::now();
        // Deserialize from a borrow: the payload is only needed again if it is bad.
        let envelope = match JobEnvelope::deserialize(&payload) {
            Ok(envelope) => envelope,
            Err(error) => return self.reject_payload(payload, error, started_at).await,
        };
        // A DEBUG span around the whole delivery (near free when disabled:
        // formatting five fields per job cost ~8% of no-op throughput); the
        // INFO and WARN lines below enter an INFO span with the same fields.
        let span = tracing::debug_span!(
            "job",
            job_id = %envelope.job_id,
            kind = %envelope.kind,
            store = %envelope.store,
            order = envelope.order_ref.as_deref().unwrap_or(""),
            attempt = envelope.attempt,
        );
        let due = envelope.ready_at.unwrap_or(envelope.enqueued_at);
        self.metrics.started(
            envelope.kind,
            (started_at - due).to_std().unwrap_or_default(),
        );
        async {
            let result = match self.previous_delivery(&envelope).await {
                PreviousDelivery::None(pauses) => self.perform(&envelope, pauses.as_deref()).await,
                PreviousDelivery::Settled => {
                    job_span(&envelope).in_scope(|| {
                        tracing::info!("delivery already settled before its worker died; not running it again")
                    });
                    return;
                }
                PreviousDelivery::Died => Err(JobError::transient(
                    FailureClass::WorkerDied,
                    format!(
                        "worker died during attempt {} (or was stopped past its shutdown timeout) before the job settled; the job was redelivered",
                        envelope.attempt
                    ),
                )),
            };
            let decision = settle::decide(&envelope, result, &self.deps.policies, Utc::now());
            if let Some((next, due)) = &decision.next {
                // The follow-up is in Redis before the ledger says so, and its
                // task id is deterministic: a crash in between re-pushes the
                // same id, which Redis deduplicates.
                let delivery = [(next.clone(), Some(*due))];
                until_done("push follow-up delivery", || self.deps.enqueuer.push(&delivery)).await;
            }
            if let (true, Some(class)) = (decision.outcome.is_failure(), decision.error_class) {
                let dead = dead_letter(&envelope, &decision, class);
                until_done("record the dead letter", || async {
                    crate::ledger::dead_letters::insert(&self.deps.db, &dead).await.map_err(anyhow::Error::from)
                })
                .await;
            }
            let record = decision.run_record(&envelope, &self.worker, started_at, Utc::now());
            job_span(&envelope).in_scope(|| match decision.outcome {
                RunOutcome::Failed => tracing::warn!(
                    error_class = decision.error_class.map(FailureClass::as_str).unwrap_or_default(),
                    reason = decision.message.as_deref().unwrap_or_default(),
                    "job failed"
                ),
                RunOutcome::Retry => tracing::info!(
                    error_class = decision.error_class.map(FailureClass::as_str).unwrap_or_default(),
                    reason = decision.message.as_deref().unwrap_or_default(),
                    next_run_at = %record.next_run_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    "job will retry"
                ),
                RunOutcome::NotFound => tracing::warn!(
                    reason = decision.message.as_deref().unwrap_or_default(),
                    "order not found at the courier"
                ),
                _ => tracing::debug!(outcome = decision.outcome.as_str(), "job done"),
            });
            self.metrics.settled(
                envelope.kind,
                decision.outcome,
                (record.finished_at - started_at).to_std().unwrap_or_default(),
            );
            self.commit(record).await;
        }
        .instrument(span)
        .await;
    }

    /// Run the handler unless a pause holds the job back; a panic is a
    /// failed attempt (retried within the budget, then failed), never
    /// apalis's own retry loop.
    async fn perform(
        &self,
        envelope: &JobEnvelope,
        pauses: Option<&PauseSnapshot>,
    ) -> Result<jobs::Done, JobError> {
        if let (Some(check), Some(snapshot)) = (&self.deps.pauses, pauses) {
            if let Some((scope, pause)) = check.holding(snapshot, envelope) {
                let paused_for = (Utc::now() - pause.at).to_std().unwrap_or_default();
                return Err(JobError::Transient {
                    class: FailureClass::Paused,
                    message: format!("{scope} is paused {}", pause.describe()),
                    http_status: None,
                    retry_after: Some(crate::queue::pause::recheck_after(paused_for)),
                });
            }
        }
        AssertUnwindSafe(jobs::perform(envelope, &self.deps))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(JobError::transient(
                    FailureClass::Panic,
                    format!("handler panicked: {what}"),
                ))
            })
    }

    /// Whether this delivery was started before: a job that kills its worker
    /// (abort, out of memory) must use up its attempts and end failed, not
    /// be redelivered forever.
    async fn previous_delivery(&self, envelope: &JobEnvelope) -> PreviousDelivery {
        let started = match self
            .starts
            .record(self.deps.enqueuer.meta_key(envelope))
            .await
        {
            Ok(started) => started,
            Err(error) => {
                job_span(envelope).in_scope(
                    || tracing::warn!(%error, "could not count the delivery's start (nor read the pauses); running it"),
                );
                return PreviousDelivery::None(None);
            }
        };
        if started.count <= 1 {
            return PreviousDelivery::None(Some(started.pauses));
        }
        loop {
            match crate::ledger::runs::exists(&self.deps.db, envelope.job_id, envelope.run).await {
                Ok(true) => return PreviousDelivery::Settled,
                Ok(false) => return PreviousDelivery::Died,
                Err(error) => {
                    tracing::error!(%error, "checking the ledger for a redelivered run failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// A payload that is not an envelope: fail it (it can never succeed),
    /// keeping whatever identity it has.
    async fn reject_payload(
        &self,
        payload: serde_json::Value,
        error: serde_json::Error,
        started_at: chrono::DateTime<Utc>,
    ) {
        let job_id = payload
            .get("job_id")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok());
        tracing::error!(%error, job_id = job_id.map(|id: uuid::Uuid| id.to_string()).unwrap_or_default(), "undecodable job payload");
        let Some(job_id) = job_id else {
            // No ledger row can name it; the log line above is its record.
            return;
        };
        let number = |field: &str| {
            payload
                .get(field)
                .and_then(|v| v.as_u64())
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(1)
                .max(1)
        };
        let text = |field: &str| {
            payload
                .get(field)
                .and_then(|s| s.as_str())
                .map(str::to_owned)
        };
        let unrunnable = Unrunnable {
            job_id,
            run: number("run"),
            attempt: number("attempt"),
            kind: text("kind").unwrap_or_else(|| "unknown".into()),
            store: text("store").unwrap_or_default(),
            order_ref: text("order_ref"),
            message: format!("payload does not deserialize: {error}"),
            payload: payload.clone(),
            raw: None,
        };
        self.fail_unrunnable(unrunnable, started_at).await;
    }

    /// A task of `queue` whose payload is not even JSON, already taken out of
    /// Redis: keep its bytes in the ledger, and when its id names a job, fail
    /// that job's delivery (`bad_payload`) so it is a dead letter, not a loop.
    pub async fn quarantine(&self, queue: &str, kind: JobKind, task: Undecodable) {
        let started_at = Utc::now();
        let (job_part, run_part) = task.task_id.split_once(':').unwrap_or((&task.task_id, "1"));
        let job_id = job_part.parse::<uuid::Uuid>().ok();
        let known = match job_id {
            Some(id) => {
                until_done("look the job up", || {
                    ledger::reconcile::job_exists(&self.deps.db, id)
                })
                .await
            }
            None => false,
        };
        let message = format!(
            "payload is not JSON ({}); kept byte for byte, never run",
            task.error
        );
        tracing::error!(%queue, task_id = %task.task_id, bytes = task.raw.len(), error = %task.error, "quarantined an undecodable task");
        let record = ledger::reconcile::QuarantinedTask {
            queue: queue.to_owned(),
            task_id: task.task_id.clone(),
            job_id: job_id.filter(|_| known),
            raw: task.raw.clone(),
            error: task.error.clone(),
        };
        until_done("keep the quarantined task", || {
            ledger::reconcile::quarantine(&self.deps.db, &record)
        })
        .await;
        let (Some(job_id), true) = (job_id, known) else {
            return;
        };
        let run = run_part.parse::<u32>().unwrap_or(1).max(1);
        let unrunnable = Unrunnable {
            job_id,
            run,
            attempt: run,
            kind: kind.as_str().to_owned(),
            store: String::new(),
            order_ref: None,
            message,
            payload: serde_json::json!({
                "undecodable_payload": String::from_utf8_lossy(&task.raw),
                "task_id": task.task_id,
            }),
            raw: Some(task.raw),
        };
        self.fail_unrunnable(unrunnable, started_at).await;
    }

    /// Dead-letter a delivery that can never run, and commit its run row
    /// (which closes the job in the ledger).
    async fn fail_unrunnable(&self, u: Unrunnable, started_at: chrono::DateTime<Utc>) {
        let dead = crate::ledger::dead_letters::NewDeadLetter {
            job_id: u.job_id,
            fingerprint: crate::failures::fingerprint_named(
                &u.kind,
                FailureClass::BadPayload,
                &u.message,
            ),
            kind: u.kind,
            store: u.store,
            order_ref: u.order_ref,
            payload: u.payload,
            raw_payload: u.raw,
            attempts: u.attempt,
            outcome: RunOutcome::Failed.as_str(),
            error_class: FailureClass::BadPayload,
            error_message: u.message.clone(),
            http_status: None,
        };
        if let Err(error) = crate::ledger::dead_letters::insert(&self.deps.db, &dead).await {
            // The job id names no enqueued job (a hand-made payload): the run
            // row below and the log line are its record.
            tracing::warn!(%error, "no dead letter for an undecodable payload");
        }
        self.commit(RunRecord {
            job_id: u.job_id,
            run: u.run,
            attempt: u.attempt,
            worker: self.worker.clone(),
            started_at,
            finished_at: Utc::now(),
            outcome: RunOutcome::Failed,
            error_class: Some(FailureClass::BadPayload),
            error_message: Some(u.message),
            http_status: None,
            next_run_at: None,
            next_envelope: None,
            detail: None,
        })
        .await;
    }

    async fn commit(&self, record: RunRecord) {
        if let Err(error) = self.runs.commit(record).await {
            // Only while shutting down; the task stays un-acked in Redis
            // and is redelivered.
            tracing::error!(%error, "ledger row not committed");
        }
    }
}
