//! The scheduler's defaults: which kinds run periodically and when, as cron
//! expressions with seconds (`sec min hour day month weekday`).

use std::str::FromStr;

use chrono::{DateTime, Utc};

use super::JobKind;

/// One kind's schedule.
#[derive(Debug, Clone)]
pub struct Entry {
    /// What it enqueues.
    pub kind: JobKind,
    /// When (cron with seconds: `sec min hour day month weekday`).
    pub schedule: cron::Schedule,
}

/// The default schedules (domain.md): invoices every 2 minutes, status polls
/// of providers without webhooks every 5, imports every 2 (new orders feed
/// the invoices), a full tracking sync every 6 hours, and the cancellation
/// of invoices whose orders the shop cancelled or refunded every 2 minutes
/// (webhooks enqueue them at once; this catches what only the import saw).
pub const DEFAULTS: [(JobKind, &str); 5] = [
    (JobKind::ImportOrders, "0 */2 * * * *"),
    (JobKind::CreateInvoice, "30 */2 * * * *"),
    (JobKind::CancelInvoice, "45 */2 * * * *"),
    (JobKind::RefreshStatus, "0 */5 * * * *"),
    (JobKind::FetchTracking, "0 0 */6 * * *"),
];

/// Parse `(kind, cron)` pairs.
///
/// # Errors
/// A cron expression does not parse (named with its kind).
pub fn entries(specs: &[(JobKind, String)]) -> anyhow::Result<Vec<Entry>> {
    specs
        .iter()
        .map(|(kind, expr)| {
            let schedule = cron::Schedule::from_str(expr).map_err(|e| {
                anyhow::anyhow!("schedule of {kind} '{expr}' is not a cron expression: {e}")
            })?;
            Ok(Entry {
                kind: *kind,
                schedule,
            })
        })
        .collect()
}

/// Whether the scheduler holds back `kind` for an order while a dead letter
/// of the same kind for that order is open. Only the per-order kinds: their
/// failures are about one order (a 404 at the shop, an unknown payment
/// method) and re-enqueueing them every tick only makes another dead letter
/// (720 a day at the 2-minute default). Per-store kinds keep running: an
/// import or a tracking sync that failed once must not stop a store for good.
pub fn held_by_open_failure(kind: JobKind) -> bool {
    matches!(kind, JobKind::CreateInvoice | JobKind::RefreshStatus)
}

/// What the dead letter and the order's trace say while the scheduler holds
/// an order back.
pub fn held_note(failed_at: DateTime<Utc>) -> String {
    format!(
        "not retried by the scheduler: open failure since {}; replaying or discarding it, or a change to the order in the shop, lets the scheduler enqueue it again",
        failed_at.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let specs: Vec<(JobKind, String)> = DEFAULTS
            .iter()
            .map(|(k, s)| (*k, (*s).to_owned()))
            .collect();
        assert_eq!(entries(&specs).unwrap().len(), 5);
    }

    #[test]
    fn only_per_order_kinds_are_held_by_open_failures() {
        assert!(held_by_open_failure(JobKind::CreateInvoice));
        assert!(held_by_open_failure(JobKind::RefreshStatus));
        assert!(!held_by_open_failure(JobKind::ImportOrders));
        assert!(!held_by_open_failure(JobKind::FetchTracking));
        let at = DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(held_note(at).starts_with(
            "not retried by the scheduler: open failure since 2026-03-01 10:00:00 UTC"
        ));
    }

    #[test]
    fn a_bad_expression_is_named_with_its_kind() {
        let err = entries(&[(JobKind::ImportOrders, "every day".into())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("schedule of import_orders 'every day'"),
            "{err}"
        );
    }
}
