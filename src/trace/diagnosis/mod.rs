//! "Why is this order stuck?": plain-English findings over an
//! [`OrderTrace`], most important first.
//!
//! Pure rules over what the ledger recorded (no I/O), so every finding is
//! unit tested from a hand-built trace. A finding is a problem (an operator
//! must act: a failure, a stall, a missing effect), waiting (work scheduled
//! or in progress: say when) or information (what is fine, what is moot).
//! The rules follow domain.md: an order the courier does not know usually
//! means the store's wrong courier key (§1); an order without tracking is
//! looked up by the store's fetch_tracking, not by polling (§2).
//!
//! This file holds the verdict ([`diagnose`]: every rule, in reading order)
//! and the "all good" rule; one file per family of rules, each with its
//! tests:
//! - `failures`: open dead letters, and those a later job made moot;
//! - `tracking`: no tracking number, a status that stopped moving, an order
//!   nobody polls;
//! - `invoice`: the ERP invoice, or why there is none;
//! - `sms`: texts whose fate is unknown, changes nobody texted about;
//! - `pending`: retries, deferrals and queued jobs.

mod failures;
#[cfg(test)]
mod fixtures;
mod invoice;
mod pending;
mod sms;
mod tracking;

use chrono::{DateTime, Duration, Utc};

use crate::trace::model::{OrderTrace, TracedJob};
use crate::trace::text::{fmt_time_opt, when};

/// A tracked, non-final order not polled for this long means nothing is
/// polling it: the scheduler polls every 5 minutes by default and the store's
/// fetch_tracking (every 6 hours) refreshes every listed order too.
pub const POLL_STALE_AFTER: Duration = Duration::hours(12);
/// A job still queued after this long means no worker consumes its queue
/// (a healthy queue starts a job within milliseconds to minutes).
pub const QUEUED_TOO_LONG: Duration = Duration::minutes(15);
/// A payable order imported longer ago than this should have an invoice job
/// (the scheduler's create_invoice pass runs every 2 minutes by default).
pub const INVOICE_EXPECTED_AFTER: Duration = Duration::hours(1);

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// An operator must act.
    Problem,
    /// Work is scheduled or in progress.
    Waiting,
    /// Context: what is fine or moot.
    Info,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// What an operator reads.
    pub message: String,
}

impl Finding {
    fn new(severity: Severity, message: String) -> Self {
        Self { severity, message }
    }

    /// Whether an operator must act on it.
    pub fn needs_attention(&self) -> bool {
        self.severity == Severity::Problem
    }
}

/// The findings about `trace`, problems first, then waiting work, then
/// information; within each, in the order an operator should read them.
pub fn diagnose(trace: &OrderTrace) -> Vec<Finding> {
    let now = trace.generated_at;
    let mut findings = Vec::new();
    let failures = failures::open_failures(trace);
    for failure in &failures {
        findings.push(failures::failure_finding(trace, failure, now));
    }
    findings.extend(tracking::tracking_finding(trace, now));
    findings.extend(tracking::stuck_finding(trace, now));
    findings.extend(tracking::poll_finding(trace, now));
    findings.extend(invoice::invoice_finding(trace, &failures, now));
    findings.extend(sms::sms_findings(trace, &failures));
    findings.extend(pending::pending_job_findings(trace, now));
    // The verdict comes before moot details.
    if !findings
        .iter()
        .any(|f| matches!(f.severity, Severity::Problem | Severity::Waiting))
    {
        findings.extend(all_good(trace, now));
    }
    findings.extend(failures::superseded_findings(trace));
    // Stable: keeps each severity's reading order.
    findings.sort_by_key(|f| f.severity);
    findings
}

/// What a job does, for grouping: its kind, and for `send_sms` the status.
fn purpose(job: &TracedJob) -> (String, Option<String>) {
    let status = job
        .args
        .get("status")
        .and_then(|s| s.as_str())
        .map(str::to_owned);
    (job.kind.clone(), status)
}

fn all_good(trace: &OrderTrace, now: DateTime<Utc>) -> Option<Finding> {
    let order = &trace.order;
    let status = order.status.as_deref()?;
    let invoiced = match &trace.invoice {
        Some(i) if i.state == "voided" => {
            " and never invoiced (cancelled before any invoice)".to_owned()
        }
        Some(i) if i.state != "creating" => {
            format!(" and invoiced ({})", i.erp_name.as_deref().unwrap_or("?"))
        }
        _ => format!(", nothing to invoice (shop status '{}')", order.shop_status),
    };
    Some(Finding::new(
        Severity::Info,
        if order.status_is_final {
            format!("all good: {status} (final){invoiced}")
        } else {
            format!(
                "all good so far: {status} since {}, last polled {}{invoiced}",
                fmt_time_opt(order.status_changed_at),
                order
                    .last_polled_at
                    .map_or_else(|| "never".to_owned(), |t| when(t, now))
            )
        },
    ))
}

fn latest_of_kind<'a>(trace: &'a OrderTrace, kind: &str) -> Option<&'a TracedJob> {
    trace.jobs.iter().rev().find(|j| j.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::diagnosis::fixtures::*;

    #[test]
    fn a_delivered_and_invoiced_order_is_all_good() {
        let findings = diagnose(&healthy());
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(
            findings[0].message,
            "all good: delivered (final) and invoiced (ACC-SINV-2026-00001)"
        );
        assert!(!findings[0].needs_attention());
    }
}
