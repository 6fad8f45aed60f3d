//! What a worker process consumes, and how hard: one screen.

use crate::domain::JobKind;

/// Concurrent handlers per kind in one worker process, by default. Provider
/// calls are I/O-bound, so concurrency is cheap; the per-store kinds page
/// through whole accounts and are few, so they get less.
pub fn default_concurrency(kind: JobKind) -> usize {
    match kind {
        JobKind::ImportOrders | JobKind::FetchTracking => 8,
        JobKind::RefreshStatus => 200,
        JobKind::CreateInvoice
        | JobKind::CancelInvoice
        | JobKind::RecordPayment
        | JobKind::WriteBack => 50,
        JobKind::SendSms => 50,
        JobKind::Noop => 1_000,
    }
}

/// Kinds a worker consumes unless told otherwise: all the real ones.
pub fn default_kinds() -> Vec<JobKind> {
    JobKind::ALL
        .into_iter()
        .filter(|k| *k != JobKind::Noop)
        .collect()
}
