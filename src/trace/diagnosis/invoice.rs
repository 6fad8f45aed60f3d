//! The ERP invoice: being created, awaiting payment, missing although the
//! order is payable, or nothing to invoice.

use chrono::{DateTime, Utc};

use super::failures::OpenFailure;
use super::pending::{unfinished_finding, unfinished_state};
use super::{latest_of_kind, Finding, Severity, INVOICE_EXPECTED_AFTER};
use crate::domain::payment::{AWAITING_PAYMENT, PAYABLE_STATUSES};
use crate::trace::model::{is_unfinished, OrderTrace};
use crate::trace::text::{fmt_time_opt, when};

/// The invoice's state, unless an open create_invoice failure already
/// says it.
pub(super) fn invoice_finding(
    trace: &OrderTrace,
    failures: &[OpenFailure<'_>],
    now: DateTime<Utc>,
) -> Option<Finding> {
    let order = &trace.order;
    if failures.iter().any(|f| f.job.kind == "create_invoice") {
        return None; // the failure finding says it, with the cause
    }
    let latest = latest_of_kind(trace, "create_invoice");
    let enqueue = format!(
        "`ordersync enqueue create_invoice --store {} --order {}`",
        order.store, order.reference
    );
    match &trace.invoice {
        Some(invoice) if invoice.state != "creating" => None,
        Some(invoice) => Some(Finding::new(
            Severity::Waiting,
            format!(
                "invoice being created: job {} claimed it {} and has not settled it yet{}",
                invoice.job_id,
                when(invoice.claimed_at, now),
                latest
                    .filter(|j| is_unfinished(&j.state))
                    .map(|j| format!(
                        "; it is {}",
                        unfinished_state(j.runs.last(), j.enqueued_at, now)
                    ))
                    .unwrap_or_default()
            ),
        )),
        None if AWAITING_PAYMENT.contains(&order.shop_status.as_str()) => {
            let next = match latest {
                Some(job) if job.state == "deferred" => format!(
                    "; create_invoice job {} is deferred until {} (waiting since {})",
                    job.job_id,
                    fmt_time_opt(job.runs.last().and_then(|r| r.next_run_at)),
                    when(job.enqueued_at, now)
                ),
                _ => "; it is invoiced once the shop marks it paid".to_owned(),
            };
            Some(Finding::new(
                Severity::Waiting,
                format!(
                    "invoice not created: payment is '{}' in the shop{next}",
                    order.shop_status
                ),
            ))
        }
        None if PAYABLE_STATUSES.contains(&order.shop_status.as_str()) => match latest {
            None => {
                let severity = if now - order.imported_at > INVOICE_EXPECTED_AFTER {
                    Severity::Problem
                } else {
                    Severity::Waiting
                };
                Some(Finding::new(
                    severity,
                    format!(
                        "invoice not created: no create_invoice job has run for this order (imported {}); the scheduler enqueues one every 2 minutes by default (is it running?), or run {enqueue}",
                        when(order.imported_at, now)
                    ),
                ))
            }
            Some(job) if is_unfinished(&job.state) => {
                Some(unfinished_finding("invoice not created yet: ", job, now))
            }
            Some(job) => {
                let last = job.runs.last();
                let discarded = job
                    .dead_letter
                    .as_ref()
                    .filter(|d| d.state == "discarded")
                    .map(|d| {
                        format!(
                            "; its failure was discarded by {} {}",
                            d.resolved_by.as_deref().unwrap_or("?"),
                            fmt_time_opt(d.resolved_at)
                        )
                    })
                    .unwrap_or_default();
                Some(Finding::new(
                    Severity::Problem,
                    format!(
                        "invoice not created although the shop status is '{}': the last create_invoice job {} ended {} {}{}{discarded}; enqueue another with {enqueue}",
                        order.shop_status,
                        job.job_id,
                        job.state,
                        fmt_time_opt(last.map(|r| r.finished_at)),
                        last.and_then(|r| r.error_message.as_deref())
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default(),
                    ),
                ))
            }
        },
        None => Some(Finding::new(
            Severity::Info,
            format!(
                "no invoice: the shop status is '{}', nothing to invoice",
                order.shop_status
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::trace::diagnosis::diagnose;
    use crate::trace::diagnosis::fixtures::*;

    #[test]
    fn a_failed_invoice_job_says_why_and_how_to_replay() {
        let mut t = healthy();
        t.invoice = None;
        t.jobs[0] = job("create_invoice", json!(null), 5, &["retry", "failed"]);
        let id = t.jobs[0].job_id;
        let m = messages(&t);
        assert_eq!(
            m[0],
            format!("invoice not created: create_invoice job {id} failed 2026-03-10 07:00 UTC (5 hours ago) after 2 attempt(s): [server_error] courier account 'primary' does not know order BETA-1001; fix the cause, then replay with `ordersync jobs replay {id}`; not retried by the scheduler: open failure since 2026-03-10 07:00:00 UTC; replaying or discarding it, or a change to the order in the shop, lets the scheduler enqueue it again")
        );
        assert_eq!(
            m.iter().filter(|m| m.contains("invoice")).count(),
            1,
            "{m:?}"
        );
    }

    #[test]
    fn a_pending_payment_is_deferred_not_a_problem() {
        let mut t = healthy();
        t.invoice = None;
        t.order.shop_status = "pending".into();
        t.jobs[0] = job("create_invoice", json!(null), 30, &["deferred", "deferred"]);
        let findings = diagnose(&t);
        assert_eq!(findings[0].severity, Severity::Waiting, "{findings:?}");
        assert!(findings[0].message.starts_with(
            "invoice not created: payment is 'pending' in the shop; create_invoice job"
        ));
        assert!(
            findings[0]
                .message
                .contains("deferred until 2026-03-09 06:02 UTC"),
            "{findings:?}"
        );
    }

    #[test]
    fn an_order_with_nothing_to_invoice_says_so() {
        let mut t = healthy();
        t.invoice = None;
        t.order.status = Some("cancelled".into());
        t.order.shop_status = "cancelled".into();
        t.jobs.retain(|j| j.kind != "create_invoice");
        let m = messages(&t);
        assert_eq!(
            m[0],
            "no invoice: the shop status is 'cancelled', nothing to invoice"
        );
        assert_eq!(
            m[1],
            "all good: cancelled (final), nothing to invoice (shop status 'cancelled')"
        );
    }
}
