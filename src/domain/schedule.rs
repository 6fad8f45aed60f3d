//! The scheduler's defaults: which kinds run periodically and when, as cron
//! expressions with seconds (`sec min hour day month weekday`).

use std::str::FromStr;

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
