//! Texts to the customer: one whose fate is unknown, and customer-facing
//! status changes nobody texted about.

use std::collections::HashMap;

use super::failures::OpenFailure;
use super::{purpose, Finding, Severity};
use crate::domain::NormalizedStatus;
use crate::trace::model::OrderTrace;
use crate::trace::text::fmt_time;

/// Texts that may not have gone out, and changes without a text (open
/// send_sms failures are reported by their own finding).
pub(super) fn sms_findings(trace: &OrderTrace, failures: &[OpenFailure<'_>]) -> Vec<Finding> {
    let mut findings = Vec::new();
    let reported: Vec<uuid::Uuid> = failures.iter().map(|f| f.job.job_id).collect();
    for sms in &trace.sms {
        if sms.state == "unknown" && !reported.contains(&sms.job_id) {
            findings.push(Finding::new(
                Severity::Problem,
                format!(
                    "the text about '{}' may or may not have reached the customer (its send timed out or its worker died); it is not re-sent, so nobody is texted twice",
                    sms.status
                ),
            ));
        }
    }
    // Every change after the first observation into a customer-facing status
    // enqueues one send_sms (src/jobs/send_sms.rs).
    let mut seen: HashMap<&str, ()> = HashMap::new();
    for change in trace.status_history.iter().skip(1) {
        let notifies =
            NormalizedStatus::parse(&change.status).is_some_and(|s| s.notifies_customer());
        if !notifies || seen.insert(change.status.as_str(), ()).is_some() {
            continue;
        }
        let texted = trace.sms.iter().any(|s| s.status == change.status);
        let job = trace.jobs.iter().any(|j| {
            j.kind == "send_sms" && purpose(j).1.as_deref() == Some(change.status.as_str())
        });
        if !texted && !job {
            findings.push(Finding::new(
                Severity::Problem,
                format!(
                    "customer not texted about '{}' ({}): no send_sms job was enqueued for that change",
                    change.status,
                    fmt_time(change.observed_at)
                ),
            ));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::diagnosis::fixtures::*;

    #[test]
    fn a_customer_facing_change_without_a_text_is_reported() {
        let mut t = healthy();
        t.sms.retain(|s| s.status != "in_transit");
        t.jobs
            .retain(|j| purpose(j).1.as_deref() != Some("in_transit"));
        let m = messages(&t);
        assert_eq!(
            m[0],
            "customer not texted about 'in_transit' (2026-03-08 00:00 UTC): no send_sms job was enqueued for that change"
        );
    }
}
