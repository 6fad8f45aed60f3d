//! The five job kinds: arguments (ids only) and `perform`, one file each.
//!
//! A handler returns what happened ([`Done`]) or why it failed
//! ([`JobError`], transient or permanent); `worker::settle` alone turns that
//! into a ledger row, a delayed retry, a deferral or a failure.

pub mod create_invoice;
pub mod fetch_tracking;
pub mod import_orders;
pub mod refresh_status;
pub mod send_sms;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::accounts::Accounts;
use crate::providers::{ErrorClass, ProviderError};
use crate::queue::{Enqueuer, JobEnvelope, RetryPolicy};

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
    /// Does nothing: the benchmark's and queue tests' job.
    Noop,
}

impl JobKind {
    /// Every kind, in the order a job travels.
    pub const ALL: [JobKind; 6] = [
        JobKind::ImportOrders,
        JobKind::FetchTracking,
        JobKind::RefreshStatus,
        JobKind::CreateInvoice,
        JobKind::SendSms,
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
            JobKind::Noop => "noop",
        }
    }

    /// Whether a job of this kind names an order.
    pub fn is_per_order(self) -> bool {
        matches!(
            self,
            JobKind::RefreshStatus | JobKind::CreateInvoice | JobKind::SendSms
        )
    }

    /// The default retry policy, and why:
    /// - imports and tracking syncs run periodically, so a few quick retries
    ///   suffice and the next run catches up;
    /// - status polls are cheap and also periodic;
    /// - invoices must get to the ERP eventually, so they retry longest;
    /// - a text that arrives hours late is worse than none, so SMS give up soonest.
    pub fn default_policy(self) -> RetryPolicy {
        let (max_attempts, base, cap) = match self {
            JobKind::ImportOrders | JobKind::FetchTracking => (5, 2, 120),
            JobKind::RefreshStatus => (6, 1, 300),
            JobKind::CreateInvoice => (8, 2, 900),
            JobKind::SendSms => (5, 1, 120),
            JobKind::Noop => (3, 1, 10),
        };
        RetryPolicy {
            max_attempts,
            base: Duration::from_secs(base),
            cap: Duration::from_secs(cap),
        }
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

/// Retry and deferral settings for every kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Policies {
    retry: std::collections::HashMap<JobKind, RetryPolicy>,
    /// How long a deferred job waits before it looks again.
    pub defer_delay: Duration,
    /// A job deferred for longer than this since its enqueue fails.
    pub defer_max_age: Duration,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            retry: JobKind::ALL
                .into_iter()
                .map(|k| (k, k.default_policy()))
                .collect(),
            defer_delay: Duration::from_secs(600),
            defer_max_age: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

impl Policies {
    /// The retry policy of `kind`.
    pub fn get(&self, kind: JobKind) -> RetryPolicy {
        self.retry
            .get(&kind)
            .copied()
            .unwrap_or_else(|| kind.default_policy())
    }

    /// Replace `kind`'s retry policy.
    pub fn set(&mut self, kind: JobKind, policy: RetryPolicy) {
        self.retry.insert(kind, policy);
    }
}

/// Everything a handler may use. Built once per process by `startup`.
#[derive(Debug, Clone)]
pub struct Deps {
    /// Postgres.
    pub db: PgPool,
    /// To enqueue follow-up jobs.
    pub enqueuer: Enqueuer,
    /// One provider client per configured account.
    pub accounts: Arc<Accounts>,
    /// Retry and deferral settings.
    pub policies: Arc<Policies>,
    /// How long an invoice or SMS claim protects an attempt in progress.
    pub claim_lease: Duration,
}

/// How a delivery ended well.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    /// The work was done; facts for the ledger.
    Succeeded(Option<serde_json::Value>),
    /// Nothing needed doing, and why.
    Skipped(String),
    /// Not yet (business rule), and why: rescheduled without using an attempt.
    Deferred(String),
    /// The provider does not know this order: an outcome of its own, counted
    /// per store, because a burst of them means a wrong key.
    NotFound(String),
}

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// Worth retrying: timeouts, connection errors, 5xx, 429.
    #[error("{class}: {message}")]
    Transient {
        /// Error class for the ledger.
        class: String,
        /// What went wrong (no secrets).
        message: String,
        /// The provider's HTTP status, if any.
        http_status: Option<u16>,
        /// The provider asked us to wait at least this long.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help: validation, bad credentials, bad payload.
    #[error("{class}: {message}")]
    Permanent {
        /// Error class for the ledger.
        class: String,
        /// What went wrong (no secrets).
        message: String,
        /// The provider's HTTP status, if any.
        http_status: Option<u16>,
    },
}

impl JobError {
    /// A permanent error of `class`.
    pub fn permanent(class: &str, message: impl Into<String>) -> Self {
        JobError::Permanent {
            class: class.to_owned(),
            message: message.into(),
            http_status: None,
        }
    }

    /// A transient error of `class`.
    pub fn transient(class: &str, message: impl Into<String>) -> Self {
        JobError::Transient {
            class: class.to_owned(),
            message: message.into(),
            http_status: None,
            retry_after: None,
        }
    }
}

impl From<ProviderError> for JobError {
    fn from(e: ProviderError) -> Self {
        let message = e.to_string();
        if e.is_transient() {
            JobError::Transient {
                class: e.class.as_str().to_owned(),
                message,
                http_status: e.http_status,
                retry_after: e.retry_after,
            }
        } else {
            JobError::Permanent {
                class: e.class.as_str().to_owned(),
                message,
                http_status: e.http_status,
            }
        }
    }
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        // Our own database failing is worth retrying; a constraint violation
        // would be a bug we want to see, but retrying it is harmless.
        JobError::transient("database", format!("database error: {e}"))
    }
}

/// In-job tries of one page of a paged listing before the whole job fails.
pub const PAGE_TRIES: u32 = 3;
/// Longest wait between page tries (a longer Retry-After fails the job,
/// whose own retry waits in Redis).
pub const PAGE_RETRY_CAP: Duration = Duration::from_secs(5);

/// Fetch one page of a paged listing, retrying a transient failure of that
/// page a few times in place. A store's sync reads hundreds of pages: without
/// this, one 5xx in 2% of requests fails most full syncs and re-reads every
/// page. The GETs are idempotent, and the waits are short and bounded.
///
/// # Errors
/// The last error after [`PAGE_TRIES`] tries, or the first permanent one.
pub async fn fetch_page<T, F, Fut>(mut fetch: F) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ProviderError>>,
{
    let mut delay = Duration::from_millis(100);
    let mut tries = 1;
    loop {
        match fetch().await {
            Err(e) if e.is_transient() && tries < PAGE_TRIES => {
                let wait = e.retry_after.unwrap_or(delay).max(delay);
                if wait > PAGE_RETRY_CAP {
                    return Err(e);
                }
                tracing::debug!(error = %e, tries, "page fetch failed; trying again");
                tokio::time::sleep(wait).await;
                delay *= 4;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Provider error class for "the provider does not know it".
pub fn is_not_found(e: &ProviderError) -> bool {
    e.class == ErrorClass::NotFound
}

/// Run one delivery of `envelope`.
///
/// # Errors
/// See [`JobError`]: the caller settles it.
pub async fn perform(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    match envelope.kind {
        JobKind::ImportOrders => import_orders::perform(envelope, deps).await,
        JobKind::FetchTracking => fetch_tracking::perform(envelope, deps).await,
        JobKind::RefreshStatus => refresh_status::perform(envelope, deps).await,
        JobKind::CreateInvoice => create_invoice::perform(envelope, deps).await,
        JobKind::SendSms => send_sms::perform(envelope, deps).await,
        JobKind::Noop => noop(envelope).await,
    }
}

/// The no-op job. Its args may ask it to take time, fail or panic, so queue
/// behaviour (crash recovery, retries, poison jobs) can be tested and
/// benchmarked without a provider.
async fn noop(envelope: &JobEnvelope) -> Result<Done, JobError> {
    if let Some(ms) = envelope.args.get("sleep_ms").and_then(|v| v.as_u64()) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    match envelope.args.get("fail").and_then(|v| v.as_str()) {
        Some("transient") => Err(JobError::transient(
            "test",
            "noop asked to fail transiently",
        )),
        Some("permanent") => Err(JobError::permanent(
            "test",
            "noop asked to fail permanently",
        )),
        Some("panic") => panic!("noop asked to panic"),
        // A job that kills its worker process every time (as an OOM would).
        Some("abort") => std::process::abort(),
        _ => Ok(Done::Succeeded(None)),
    }
}

/// The order a per-order job names.
///
/// # Errors
/// Permanent when the envelope has no order or the order is unknown.
pub(crate) async fn load_order(
    envelope: &JobEnvelope,
    deps: &Deps,
) -> Result<crate::ledger::orders::OrderRow, JobError> {
    let reference = envelope.order_ref.as_deref().ok_or_else(|| {
        JobError::permanent(
            "bad_payload",
            format!("{} job without an order reference", envelope.kind),
        )
    })?;
    let order = crate::ledger::orders::by_reference(&deps.db, reference)
        .await?
        .ok_or_else(|| {
            JobError::permanent(
                "unknown_order",
                format!("order {reference} is not in the database"),
            )
        })?;
    if order.store != envelope.store {
        return Err(JobError::permanent(
            "bad_payload",
            format!(
                "order {reference} belongs to store {}, not {}",
                order.store, envelope.store
            ),
        ));
    }
    Ok(order)
}
