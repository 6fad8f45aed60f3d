//! One delivery: decode the envelope, run the handler (panics included),
//! settle, and only then let apalis ack the task.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use chrono::Utc;
use futures::FutureExt;
use serde::Deserialize as _;
use tracing::Instrument;

use crate::domain::{FailureClass, JobEnvelope, RunOutcome};
use crate::jobs::{self, Deps, JobError};
use crate::ledger::runs::{RunRecord, RunWriter};
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
        attempts: envelope.attempt,
        outcome: decision.outcome.as_str(),
        fingerprint: crate::failures::fingerprint(envelope.kind, error_class, &error_message),
        error_class,
        error_message,
        http_status: decision.http_status,
    }
}

/// What became of an earlier delivery of the same run.
enum PreviousDelivery {
    /// This is the first.
    None,
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
                PreviousDelivery::None => self.perform(&envelope).await,
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
                self.retry_until_done("push follow-up delivery", || self.deps.enqueuer.push(&delivery)).await;
            }
            if let (true, Some(class)) = (decision.outcome.is_failure(), decision.error_class) {
                let dead = dead_letter(&envelope, &decision, class);
                self.retry_until_done("record the dead letter", || async {
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

    /// Run the handler; a panic is a failed attempt (retried within the
    /// budget, then failed), never apalis's own retry loop.
    async fn perform(&self, envelope: &JobEnvelope) -> Result<jobs::Done, JobError> {
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
        let starts = match self
            .starts
            .record(self.deps.enqueuer.meta_key(envelope))
            .await
        {
            Ok(n) => n,
            Err(error) => {
                job_span(envelope).in_scope(
                    || tracing::warn!(%error, "could not count the delivery's start; running it"),
                );
                return PreviousDelivery::None;
            }
        };
        if starts <= 1 {
            return PreviousDelivery::None;
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
        tracing::error!(%error, ?job_id, "undecodable job payload");
        let Some(job_id) = job_id else {
            // No ledger row can name it; the log line above is its record.
            return;
        };
        let run = payload.get("run").and_then(|v| v.as_u64()).unwrap_or(1) as u32;
        let attempt = payload.get("attempt").and_then(|v| v.as_u64()).unwrap_or(1) as u32;
        let message = format!("payload does not deserialize: {error}");
        let kind = payload
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("unknown")
            .to_owned();
        let dead = crate::ledger::dead_letters::NewDeadLetter {
            job_id,
            fingerprint: crate::failures::fingerprint_named(
                &kind,
                FailureClass::BadPayload,
                &message,
            ),
            kind,
            store: payload
                .get("store")
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .to_owned(),
            order_ref: payload
                .get("order_ref")
                .and_then(|s| s.as_str())
                .map(str::to_owned),
            payload: payload.clone(),
            attempts: attempt.max(1),
            outcome: RunOutcome::Failed.as_str(),
            error_class: FailureClass::BadPayload,
            error_message: message.clone(),
            http_status: None,
        };
        if let Err(error) = crate::ledger::dead_letters::insert(&self.deps.db, &dead).await {
            // The job id names no enqueued job (a hand-made payload): the run
            // row below and the log line are its record.
            tracing::warn!(%error, "no dead letter for an undecodable payload");
        }
        self.commit(RunRecord {
            job_id,
            run: run.max(1),
            attempt: attempt.max(1),
            worker: self.worker.clone(),
            started_at,
            finished_at: Utc::now(),
            outcome: RunOutcome::Failed,
            error_class: Some(FailureClass::BadPayload),
            error_message: Some(message),
            http_status: None,
            next_run_at: None,
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

    async fn retry_until_done<F, Fut, T>(&self, what: &str, mut op: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<T>>,
    {
        let mut delay = std::time::Duration::from_millis(50);
        loop {
            match op().await {
                Ok(_) => return,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "{what} failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
    }
}
