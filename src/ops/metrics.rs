//! Prometheus metrics.
//!
//! Two kinds, from two places:
//! - **Process metrics** (workers): jobs by outcome, job duration, queue
//!   lag, provider requests. Recorded through the `metrics` facade into this
//!   process's Prometheus recorder and served on the worker's own port.
//! - **System gauges** (the api): queue depth per state, oldest pending age,
//!   live workers, unresolved failures and per-store freshness. They describe
//!   shared state (Redis, the ledger), so exactly one scrape target reports
//!   them, read fresh on every scrape: summed over worker replicas they
//!   would be counted once per replica.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::{JobKind, RunOutcome};
use crate::ops::queues::Snapshot;
use crate::ops::stores::StoreFreshness;

/// Jobs by kind and outcome.
pub const JOBS_TOTAL: &str = "ordersync_jobs_total";
/// Handler time per delivery.
pub const JOB_DURATION: &str = "ordersync_job_duration_seconds";
/// From due (enqueued, or a retry's due time) to start.
pub const JOB_QUEUE_LAG: &str = "ordersync_job_queue_lag_seconds";
/// Deliveries the reconciler pushed again because Redis had lost them.
pub const RECONCILED_TOTAL: &str = "ordersync_reconciled_jobs_total";
/// Provider HTTP requests by provider and status (counted by `providers`).
pub const PROVIDER_REQUESTS: &str = crate::providers::PROVIDER_REQUESTS_METRIC;

/// Seconds: a no-op takes microseconds, a paged sync a minute or two.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// Seconds: an idle worker starts a job in a millisecond or two; a backlog
/// can hold jobs for minutes or hours.
const LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// This process's Prometheus recorder, installed on first use. Histograms
/// are kept as buckets (aggregatable across replicas), and an upkeep thread
/// drains their samples so memory stays flat.
pub fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(JOB_DURATION.into()), DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(JOB_QUEUE_LAG.into()), LAG_BUCKETS)
            })
            .expect("bucket lists are non-empty");
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Another recorder already installed (a test process embedding two
        // components) only means this handle renders nothing of theirs.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(Duration::from_secs(5));
                upkeep.run_upkeep();
            })
            .expect("spawning the metrics upkeep thread");
        handle
    })
}

fn describe() {
    metrics::describe_counter!(JOBS_TOTAL, "Job deliveries settled, by kind and outcome.");
    metrics::describe_histogram!(
        JOB_DURATION,
        metrics::Unit::Seconds,
        "Time from a delivery's start to its settled outcome."
    );
    metrics::describe_histogram!(
        JOB_QUEUE_LAG,
        metrics::Unit::Seconds,
        "Time from a delivery being due (enqueued, or a retry's due time) to its start."
    );
    metrics::describe_counter!(
        PROVIDER_REQUESTS,
        "HTTP requests to providers, by provider and HTTP status (or transport error class)."
    );
    metrics::describe_counter!(
        RECONCILED_TOTAL,
        "Deliveries the ledger held open that Redis had lost, pushed again by the reconciler, by queue."
    );
}

/// Every outcome a delivery can settle with.
const OUTCOMES: [RunOutcome; 6] = RunOutcome::ALL;

#[derive(Debug)]
struct KindMetrics {
    duration: Histogram,
    lag: Histogram,
    outcomes: [Counter; 6],
}

/// Metric handles of every kind, resolved once: the hot path of a worker
/// (50k no-op jobs a second) does no label hashing.
#[derive(Debug)]
pub struct JobMetrics {
    kinds: HashMap<JobKind, KindMetrics>,
}

impl JobMetrics {
    /// Handles in this process's recorder (installed if needed).
    pub fn new() -> Self {
        let _ = recorder();
        let kinds = JobKind::ALL
            .into_iter()
            .map(|kind| {
                let name = kind.as_str();
                (
                    kind,
                    KindMetrics {
                        duration: metrics::histogram!(JOB_DURATION, "kind" => name),
                        lag: metrics::histogram!(JOB_QUEUE_LAG, "kind" => name),
                        outcomes: OUTCOMES.map(|outcome| {
                            metrics::counter!(JOBS_TOTAL, "kind" => name, "outcome" => outcome.as_str())
                        }),
                    },
                )
            })
            .collect();
        Self { kinds }
    }

    /// A delivery of `kind` started `lag` after it was due.
    pub fn started(&self, kind: JobKind, lag: Duration) {
        if let Some(m) = self.kinds.get(&kind) {
            m.lag.record(lag.as_secs_f64());
        }
    }

    /// A reconciler pass pushed again what Redis had lost.
    pub fn reconciled(&self, report: &crate::queue::reconcile::Report) {
        for (queue, n) in &report.missing_by_queue {
            metrics::counter!(RECONCILED_TOTAL, "queue" => queue.clone()).increment(*n);
        }
    }

    /// A delivery of `kind` settled with `outcome` after `duration`.
    pub fn settled(&self, kind: JobKind, outcome: RunOutcome, duration: Duration) {
        if let Some(m) = self.kinds.get(&kind) {
            m.duration.record(duration.as_secs_f64());
            if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
                m.outcomes[i].increment(1);
            }
        }
    }
}

impl Default for JobMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Prometheus text for the system gauges: queue depth per state, oldest
/// pending age, live workers, unresolved failures, store freshness.
pub fn render_system_gauges(
    snapshot: &Snapshot,
    stores: &[StoreFreshness],
    unknown_texts: &[(String, i64)],
) -> String {
    let mut out = String::new();
    let queue_labels = |q: &crate::ops::queues::QueueStats| {
        format!(
            "queue=\"{}\",kind=\"{}\",lane=\"{}\"",
            escape(&q.queue),
            q.kind.as_str(),
            q.lane
        )
    };
    header(
        &mut out,
        "ordersync_queue_jobs",
        "Jobs in each queue by state (pending: ready; scheduled: retries and deferrals waiting; in_flight: fetched, not acknowledged).",
    );
    for q in &snapshot.queues {
        let labels = queue_labels(q);
        for (state, value) in [
            ("pending", q.pending),
            ("scheduled", q.scheduled),
            ("in_flight", q.in_flight),
        ] {
            let _ = writeln!(
                out,
                "ordersync_queue_jobs{{{labels},state=\"{state}\"}} {value}"
            );
        }
    }
    header(
        &mut out,
        "ordersync_queue_oldest_pending_seconds",
        "How long the next job to run has been due (0 when nothing is pending).",
    );
    for q in &snapshot.queues {
        let _ = writeln!(
            out,
            "ordersync_queue_oldest_pending_seconds{{{}}} {}",
            queue_labels(q),
            q.oldest_pending_age_secs.unwrap_or(0.0)
        );
    }
    header(
        &mut out,
        "ordersync_queue_workers",
        "Worker processes consuming each queue whose heartbeat is recent.",
    );
    for q in &snapshot.queues {
        let _ = writeln!(
            out,
            "ordersync_queue_workers{{{}}} {}",
            queue_labels(q),
            q.workers
        );
    }
    header(
        &mut out,
        "ordersync_worker_processes",
        "Worker processes whose heartbeat is recent.",
    );
    let _ = writeln!(out, "ordersync_worker_processes {}", snapshot.processes);
    header(
        &mut out,
        "ordersync_queue_missing_jobs",
        "Jobs the ledger holds unfinished that Redis does not hold (older than the reconciler's grace): what the reconciler will push again.",
    );
    for q in &snapshot.queues {
        let _ = writeln!(
            out,
            "ordersync_queue_missing_jobs{{{}}} {}",
            queue_labels(q),
            q.missing
        );
    }
    header(
        &mut out,
        "ordersync_sms_unknown",
        "Texts whose fate is unknown (gateway timeout, worker died mid-send): never re-sent by themselves.",
    );
    for (store, n) in unknown_texts {
        let _ = writeln!(
            out,
            "ordersync_sms_unknown{{store=\"{}\"}} {n}",
            escape(store)
        );
    }
    header(
        &mut out,
        "ordersync_failed_jobs",
        "Failed jobs in the ledger not yet replayed or discarded.",
    );
    for q in &snapshot.queues {
        let _ = writeln!(
            out,
            "ordersync_failed_jobs{{{}}} {}",
            queue_labels(q),
            q.failed
        );
    }
    header(
        &mut out,
        "ordersync_store_last_success_age_seconds",
        "Seconds since each store's last successful import_orders / fetch_tracking (+Inf: never).",
    );
    for s in stores.iter().filter(|s| s.active) {
        for (kind, age) in [
            ("import_orders", s.last_import_age_secs),
            ("fetch_tracking", s.last_tracking_age_secs),
        ] {
            let value = age.map_or_else(|| "+Inf".to_owned(), |a| a.to_string());
            let _ = writeln!(
                out,
                "ordersync_store_last_success_age_seconds{{store=\"{}\",kind=\"{kind}\"}} {value}",
                escape(&s.store)
            );
        }
    }
    header(
        &mut out,
        "ordersync_store_tracking_coverage_ratio",
        "Share of each store's orders that have a tracking number.",
    );
    for s in stores.iter().filter(|s| s.active) {
        if let Some(coverage) = s.tracking_coverage {
            let _ = writeln!(
                out,
                "ordersync_store_tracking_coverage_ratio{{store=\"{}\"}} {coverage}",
                escape(&s.store)
            );
        }
    }
    out
}

fn header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn a_store_that_never_synced_reports_infinite_age() {
        let store = StoreFreshness {
            store: "ALPH".into(),
            active: true,
            courier_account: Some("alph".into()),
            orders: 0,
            tracked: 0,
            tracking_coverage: None,
            last_import_at: None,
            last_import_age_secs: None,
            last_tracking_at: None,
            last_tracking_age_secs: Some(12.5),
            stale: true,
        };
        let snapshot = Snapshot {
            generated_at: chrono::Utc::now(),
            processes: 0,
            queues: Vec::new(),
        };
        let text = render_system_gauges(&snapshot, &[store], &[("ALPH".into(), 2)]);
        assert!(text.contains("ordersync_sms_unknown{store=\"ALPH\"} 2"));
        assert!(text.contains(
            "ordersync_store_last_success_age_seconds{store=\"ALPH\",kind=\"import_orders\"} +Inf"
        ));
        assert!(text.contains(
            "ordersync_store_last_success_age_seconds{store=\"ALPH\",kind=\"fetch_tracking\"} 12.5"
        ));
        assert!(!text.contains("ordersync_store_tracking_coverage_ratio{"));
    }
}
