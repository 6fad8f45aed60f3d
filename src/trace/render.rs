//! The terminal report of a trace and of the stuck orders
//! (`ordersync orders trace|stuck`); `--json` prints the data as the admin
//! API serves it instead.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use crate::ledger::runs::RunRow;
use crate::trace::text::{fmt_time, when};
use crate::trace::{
    OrderTrace, Severity, StoreJob, StuckOrders, JOBS_SHOWN_PER_KIND, MAX_STUCK_LIMIT,
};

/// The trace as a sectioned report, the diagnosis first.
pub fn render_trace(t: &OrderTrace) -> String {
    let now = t.generated_at;
    let o = &t.order;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Order {} (store {}, shop order {}), as of {}",
        o.reference,
        o.store,
        o.shop_order_id,
        fmt_time(now)
    );

    section(
        &mut out,
        if t.needs_attention {
            "Diagnosis: needs attention"
        } else {
            "Diagnosis"
        },
    );
    for f in &t.findings {
        let mark = match f.severity {
            Severity::Problem => "!",
            Severity::Waiting => "~",
            Severity::Info => "-",
        };
        let _ = writeln!(out, "  {mark} {}", f.message);
    }

    section(&mut out, "Order");
    let money = match &o.currency {
        Some(c) => format!("{} {c}", o.total),
        None => o.total.clone(),
    };
    row(
        &mut out,
        "shop",
        format!("{} · paid by {} · {money}", o.shop_status, o.payment_method),
    );
    row(
        &mut out,
        "customer",
        format!(
            "{} · {}",
            o.customer_name.as_deref().unwrap_or("(no name)"),
            o.phone_masked.as_deref().unwrap_or("(no phone)")
        ),
    );
    row(
        &mut out,
        "courier",
        match (&o.tracking_number, o.courier_order_id) {
            (None, None) => "not known to the courier yet (no tracking number)".to_owned(),
            (tracking, id) => format!(
                "tracking {} · courier order {} · code {}",
                tracking.as_deref().unwrap_or("-"),
                id.map_or_else(|| "-".to_owned(), |i| i.to_string()),
                match (o.courier_code, &o.courier_label) {
                    (Some(code), Some(label)) => format!("{code} {label}"),
                    (Some(code), None) => code.to_string(),
                    _ => "-".to_owned(),
                }
            ),
        },
    );
    row(
        &mut out,
        "status",
        match (&o.status, o.status_changed_at) {
            (Some(status), Some(since)) => format!(
                "{status}{} since {} · last polled {}",
                if o.status_is_final { " (final)" } else { "" },
                when(since, now),
                o.last_polled_at
                    .map_or_else(|| "never".to_owned(), |p| when(p, now))
            ),
            _ => "none yet (the courier has not reported it)".to_owned(),
        },
    );
    row(
        &mut out,
        "imported",
        format!(
            "{} · updated {}{}",
            fmt_time(o.imported_at),
            fmt_time(o.updated_at),
            o.shop_modified_at
                .map(|m| format!(" · modified in the shop {}", fmt_time(m)))
                .unwrap_or_default()
        ),
    );

    section(&mut out, "Status history");
    if t.status_history.is_empty() {
        let _ = writeln!(out, "  (no status change recorded)");
    }
    for h in &t.status_history {
        let _ = writeln!(
            out,
            "  {}  {:<16} {:>3} {:<28} {}",
            fmt_time(h.observed_at),
            h.status,
            h.courier_code,
            h.courier_label,
            h.job_id.map(|j| format!("job {j}")).unwrap_or_default()
        );
    }

    let shown = t.jobs.len() as i64;
    let total: i64 = t.job_totals.values().sum();
    section(
        &mut out,
        &if shown < total {
            format!(
                "Jobs ({shown} of {total}: the newest {JOBS_SHOWN_PER_KIND} of each kind and every open failure)"
            )
        } else {
            format!("Jobs ({total})")
        },
    );
    if t.jobs.is_empty() {
        let _ = writeln!(out, "  (no job has named this order)");
    }
    for j in &t.jobs {
        let args = match j.args.get("status").and_then(|s| s.as_str()) {
            Some(status) => format!(" '{status}'"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "  {}{args} {} · {} · enqueued {} by {}{}",
            j.kind,
            j.job_id,
            j.state,
            fmt_time(j.enqueued_at),
            j.source,
            j.replay_of
                .map(|r| format!(" · replays {r}"))
                .unwrap_or_default()
        );
        for r in &j.runs {
            let _ = writeln!(out, "    {}", describe_run(r, j.max_attempts));
        }
        if let Some(d) = &j.dead_letter {
            let state = match (d.state.as_str(), d.replayed_as) {
                ("replayed", Some(new_job)) => format!(
                    "replayed as {new_job} by {} {}",
                    d.resolved_by.as_deref().unwrap_or("?"),
                    d.resolved_at.map(fmt_time).unwrap_or_default()
                ),
                ("pending", _) => format!(
                    "pending: replay with `ordersync jobs replay {}` or discard with `ordersync jobs discard {}`",
                    j.job_id, j.job_id
                ),
                (other, _) => format!(
                    "{other} by {} {}",
                    d.resolved_by.as_deref().unwrap_or("?"),
                    d.resolved_at.map(fmt_time).unwrap_or_default()
                ),
            };
            let _ = writeln!(
                out,
                "    dead letter {} {} [{}] fingerprint {}: {state}",
                d.outcome,
                fmt_time(d.failed_at),
                d.error_class,
                d.fingerprint
            );
        }
    }

    section(&mut out, &format!("Store syncs ({})", t.store_syncs.store));
    for (kind, sync) in [
        ("fetch_tracking", &t.store_syncs.fetch_tracking),
        ("import_orders", &t.store_syncs.import_orders),
    ] {
        let last = match &sync.last_run {
            Some(job) => describe_store_job(job, now),
            None => "never ran".to_owned(),
        };
        let _ = writeln!(out, "  {kind:<15} last run {last}");
        if let Some(job) = &sync.in_progress {
            let _ = writeln!(
                out,
                "  {:<15} now: job {} {} (enqueued {})",
                "",
                job.job_id,
                job.state,
                fmt_time(job.enqueued_at)
            );
        }
        let last_succeeded = sync
            .last_run
            .as_ref()
            .is_some_and(|j| j.state == "succeeded");
        if !last_succeeded {
            let _ = writeln!(
                out,
                "  {:<15} last success {}",
                "",
                sync.last_success_at
                    .map_or_else(|| "never".to_owned(), |s| when(s, now))
            );
        }
    }

    section(&mut out, "Invoice");
    match &t.invoice {
        Some(i) => {
            let _ = writeln!(
                out,
                "  {} {} · job {} · claimed {}{}",
                i.state,
                i.erp_name.as_deref().unwrap_or("(no ERP name yet)"),
                i.job_id,
                fmt_time(i.claimed_at),
                i.settled_at
                    .map(|s| format!(" · settled {}", fmt_time(s)))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(out, "  none");
        }
    }

    section(&mut out, "SMS");
    if t.sms.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for s in &t.sms {
        let _ = writeln!(
            out,
            "  {:<16} {} {} · to {} · message id {} · job {}",
            s.status,
            s.state,
            fmt_time(s.sent_at.unwrap_or(s.claimed_at)),
            s.phone_masked,
            s.provider_message_id.as_deref().unwrap_or("-"),
            s.job_id
        );
    }
    out
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}");
}

fn row(out: &mut String, label: &str, value: String) {
    let _ = writeln!(out, "  {label:<10} {value}");
}

/// `run 2 · attempt 2/5 · host-1-ab · 10:15:00.123 -> 10:15:00.456 · retry [server_error] 503 (HTTP 503) · next 10:15:02`
fn describe_run(r: &RunRow, max_attempts: i32) -> String {
    let mut line = format!(
        "run {} · attempt {}/{max_attempts} · {} · {} -> {} · {}",
        r.run,
        r.attempt,
        r.worker,
        r.started_at.format("%Y-%m-%d %H:%M:%S%.3f"),
        r.finished_at.format("%H:%M:%S%.3f"),
        r.outcome
    );
    if let Some(class) = &r.error_class {
        let _ = write!(line, " [{class}]");
    }
    if let Some(message) = &r.error_message {
        let _ = write!(line, " {message}");
    }
    if let Some(status) = r.http_status {
        // Provider messages usually name the status already.
        if !line.contains(&format!("HTTP {status}")) {
            let _ = write!(line, " (HTTP {status})");
        }
    }
    if let Some(next) = r.next_run_at {
        let _ = write!(line, " · next {}", next.format("%Y-%m-%d %H:%M:%S"));
    }
    line
}

/// `succeeded 2026-03-01 10:15 UTC (2 hours ago): account 'primary', 120 courier orders, 40 matched, 4 without tracking`
fn describe_store_job(job: &StoreJob, now: DateTime<Utc>) -> String {
    let Some(run) = &job.latest_run else {
        return format!("queued {}", when(job.enqueued_at, now));
    };
    let mut line = format!("{} {}", job.state, when(run.finished_at, now));
    if let Some(message) = &run.error_message {
        let _ = write!(
            line,
            ": [{}] {message}",
            run.error_class.as_deref().unwrap_or("-")
        );
    }
    if let Some(d) = &run.detail {
        let n = |k: &str| match d.get(k) {
            Some(serde_json::Value::String(s)) => format!("'{s}'"),
            Some(v) => v.to_string(),
            None => "?".into(),
        };
        if d.get("matched").is_some() {
            let _ = write!(
                line,
                ": courier account {}, {} courier orders listed, {} matched, {} of the store's orders without tracking",
                n("courier_account"),
                n("courier_orders"),
                n("matched"),
                n("unknown_refs")
            );
        } else if d.get("fetched").is_some() {
            let _ = write!(
                line,
                ": {} fetched, {} inserted, {} updated",
                n("fetched"),
                n("inserted"),
                n("updated")
            );
        }
    }
    let _ = write!(line, " (job {})", job.job_id);
    line
}

/// The stuck orders: per-store counts, then the longest-stuck orders.
pub fn render_stuck(s: &StuckOrders) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Orders without a status change for more than {} day(s) (since before {}), {}: {}",
        s.days,
        fmt_time(s.cutoff),
        s.store
            .as_deref()
            .map_or_else(|| "all stores".to_owned(), |st| format!("store {st}")),
        s.total
    );
    if s.total == 0 {
        return out;
    }
    let _ = writeln!(
        out,
        "\n{:<8} {:>7}  {:<20}  by status",
        "store", "stuck", "oldest since"
    );
    for st in &s.per_store {
        let by: Vec<String> = st
            .by_status
            .iter()
            .map(|(status, n)| format!("{status} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "{:<8} {:>7}  {:<20}  {}",
            st.store,
            st.stuck,
            fmt_time(st.oldest_since),
            by.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\n{:<16} {:<6} {:<17} {:>5}  {:<20}  {:<12} last polled",
        "reference", "store", "status", "days", "since", "tracking"
    );
    for o in &s.orders {
        let _ = writeln!(
            out,
            "{:<16} {:<6} {:<17} {:>5}  {:<20}  {:<12} {}",
            o.reference,
            o.store,
            o.status,
            o.days_in_status,
            fmt_time(o.since),
            o.tracking_number.as_deref().unwrap_or("-"),
            o.last_polled_at
                .map_or_else(|| "never".to_owned(), fmt_time)
        );
    }
    if s.truncated {
        let _ = writeln!(
            out,
            "\nlisted {} of {}: raise --limit (up to {MAX_STUCK_LIMIT}) or filter with --store",
            s.orders.len(),
            s.total
        );
    }
    let _ = writeln!(
        out,
        "\nSee why one is stuck: ordersync orders trace REFERENCE"
    );
    out
}
