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

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, Utc};

use crate::domain::payment::{AWAITING_PAYMENT, PAYABLE_STATUSES};
use crate::domain::NormalizedStatus;
use crate::ledger::runs::RunRow;
use crate::trace::{is_unfinished, OrderTrace, TracedJob, DEFAULT_STUCK_DAYS};

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
    let failures = open_failures(trace);
    for failure in &failures {
        findings.push(failure_finding(trace, failure, now));
    }
    findings.extend(tracking_finding(trace, now));
    findings.extend(stuck_finding(trace, now));
    findings.extend(poll_finding(trace, now));
    findings.extend(invoice_finding(trace, &failures, now));
    findings.extend(sms_findings(trace, &failures));
    findings.extend(pending_job_findings(trace, now));
    // The verdict comes before moot details.
    if !findings
        .iter()
        .any(|f| matches!(f.severity, Severity::Problem | Severity::Waiting))
    {
        findings.extend(all_good(trace, now));
    }
    findings.extend(superseded_findings(trace));
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

/// An open failure that still matters: the newest open dead letter of its
/// purpose, with no later job of that purpose that succeeded.
struct OpenFailure<'a> {
    job: &'a TracedJob,
    /// Earlier open failures of the same purpose.
    earlier: usize,
}

fn open_failures(trace: &OrderTrace) -> Vec<OpenFailure<'_>> {
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

fn failure_finding(trace: &OrderTrace, failure: &OpenFailure<'_>, now: DateTime<Utc>) -> Finding {
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
            _ => "last job failed: ".to_owned(),
        };
        format!(
            "{what}{} job {id} failed {when} after {} attempt(s): [{}] {}; fix the cause, then replay with `ordersync jobs replay {id}`{earlier}",
            job.kind, dead.attempts, dead.error_class, dead.error_message
        )
    };
    Finding::new(Severity::Problem, message)
}

fn tracking_finding(trace: &OrderTrace, now: DateTime<Utc>) -> Option<Finding> {
    let order = &trace.order;
    if order.tracking_number.is_some() || order.status_is_final {
        return None;
    }
    let store = &order.store;
    let sync = &trace.store_syncs.fetch_tracking;
    if let Some(job) = &sync.in_progress {
        return Some(Finding::new(
            Severity::Waiting,
            format!(
                "no tracking number yet: the store's fetch_tracking job {} is {}",
                job.job_id,
                unfinished_state(job.latest_run.as_ref(), job.enqueued_at, now)
            ),
        ));
    }
    let Some(last) = &sync.last_run else {
        return Some(Finding::new(
            Severity::Problem,
            format!(
                "no tracking number: fetch_tracking has never run for store {store}, and only it looks new orders up at the courier (domain.md §2); is `ordersync scheduler` running? Run one now with `ordersync enqueue fetch_tracking --store {store}`"
            ),
        ));
    };
    let run = last.latest_run.as_ref()?;
    if last.state != "succeeded" {
        let since = sync
            .last_success_at
            .map(|t| format!("; its last success was {}", when(t, now)))
            .unwrap_or_else(|| "; it has never succeeded".to_owned());
        return Some(Finding::new(
            Severity::Problem,
            format!(
                "no tracking number: the store's last fetch_tracking ({}) ended {}: [{}] {}{since}; see `ordersync jobs show {}`",
                when(run.finished_at, now),
                last.state,
                run.error_class.as_deref().unwrap_or("-"),
                run.error_message.as_deref().unwrap_or("-"),
                last.job_id
            ),
        ));
    }
    if run.finished_at < order.imported_at {
        return Some(Finding::new(
            Severity::Waiting,
            format!(
                "no tracking number yet: the order was imported {}, after the store's last fetch_tracking ({}); the next one (every 6 hours by default) will look for it",
                when(order.imported_at, now),
                when(run.finished_at, now)
            ),
        ));
    }
    let detail = run.detail.as_ref();
    let count = |key: &str| {
        detail
            .and_then(|d| d.get(key))
            .and_then(serde_json::Value::as_i64)
            .unwrap_or_default()
    };
    let account = detail
        .and_then(|d| d.get("courier_account"))
        .and_then(|a| a.as_str())
        .unwrap_or("?");
    let (listed, matched, unknown) = (
        count("courier_orders"),
        count("matched"),
        count("unknown_refs"),
    );
    let cause = if matched == 0 && unknown > 0 {
        format!(
            "none of {store}'s orders is known to that account: the store is almost certainly mapped to the wrong courier account; check its credential (domain.md §1)"
        )
    } else if unknown > matched {
        format!(
            "most of {store}'s orders are unknown to that account ({unknown} without tracking, {matched} matched): check the store's courier account (domain.md §1)"
        )
    } else {
        "the account knows the store's other orders: check that this order was handed to the courier".to_owned()
    };
    Some(Finding::new(
        Severity::Problem,
        format!(
            "no tracking number: the store's last fetch_tracking ({}) listed {listed} orders of courier account '{account}', matched {matched} of {store}'s orders and did not find this one; {cause}",
            when(run.finished_at, now)
        ),
    ))
}

fn stuck_finding(trace: &OrderTrace, now: DateTime<Utc>) -> Option<Finding> {
    let order = &trace.order;
    let status = order.status.as_deref()?;
    let since = order.status_changed_at?;
    let days = (now - since).num_days();
    if order.status_is_final || days < i64::from(DEFAULT_STUCK_DAYS) {
        return None;
    }
    let label = order
        .courier_label
        .as_deref()
        .map(|l| format!(" ({l})"))
        .unwrap_or_default();
    let latest_poll = latest_of_kind(trace, "refresh_status");
    let why = if latest_poll.is_some_and(|j| j.state == "not_found") {
        "; the courier no longer finds it (see the not_found failure)".to_owned()
    } else {
        match order.last_polled_at {
            Some(polled) if now - polled < POLL_STALE_AFTER => format!(
                "; the courier still reports it (last polled {}), so the parcel itself is not moving: ask the courier about tracking {}",
                when(polled, now),
                order.tracking_number.as_deref().unwrap_or("-")
            ),
            _ => String::new(),
        }
    };
    Some(Finding::new(
        Severity::Problem,
        format!(
            "status '{status}'{label} unchanged for {days} days, since {}{why}",
            fmt_time(since)
        ),
    ))
}

fn poll_finding(trace: &OrderTrace, now: DateTime<Utc>) -> Option<Finding> {
    let order = &trace.order;
    if order.courier_order_id.is_none() || order.status_is_final {
        return None;
    }
    let stale = match order.last_polled_at {
        Some(polled) if now - polled < POLL_STALE_AFTER => return None,
        Some(polled) => format!("since {}", when(polled, now)),
        None => "ever".to_owned(),
    };
    Some(Finding::new(
        Severity::Problem,
        format!(
            "status not polled {stale} although it is not final: is `ordersync scheduler` running with refresh_status on? Poll it now with `ordersync enqueue refresh_status --store {} --order {}`",
            order.store, order.reference
        ),
    ))
}

fn invoice_finding(
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

fn sms_findings(trace: &OrderTrace, failures: &[OpenFailure<'_>]) -> Vec<Finding> {
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

/// Retries, deferrals and queued jobs other than create_invoice (which the
/// invoice finding explains).
fn pending_job_findings(trace: &OrderTrace, now: DateTime<Utc>) -> Vec<Finding> {
    trace
        .jobs
        .iter()
        .filter(|j| j.kind != "create_invoice" && is_unfinished(&j.state))
        .map(|job| unfinished_finding("", job, now))
        .collect()
}

fn unfinished_finding(prefix: &str, job: &TracedJob, now: DateTime<Utc>) -> Finding {
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

fn superseded_findings(trace: &OrderTrace) -> Vec<Finding> {
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

fn all_good(trace: &OrderTrace, now: DateTime<Utc>) -> Option<Finding> {
    let order = &trace.order;
    let status = order.status.as_deref()?;
    let invoiced = match &trace.invoice {
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

fn unfinished_state(
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

/// `2026-03-01 10:15 UTC (3 days ago)`.
pub fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({})", fmt_time(t), ago(now - t))
}

/// `2026-03-01 10:15 UTC`.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn fmt_time_opt(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "an unknown time".to_owned(), fmt_time)
}

fn ago(d: Duration) -> String {
    if d < Duration::zero() {
        return format!("in {}", span(-d));
    }
    format!("{} ago", span(d))
}

fn span(d: Duration) -> String {
    let plural = |n: i64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if d.num_days() >= 1 {
        plural(d.num_days(), "day")
    } else if d.num_hours() >= 1 {
        plural(d.num_hours(), "hour")
    } else if d.num_minutes() >= 1 {
        plural(d.num_minutes(), "minute")
    } else {
        "less than a minute".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::trace::{
        StatusHistoryEntry, StoreJob, StoreSync, StoreSyncs, TracedDeadLetter, TracedInvoice,
        TracedOrder, TracedSms,
    };

    fn now() -> DateTime<Utc> {
        "2026-03-10T12:00:00Z".parse().unwrap()
    }

    fn hours_ago(h: i64) -> DateTime<Utc> {
        now() - Duration::hours(h)
    }

    /// A delivered, invoiced order with a clean history.
    fn healthy() -> OrderTrace {
        OrderTrace {
            generated_at: now(),
            needs_attention: false,
            diagnosis: Vec::new(),
            findings: Vec::new(),
            order: TracedOrder {
                store: "BETA".into(),
                reference: "BETA-1001".into(),
                shop_order_id: 1001,
                shop_status: "completed".into(),
                payment_method: "cod".into(),
                total: "1200.00".into(),
                currency: Some("DZD".into()),
                customer_name: Some("Amina B".into()),
                phone_masked: Some("••••••4567".into()),
                tracking_number: Some("12345678".into()),
                courier_order_id: Some(77),
                courier_code: Some(41),
                courier_label: Some("LIVRÉ".into()),
                status: Some("delivered".into()),
                status_is_final: true,
                status_changed_at: Some(hours_ago(30)),
                days_in_status: Some(1),
                last_polled_at: Some(hours_ago(30)),
                imported_at: hours_ago(100),
                updated_at: hours_ago(30),
                shop_modified_at: None,
            },
            status_history: vec![
                history("pending", 80),
                history("in_transit", 60),
                history("delivered", 30),
            ],
            jobs: vec![
                job("create_invoice", json!(null), 99, &["succeeded"]),
                job(
                    "send_sms",
                    json!({"status": "in_transit"}),
                    60,
                    &["succeeded"],
                ),
                job(
                    "send_sms",
                    json!({"status": "delivered"}),
                    30,
                    &["succeeded"],
                ),
            ],
            job_totals: BTreeMap::new(),
            store_syncs: StoreSyncs {
                store: "BETA".into(),
                fetch_tracking: StoreSync::default(),
                import_orders: StoreSync::default(),
            },
            invoice: Some(TracedInvoice {
                state: "created".into(),
                erp_name: Some("ACC-SINV-2026-00001".into()),
                job_id: Uuid::nil(),
                claimed_at: hours_ago(99),
                settled_at: Some(hours_ago(99)),
            }),
            sms: vec![sms("in_transit", "sent"), sms("delivered", "sent")],
        }
    }

    fn history(status: &str, hours: i64) -> StatusHistoryEntry {
        StatusHistoryEntry {
            status: status.into(),
            courier_code: 0,
            courier_label: status.to_uppercase(),
            observed_at: hours_ago(hours),
            job_id: None,
        }
    }

    fn sms(status: &str, state: &str) -> TracedSms {
        TracedSms {
            status: status.into(),
            state: state.into(),
            phone_masked: "••••••4567".into(),
            message: format!("Order BETA-1001 {status}"),
            provider_message_id: Some("m1".into()),
            job_id: Uuid::nil(),
            claimed_at: hours_ago(30),
            sent_at: Some(hours_ago(30)),
        }
    }

    fn run(n: i32, outcome: &str, hours: i64) -> RunRow {
        let failed = !matches!(outcome, "succeeded" | "skipped");
        RunRow {
            run: n,
            attempt: n,
            worker: "host-1-abc".into(),
            started_at: hours_ago(hours),
            finished_at: hours_ago(hours),
            outcome: outcome.into(),
            error_class: failed.then(|| "server_error".into()),
            error_message: failed.then(|| "erpnext/erpnext server_error (HTTP 503)".into()),
            http_status: failed.then_some(503),
            next_run_at: (outcome == "retry" || outcome == "deferred")
                .then(|| hours_ago(hours) + Duration::minutes(2)),
            detail: None,
        }
    }

    fn job(kind: &str, args: serde_json::Value, hours: i64, outcomes: &[&str]) -> TracedJob {
        let runs: Vec<RunRow> = outcomes
            .iter()
            .enumerate()
            .map(|(i, o)| run(i as i32 + 1, o, hours))
            .collect();
        let last = outcomes.last().copied().unwrap_or("queued");
        TracedJob {
            job_id: Uuid::now_v7(),
            kind: kind.into(),
            args,
            source: "scheduler".into(),
            enqueued_at: hours_ago(hours),
            max_attempts: 5,
            replay_of: None,
            state: last.into(),
            dead_letter: matches!(last, "failed" | "not_found").then(|| TracedDeadLetter {
                failed_at: hours_ago(hours),
                outcome: last.into(),
                attempts: outcomes.len() as i32,
                error_class: if last == "not_found" {
                    "not_found"
                } else {
                    "server_error"
                }
                .into(),
                error_message: "courier account 'primary' does not know order BETA-1001".into(),
                http_status: None,
                fingerprint: "abc123".into(),
                state: "pending".into(),
                replayed_as: None,
                resolved_at: None,
                resolved_by: None,
            }),
            runs,
        }
    }

    fn fetch_tracking(hours: i64, detail: serde_json::Value) -> StoreSync {
        let mut r = run(1, "succeeded", hours);
        r.detail = Some(detail);
        let job = StoreJob {
            job_id: Uuid::nil(),
            source: "scheduler".into(),
            enqueued_at: hours_ago(hours),
            state: "succeeded".into(),
            latest_run: Some(r),
        };
        StoreSync {
            last_success_at: Some(hours_ago(hours)),
            in_progress: None,
            last_run: Some(job.clone()),
            last_success: Some(job),
        }
    }

    /// Imported, never found at the courier, payable, not yet invoiced.
    fn untracked() -> OrderTrace {
        let mut t = healthy();
        let o = &mut t.order;
        o.tracking_number = None;
        o.courier_order_id = None;
        o.courier_code = None;
        o.courier_label = None;
        o.status = None;
        o.status_is_final = false;
        o.status_changed_at = None;
        o.last_polled_at = None;
        o.imported_at = hours_ago(200);
        t.status_history.clear();
        t.sms.clear();
        t.jobs.retain(|j| j.kind == "create_invoice");
        t
    }

    fn messages(t: &OrderTrace) -> Vec<String> {
        diagnose(t).into_iter().map(|f| f.message).collect()
    }

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

    #[test]
    fn no_match_on_the_stores_account_points_at_the_wrong_key() {
        let mut t = untracked();
        t.store_syncs.fetch_tracking = fetch_tracking(
            2,
            json!({"courier_account": "primary", "courier_orders": 500, "matched": 0, "unknown_refs": 30}),
        );
        let findings = diagnose(&t);
        let first = &findings[0];
        assert!(first.needs_attention());
        assert!(first.message.starts_with("no tracking number: the store's last fetch_tracking (2026-03-10 10:00 UTC (2 hours ago)) listed 500 orders of courier account 'primary', matched 0 of BETA's orders"), "{first:?}");
        assert!(first.message.contains("wrong courier account"), "{first:?}");
        assert!(first.message.contains("domain.md §1"), "{first:?}");
    }

    #[test]
    fn an_order_the_account_alone_misses_is_checked_at_the_courier() {
        let mut t = untracked();
        t.store_syncs.fetch_tracking = fetch_tracking(
            2,
            json!({"courier_account": "alph", "courier_orders": 500, "matched": 480, "unknown_refs": 3}),
        );
        let first = &messages(&t)[0];
        assert!(
            first.contains("check that this order was handed to the courier"),
            "{first}"
        );
        assert!(!first.contains("wrong courier account"), "{first}");
    }

    #[test]
    fn an_order_imported_after_the_last_tracking_sync_waits_for_the_next() {
        let mut t = untracked();
        t.order.imported_at = hours_ago(1);
        t.store_syncs.fetch_tracking = fetch_tracking(3, json!({"matched": 0, "unknown_refs": 1}));
        let findings = diagnose(&t);
        let tracking = findings
            .iter()
            .find(|f| f.message.starts_with("no tracking number yet"))
            .unwrap();
        assert_eq!(tracking.severity, Severity::Waiting);
        assert!(tracking.message.contains("the next one"), "{tracking:?}");
    }

    #[test]
    fn a_store_that_never_synced_tracking_is_named() {
        let first = &messages(&untracked())[0];
        assert!(
            first.contains("fetch_tracking has never run for store BETA")
                && first.contains("ordersync enqueue fetch_tracking --store BETA"),
            "{first}"
        );
    }

    #[test]
    fn a_status_unchanged_for_days_is_reported_with_its_age() {
        let mut t = healthy();
        t.order.status = Some("in_transit".into());
        t.order.courier_label = Some("EN TRANSIT POUR EXPÉDITION".into());
        t.order.status_is_final = false;
        t.order.status_changed_at = Some(hours_ago(24 * 5 + 1));
        t.order.last_polled_at = Some(hours_ago(0));
        let m = messages(&t);
        assert_eq!(
            m[0],
            "status 'in_transit' (EN TRANSIT POUR EXPÉDITION) unchanged for 5 days, since 2026-03-05 11:00 UTC; the courier still reports it (last polled 2026-03-10 12:00 UTC (less than a minute ago)), so the parcel itself is not moving: ask the courier about tracking 12345678"
        );
        assert!(diagnose(&t)[0].needs_attention());
    }

    #[test]
    fn a_tracked_order_nobody_polls_is_reported() {
        let mut t = healthy();
        t.order.status = Some("in_transit".into());
        t.order.status_is_final = false;
        t.order.status_changed_at = Some(hours_ago(20));
        t.order.last_polled_at = Some(hours_ago(20));
        let m = messages(&t);
        assert!(
            m[0].starts_with("status not polled since 2026-03-09 16:00 UTC (20 hours ago)"),
            "{m:?}"
        );
        assert!(m[0].contains("--order BETA-1001"), "{m:?}");
    }

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

    #[test]
    fn a_failed_invoice_job_says_why_and_how_to_replay() {
        let mut t = healthy();
        t.invoice = None;
        t.jobs[0] = job("create_invoice", json!(null), 5, &["retry", "failed"]);
        let id = t.jobs[0].job_id;
        let m = messages(&t);
        assert_eq!(
            m[0],
            format!("invoice not created: create_invoice job {id} failed 2026-03-10 07:00 UTC (5 hours ago) after 2 attempt(s): [server_error] courier account 'primary' does not know order BETA-1001; fix the cause, then replay with `ordersync jobs replay {id}`")
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
