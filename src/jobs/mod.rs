//! The job kinds: arguments (ids only) and `perform`, one file each.
//! The kinds themselves are named in [`crate::domain::job`].
//!
//! A handler returns what happened ([`Done`]) or why it failed
//! ([`JobError`], transient or permanent); `worker::settle` alone turns that
//! into a ledger row, a delayed retry, a deferral or a failure.

pub mod cancel_invoice;
pub mod create_invoice;
pub mod fetch_tracking;
pub mod import_orders;
pub mod record_payment;
pub mod refresh_status;
pub mod send_sms;
pub mod write_back;

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use crate::accounts::{AccountError, Accounts};
use crate::domain::{ErrorClass, FailureClass, JobEnvelope, JobKind, Policies, Provider};
use crate::providers::ProviderError;
use crate::queue::Enqueuer;

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
    /// Every provider request of a run passes it: the accounts' shared
    /// budgets (`crate::queue::ratelimit`). `None`: requests are not limited.
    pub gate: Option<Arc<dyn crate::providers::gate::RequestGate>>,
    /// Operators' pauses of stores, accounts and kinds
    /// (`crate::queue::pause`). `None`: nothing is ever paused.
    pub pauses: Option<crate::queue::pause::PauseCheck>,
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
    NotFound {
        /// Which provider said so.
        provider: Provider,
        /// What it did not know, and what to check.
        message: String,
    },
}

/// Why a delivery failed, and whether trying again can help.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    /// Worth retrying: timeouts, connection errors, 5xx, 429.
    #[error("{class}: {message}")]
    Transient {
        /// Error class for the ledger.
        class: FailureClass,
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
        class: FailureClass,
        /// What went wrong (no secrets).
        message: String,
        /// The provider's HTTP status, if any.
        http_status: Option<u16>,
    },
}

impl JobError {
    /// A permanent error of `class`.
    pub fn permanent(class: FailureClass, message: impl Into<String>) -> Self {
        JobError::Permanent {
            class,
            message: message.into(),
            http_status: None,
        }
    }

    /// A transient error of `class`.
    pub fn transient(class: FailureClass, message: impl Into<String>) -> Self {
        JobError::Transient {
            class,
            message: message.into(),
            http_status: None,
            retry_after: None,
        }
    }

    /// The error's class.
    pub fn class(&self) -> FailureClass {
        match self {
            JobError::Transient { class, .. } | JobError::Permanent { class, .. } => *class,
        }
    }
}

impl From<ProviderError> for JobError {
    fn from(e: ProviderError) -> Self {
        let message = e.to_string();
        let class = FailureClass::Provider(e.provider, e.class);
        if e.is_transient() {
            JobError::Transient {
                class,
                message,
                http_status: e.http_status,
                retry_after: e.retry_after,
            }
        } else {
            JobError::Permanent {
                class,
                message,
                http_status: e.http_status,
            }
        }
    }
}

impl From<AccountError> for JobError {
    fn from(e: AccountError) -> Self {
        // A job for a store that is not (or no longer) configured cannot
        // succeed until someone changes the configuration.
        JobError::permanent(FailureClass::UnknownStore, e.to_string())
    }
}

impl From<sqlx::Error> for JobError {
    fn from(e: sqlx::Error) -> Self {
        // Our own database failing is worth retrying; a constraint violation
        // would be a bug we want to see, but retrying it is harmless.
        JobError::transient(FailureClass::Database, format!("database error: {e}"))
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

/// Run one delivery of `envelope` (the worker has checked the pauses).
///
/// # Errors
/// See [`JobError`]: the caller settles it.
pub async fn perform(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    match &deps.gate {
        Some(gate) => {
            crate::providers::gate::with_gate(gate.clone(), dispatch(envelope, deps)).await
        }
        None => dispatch(envelope, deps).await,
    }
}

async fn dispatch(envelope: &JobEnvelope, deps: &Deps) -> Result<Done, JobError> {
    match envelope.kind {
        JobKind::ImportOrders => import_orders::perform(envelope, deps).await,
        JobKind::FetchTracking => fetch_tracking::perform(envelope, deps).await,
        JobKind::RefreshStatus => refresh_status::perform(envelope, deps).await,
        JobKind::CreateInvoice => create_invoice::perform(envelope, deps).await,
        JobKind::SendSms => send_sms::perform(envelope, deps).await,
        JobKind::CancelInvoice => cancel_invoice::perform(envelope, deps).await,
        JobKind::RecordPayment => record_payment::perform(envelope, deps).await,
        JobKind::WriteBack => write_back::perform(envelope, deps).await,
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
            FailureClass::Test,
            "noop asked to fail transiently",
        )),
        Some("permanent") => Err(JobError::permanent(
            FailureClass::Test,
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
            FailureClass::BadPayload,
            format!("{} job without an order reference", envelope.kind),
        )
    })?;
    let order = crate::ledger::orders::by_reference(&deps.db, reference)
        .await?
        .ok_or_else(|| {
            JobError::permanent(
                FailureClass::UnknownOrder,
                format!("order {reference} is not in the database"),
            )
        })?;
    if order.store != envelope.store {
        return Err(JobError::permanent(
            FailureClass::BadPayload,
            format!(
                "order {reference} belongs to store {}, not {}",
                order.store, envelope.store
            ),
        ));
    }
    Ok(order)
}
