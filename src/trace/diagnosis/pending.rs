//! Work that is scheduled or in progress: retries, deferrals, and jobs
//! waiting in their queue (too long means no worker consumes it).

use chrono::{DateTime, Utc};

use super::{purpose, Finding, Severity, QUEUED_TOO_LONG};
use crate::ledger::runs::RunRow;
use crate::trace::model::{is_unfinished, OrderTrace, TracedJob};
use crate::trace::text::{fmt_time_opt, when};

/// Retries, deferrals and queued jobs other than create_invoice (which the
/// invoice finding explains).
pub(super) fn pending_job_findings(trace: &OrderTrace, now: DateTime<Utc>) -> Vec<Finding> {
    trace
        .jobs
        .iter()
        .filter(|j| j.kind != "create_invoice" && is_unfinished(&j.state))
        .map(|job| unfinished_finding("", job, now))
        .collect()
}

/// A job that may still run: when its retry or deferral is due, or how
/// long it has waited in its queue; `prefix` says what it is late for.
pub(super) fn unfinished_finding(prefix: &str, job: &TracedJob, now: DateTime<Utc>) -> Finding {
    let what = match purpose(job) {
        (kind, Some(status)) => format!("{kind} job {} ('{status}')", job.job_id),
        (kind, None) => format!("{kind} job {}", job.job_id),
    };
    let last = job.runs.last();
    match (job.state.as_str(), last) {
        ("retry", Some(run)) => Finding::new(
            Severity::Waiting,
            format!(
                "{prefix}a retry of {what} is scheduled {}: attempt {}/{} failed [{}] {}",
                fmt_time_opt(run.next_run_at),
                run.attempt,
                job.max_attempts,
                run.error_class.as_deref().unwrap_or("-"),
                run.error_message.as_deref().unwrap_or("-")
            ),
        ),
        ("deferred", Some(run)) => Finding::new(
            Severity::Waiting,
            format!(
                "{prefix}{what} is deferred until {}: {} (waiting since {})",
                fmt_time_opt(run.next_run_at),
                run.error_message.as_deref().unwrap_or("-"),
                when(job.enqueued_at, now)
            ),
        ),
        _ => {
            let waited = now - job.enqueued_at;
            if waited > QUEUED_TOO_LONG {
                Finding::new(
                    Severity::Problem,
                    format!(
                        "{prefix}{what} has waited in its queue since {}: are workers consuming {}? (`ordersync queues`)",
                        when(job.enqueued_at, now),
                        job.kind
                    ),
                )
            } else {
                Finding::new(
                    Severity::Waiting,
                    format!(
                        "{prefix}{what} is queued since {}",
                        when(job.enqueued_at, now)
                    ),
                )
            }
        }
    }
}

/// "retrying at ...", "deferred until ..." or "queued since ...".
pub(super) fn unfinished_state(
    run: Option<&RunRow>,
    enqueued_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> String {
    match run {
        Some(r) if r.outcome == "retry" => format!(
            "retrying at {} after [{}] {}",
            fmt_time_opt(r.next_run_at),
            r.error_class.as_deref().unwrap_or("-"),
            r.error_message.as_deref().unwrap_or("-")
        ),
        Some(r) if r.outcome == "deferred" => {
            format!("deferred until {}", fmt_time_opt(r.next_run_at))
        }
        _ => format!("queued since {}", when(enqueued_at, now)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::trace::diagnosis::diagnose;
    use crate::trace::diagnosis::fixtures::*;

    #[test]
    fn a_scheduled_retry_says_when() {
        let mut t = healthy();
        t.jobs[2] = job("send_sms", json!({"status": "delivered"}), 0, &["retry"]);
        let findings = diagnose(&t);
        assert_eq!(findings[0].severity, Severity::Waiting, "{findings:?}");
        assert!(findings[0].message.starts_with(&format!(
            "a retry of send_sms job {} ('delivered') is scheduled 2026-03-10 12:02 UTC: attempt 1/5 failed [server_error]",
            t.jobs[2].job_id
        )), "{findings:?}");
    }

    #[test]
    fn a_job_nobody_consumes_is_a_problem_after_a_while() {
        let mut t = healthy();
        t.jobs[2] = job("send_sms", json!({"status": "delivered"}), 2, &[]);
        let m = messages(&t);
        assert!(
            m[0].contains("has waited in its queue since")
                && m[0].contains("are workers consuming send_sms"),
            "{m:?}"
        );
    }
}
