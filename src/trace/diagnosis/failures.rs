//! Open failures: the newest open dead letter of each purpose, worded with
//! its cause and its replay command; and failures a later job made moot.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{purpose, Finding, Severity};
use crate::trace::model::{OrderTrace, TracedJob};
use crate::trace::text::when;

/// An open failure that still matters: the newest open dead letter of its
/// purpose, with no later job of that purpose that succeeded.
pub(super) struct OpenFailure<'a> {
    /// The failed job.
    pub(super) job: &'a TracedJob,
    /// Earlier open failures of the same purpose.
    earlier: usize,
}

/// The open failures that still matter, newest first.
pub(super) fn open_failures(trace: &OrderTrace) -> Vec<OpenFailure<'_>> {
    let mut groups: BTreeMap<(String, Option<String>), Vec<&TracedJob>> = BTreeMap::new();
    for job in trace.jobs.iter().filter(|j| is_open_failure(j)) {
        groups.entry(purpose(job)).or_default().push(job);
    }
    let mut failures: Vec<OpenFailure<'_>> = groups
        .into_values()
        .filter_map(|jobs| {
            let newest = *jobs.last()?;
            (!superseded(trace, newest)).then(|| OpenFailure {
                job: newest,
                earlier: jobs.len() - 1,
            })
        })
        .collect();
    // Newest failure first: it is the freshest evidence.
    failures.sort_by_key(|d| std::cmp::Reverse(failed_at(d.job)));
    failures
}

fn is_open_failure(job: &TracedJob) -> bool {
    job.dead_letter
        .as_ref()
        .is_some_and(|d| d.state == "pending")
}

fn failed_at(job: &TracedJob) -> Option<DateTime<Utc>> {
    job.dead_letter.as_ref().map(|d| d.failed_at)
}

/// A later job with the same purpose that succeeded or had nothing to do.
fn later_success<'a>(trace: &'a OrderTrace, job: &TracedJob) -> Option<&'a TracedJob> {
    let key = purpose(job);
    trace
        .jobs
        .iter()
        .filter(|j| j.enqueued_at > job.enqueued_at && purpose(j) == key)
        .find(|j| matches!(j.state.as_str(), "succeeded" | "skipped"))
}

fn superseded(trace: &OrderTrace, job: &TracedJob) -> bool {
    later_success(trace, job).is_some()
}

/// What went wrong, what it usually means, and how to replay it.
pub(super) fn failure_finding(
    trace: &OrderTrace,
    failure: &OpenFailure<'_>,
    now: DateTime<Utc>,
) -> Finding {
    let job = failure.job;
    let Some(dead) = job.dead_letter.as_ref() else {
        return Finding::new(
            Severity::Problem,
            format!("{} job {} failed", job.kind, job.job_id),
        );
    };
    let id = job.job_id;
    let when = when(dead.failed_at, now);
    let earlier = match failure.earlier {
        0 => String::new(),
        n => format!(" ({n} earlier failure(s) of the same job kind are open too)"),
    };
    let status = purpose(job).1.unwrap_or_default();
    let message = if dead.outcome == "not_found" {
        format!(
            "the courier does not know this order: {} job {id} got not_found {when}: {} — the usual cause is the store {} mapped to the wrong courier account (domain.md §1): check its courier account in the config, then replay with `ordersync jobs replay {id}`{earlier}",
            job.kind, dead.error_message, trace.order.store
        )
    } else if job.kind == "send_sms" && dead.error_class == "delivery_unknown" {
        format!(
            "the text about '{status}' may or may not have reached the customer: send_sms job {id} failed {when}: {} — replaying could text them twice: check the SMS gateway's log first, then replay with `ordersync jobs replay {id}` or discard with `ordersync jobs discard {id}`{earlier}",
            dead.error_message
        )
    } else {
        let what = match job.kind.as_str() {
            "create_invoice" => "invoice not created: ".to_owned(),
            "send_sms" => format!("customer not texted about '{status}': "),
            "refresh_status" => "status not refreshed: ".to_owned(),
            "cancel_invoice" => "invoice not cancelled: ".to_owned(),
            "record_payment" => "payment not recorded: ".to_owned(),
            "write_back" => format!("shop not told the order is '{status}': "),
            _ => "last job failed: ".to_owned(),
        };
        format!(
            "{what}{} job {id} failed {when} after {} attempt(s): [{}] {}; fix the cause, then replay with `ordersync jobs replay {id}`{earlier}",
            job.kind, dead.attempts, dead.error_class, dead.error_message
        )
    };
    let message = match held_since(trace, &job.kind) {
        Some(since) => format!("{message}; {}", crate::domain::schedule::held_note(since)),
        None => message,
    };
    Finding::new(Severity::Problem, message)
}

/// When the open failure that holds this order's `kind` jobs back from the
/// scheduler began (the rule of `crate::scheduler`): the oldest open dead
/// letter of that kind the shop has not changed the order since.
fn held_since(trace: &OrderTrace, kind: &str) -> Option<DateTime<Utc>> {
    if !kind
        .parse::<crate::domain::JobKind>()
        .is_ok_and(crate::domain::schedule::held_by_open_failure)
    {
        return None;
    }
    trace
        .jobs
        .iter()
        .filter(|j| j.kind == kind && is_open_failure(j))
        .filter_map(failed_at)
        .filter(|at| trace.order.shop_modified_at.is_none_or(|m| m <= *at))
        .min()
}

/// Open failures a later job of the same purpose made moot.
pub(super) fn superseded_findings(trace: &OrderTrace) -> Vec<Finding> {
    trace
        .jobs
        .iter()
        .filter(|j| is_open_failure(j))
        .filter_map(|job| {
            let later = later_success(trace, job)?;
            Some(Finding::new(
                Severity::Info,
                format!(
                    "an earlier {} job {} failed, but a later one ({}) {}; clear it with `ordersync jobs discard {}`",
                    job.kind, job.job_id, later.job_id, later.state, job.job_id
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::trace::diagnosis::diagnose;
    use crate::trace::diagnosis::fixtures::*;

    #[test]
    fn the_newest_open_failure_leads_with_its_replay_command() {
        let mut t = healthy();
        t.order.status = Some("in_transit".into());
        t.order.status_is_final = false;
        t.order.last_polled_at = Some(hours_ago(1));
        t.order.status_changed_at = Some(hours_ago(10));
        t.jobs
            .push(job("refresh_status", json!(null), 3, &["not_found"]));
        t.jobs
            .push(job("refresh_status", json!(null), 2, &["not_found"]));
        let newest = t.jobs.last().unwrap().job_id;
        let m = messages(&t);
        assert!(
            m[0].starts_with("the courier does not know this order: refresh_status job"),
            "{m:?}"
        );
        assert!(
            m[0].contains(&format!("`ordersync jobs replay {newest}`")),
            "{m:?}"
        );
        assert!(m[0].contains("1 earlier failure(s)"), "{m:?}");
        assert!(m[0].contains("domain.md §1"), "{m:?}");
    }

    #[test]
    fn an_open_invoice_failure_says_the_scheduler_holds_the_order_back() {
        let mut t = healthy();
        t.order.shop_modified_at = Some(hours_ago(48));
        t.jobs.retain(|j| j.kind != "create_invoice");
        t.jobs
            .push(job("create_invoice", json!(null), 3, &["failed"]));
        let m = messages(&t);
        assert!(
            m[0].contains("; not retried by the scheduler: open failure since "),
            "{m:?}"
        );
    }

    #[test]
    fn a_change_in_the_shop_after_the_failure_releases_the_order() {
        let mut t = healthy();
        t.jobs.retain(|j| j.kind != "create_invoice");
        t.jobs
            .push(job("create_invoice", json!(null), 3, &["failed"]));
        t.order.shop_modified_at = Some(hours_ago(1));
        let m = messages(&t);
        assert!(
            m.iter()
                .all(|m| !m.contains("not retried by the scheduler")),
            "{m:?}"
        );
    }

    #[test]
    fn a_failure_a_later_job_fixed_is_only_information() {
        let mut t = healthy();
        let failed = job("create_invoice", json!(null), 120, &["retry", "failed"]);
        let id = failed.job_id;
        t.jobs.insert(0, failed);
        let findings = diagnose(&t);
        assert!(
            findings.iter().all(|f| !f.needs_attention()),
            "{findings:?}"
        );
        assert!(findings.iter().any(|f| f
            .message
            .contains(&format!("clear it with `ordersync jobs discard {id}`"))));
        assert!(findings[0].message.starts_with("all good"), "{findings:?}");
    }
}
