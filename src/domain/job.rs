//! Jobs as every layer names them: the kinds, who enqueued a job, the
//! priority lanes, and the envelope a task carries through Redis.
//!
//! The envelope holds the job's own identity and history (ids only, never
//! models), so the outcome of an attempt is decided by us and not by
//! apalis-redis's built-in retry loop.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A job kind. Its name is the Redis queue name under the namespace:
/// renaming one orphans its queued jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Per store: page through the shop's orders modified since the last import.
    ImportOrders,
    /// Per store: page through the courier account's orders and fill tracking.
    FetchTracking,
    /// Per order: poll its courier status.
    RefreshStatus,
    /// Per order: create its ERP invoice once.
    CreateInvoice,
    /// Per order and status: text the customer once.
    SendSms,
    /// Per order: cancel its ERP invoice (submitting a draft first, cancelling
    /// payments against it first), or make sure none will be made.
    CancelInvoice,
    /// Per order: a Payment Entry for its live invoice, once.
    RecordPayment,
    /// Per order and courier outcome: update the shop's order status once.
    WriteBack,
    /// Does nothing: the benchmark's and queue tests' job.
    Noop,
}

impl JobKind {
    /// Every kind, in the order a job travels.
    pub const ALL: [JobKind; 9] = [
        JobKind::ImportOrders,
        JobKind::FetchTracking,
        JobKind::RefreshStatus,
        JobKind::CreateInvoice,
        JobKind::SendSms,
        JobKind::CancelInvoice,
        JobKind::RecordPayment,
        JobKind::WriteBack,
        JobKind::Noop,
    ];

    /// The stable name (queue name, ledger `kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::ImportOrders => "import_orders",
            JobKind::FetchTracking => "fetch_tracking",
            JobKind::RefreshStatus => "refresh_status",
            JobKind::CreateInvoice => "create_invoice",
            JobKind::SendSms => "send_sms",
            JobKind::CancelInvoice => "cancel_invoice",
            JobKind::RecordPayment => "record_payment",
            JobKind::WriteBack => "write_back",
            JobKind::Noop => "noop",
        }
    }

    /// Whether a job of this kind names an order.
    pub fn is_per_order(self) -> bool {
        matches!(
            self,
            JobKind::RefreshStatus
                | JobKind::CreateInvoice
                | JobKind::SendSms
                | JobKind::CancelInvoice
                | JobKind::RecordPayment
                | JobKind::WriteBack
        )
    }
}

impl std::fmt::Display for JobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown job kind '{s}' (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

/// Priority lane. Each kind has one Redis queue per lane, consumed by its own
/// apalis workers, so a bulk backlog (a 100,000-job backfill, a scheduler
/// tick of every order) never delays a webhook's or an operator's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// Webhooks, operators, replays, follow-ups.
    Live,
    /// The scheduler and backfills.
    Bulk,
}

impl Lane {
    /// Both lanes.
    pub const ALL: [Lane; 2] = [Lane::Live, Lane::Bulk];

    /// The lane of a job enqueued by `source`.
    pub fn of(source: Source) -> Lane {
        match source {
            Source::Scheduler | Source::Backfill => Lane::Bulk,
            _ => Lane::Live,
        }
    }
}

/// Who asked for a job. Stored in the ledger as its `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The periodic scheduler.
    Scheduler,
    /// A webhook delivery.
    Webhook,
    /// An operator on the command line.
    Cli,
    /// An operator through the admin API.
    Admin,
    /// A replay of a failed job.
    Replay,
    /// A backfill command.
    Backfill,
    /// `just demo`.
    Demo,
    /// `just bench`.
    Bench,
    /// Another job (e.g. a status change enqueues `send_sms`).
    Job,
}

impl Source {
    /// The ledger's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Scheduler => "scheduler",
            Source::Webhook => "webhook",
            Source::Cli => "cli",
            Source::Admin => "admin",
            Source::Replay => "replay",
            Source::Backfill => "backfill",
            Source::Demo => "demo",
            Source::Bench => "bench",
            Source::Job => "job",
        }
    }
}

/// One delivery of a job, as pushed to Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEnvelope {
    /// Stable across retries and deferrals; the ledger's key.
    pub job_id: Uuid,
    /// Which handler runs it.
    pub kind: JobKind,
    /// The store the job works for.
    pub store: String,
    /// The order reference (`ALPH-1001`) for per-order jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_ref: Option<String>,
    /// Kind-specific arguments (ids only).
    #[serde(default)]
    pub args: serde_json::Value,
    /// Attempt number this delivery uses (1-based).
    pub attempt: u32,
    /// Delivery number (1-based): attempts plus deferrals.
    pub run: u32,
    /// The attempt budget.
    pub max_attempts: u32,
    /// When the job was first enqueued (deferrals are bounded by its age).
    pub enqueued_at: DateTime<Utc>,
    /// Who enqueued it.
    pub source: Source,
    /// The failed job this one replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<Uuid>,
    /// When this delivery became due: set at push time (now, or a retry's
    /// or deferral's due time), so queue lag is measured from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_at: Option<DateTime<Utc>>,
    /// Deliveries retried because our own Postgres or Redis failed; they do
    /// not use attempts, and are bounded by [`MAX_INFRA_RETRIES`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub infra_retries: u32,
}

/// Deliveries a job may retry for our own outages (Postgres or Redis down)
/// before they count against its attempts: with backoff capped at the
/// kind's cap, hours of outage.
pub const MAX_INFRA_RETRIES: u32 = 50;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl JobEnvelope {
    /// The apalis task id of this delivery. Deterministic, so a redelivered
    /// job that pushes its follow-up again is deduplicated by Redis (HSETNX).
    pub fn task_id(&self) -> String {
        format!("{}:{}", self.job_id, self.run)
    }

    /// The next delivery after a transient failure: uses one more attempt.
    pub fn retry(&self) -> Self {
        Self {
            attempt: self.attempt + 1,
            run: self.run + 1,
            ..self.clone()
        }
    }

    /// The next delivery after a deferral: the attempt is not used up.
    pub fn deferral(&self) -> Self {
        Self {
            run: self.run + 1,
            ..self.clone()
        }
    }

    /// The next delivery after our own infrastructure failed: the attempt is
    /// not used up, the outage retries are counted.
    pub fn infra_retry(&self) -> Self {
        Self {
            run: self.run + 1,
            infra_retries: self.infra_retries + 1,
            ..self.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope() -> JobEnvelope {
        JobEnvelope {
            job_id: Uuid::now_v7(),
            kind: JobKind::CreateInvoice,
            store: "ALPH".into(),
            order_ref: Some("ALPH-1001".into()),
            args: serde_json::Value::Null,
            attempt: 1,
            run: 1,
            max_attempts: 5,
            enqueued_at: Utc::now(),
            source: Source::Cli,
            replay_of: None,
            ready_at: None,
            infra_retries: 0,
        }
    }

    #[test]
    fn retry_uses_an_attempt_and_deferral_does_not() {
        let first = envelope();
        let retried = first.retry();
        assert_eq!((retried.attempt, retried.run), (2, 2));
        let deferred = retried.deferral();
        assert_eq!((deferred.attempt, deferred.run), (2, 3));
        assert_eq!(deferred.job_id, first.job_id);
        assert_ne!(first.task_id(), retried.task_id());
    }

    #[test]
    fn envelope_round_trips_through_json() {
        let first = envelope();
        let json = serde_json::to_value(&first).unwrap();
        assert_eq!(json["kind"], "create_invoice");
        let back: JobEnvelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, first);
    }
}
