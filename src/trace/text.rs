//! Words shared by the admin API and the terminal: how times read, and the
//! hints for a reference or store that matched no order (written from the
//! facts [`super::query`] returns).

use chrono::{DateTime, Duration, Utc};

use crate::trace::model::NearMiss;

/// `2026-03-01 10:15 UTC (3 days ago)`.
pub(super) fn when(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({})", fmt_time(t), ago(now - t))
}

/// `2026-03-01 10:15 UTC`.
pub(super) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// [`fmt_time`], or "an unknown time".
pub(super) fn fmt_time_opt(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "an unknown time".to_owned(), fmt_time)
}

/// `2026-03-01 10:15:07 UTC`, or "never": a hint compares it with the
/// moment an order was created in the shop, so it keeps the seconds.
fn fmt_time_seconds(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".to_owned(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
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

/// "no orders of store X" naming the stores that have some.
pub(super) fn unknown_store_message(store: &str, stores: &[String]) -> String {
    if stores.is_empty() {
        format!("no orders of store '{store}': the database has no orders at all (has import_orders run?)")
    } else {
        format!(
            "no orders of store '{store}' in the database; stores with orders: {}",
            stores.join(", ")
        )
    }
}

/// Why a reference matched no order, as hints for the operator.
pub(super) fn reference_hints(miss: &NearMiss) -> Vec<String> {
    match miss {
        NearMiss::Respelled { found } => vec![format!(
            "did you mean {found}? (references are case-sensitive)"
        )],
        NearMiss::NotStoreNumber => {
            vec!["order references look like STORE-NUMBER, e.g. ALPH-1001".to_owned()]
        }
        NearMiss::LowerCaseStore { upper, number } => {
            vec![format!("store codes are upper-case: try {upper}-{number}")]
        }
        NearMiss::UnknownStore {
            store,
            stores_with_orders,
        } => vec![unknown_store_message(store, stores_with_orders)],
        NearMiss::NotImported {
            store,
            reference,
            jobs_naming_it,
            latest_job_enqueued_at,
            last_import,
        } => {
            let mut hints = Vec::new();
            if *jobs_naming_it > 0 {
                hints.push(format!(
                    "{jobs_naming_it} job(s) name {reference} (the latest enqueued {}), but the order was never imported",
                    fmt_time_seconds(*latest_job_enqueued_at)
                ));
            }
            hints.push(match last_import {
                Some(job) => format!(
                    "store {store}'s last import_orders finished {} ({}): an order created in the shop since then is not imported yet",
                    fmt_time_seconds(job.latest_run.as_ref().map(|r| r.finished_at)),
                    job.state
                ),
                None => format!("store {store} has never run import_orders"),
            });
            hints
        }
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::ledger::runs::RunRow;
    use crate::trace::model::StoreJob;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn times_read_as_a_date_and_how_long_ago() {
        let now = at("2026-03-10T12:00:00Z");
        assert_eq!(
            when(at("2026-03-07T11:00:00Z"), now),
            "2026-03-07 11:00 UTC (3 days ago)"
        );
        assert_eq!(
            when(at("2026-03-10T11:00:00Z"), now),
            "2026-03-10 11:00 UTC (1 hour ago)"
        );
        assert_eq!(
            when(at("2026-03-10T12:00:30Z"), now),
            "2026-03-10 12:00 UTC (in less than a minute)"
        );
        assert_eq!(
            when(at("2026-03-10T12:05:00Z"), now),
            "2026-03-10 12:05 UTC (in 5 minutes)"
        );
        assert_eq!(fmt_time_opt(None), "an unknown time");
    }

    #[test]
    fn an_unknown_store_names_the_stores_that_have_orders() {
        assert_eq!(
            unknown_store_message("ZZZZ", &["ALPH".into(), "BETA".into()]),
            "no orders of store 'ZZZZ' in the database; stores with orders: ALPH, BETA"
        );
        assert!(unknown_store_message("ZZZZ", &[]).contains("no orders at all"));
    }

    #[test]
    fn a_reference_of_a_known_store_hints_at_its_jobs_and_last_import() {
        let import = StoreJob {
            job_id: Uuid::nil(),
            source: "scheduler".into(),
            enqueued_at: at("2026-03-10T11:59:00Z"),
            state: "succeeded".into(),
            latest_run: Some(RunRow {
                run: 1,
                attempt: 1,
                worker: "host-1-abc".into(),
                started_at: at("2026-03-10T11:59:58Z"),
                finished_at: at("2026-03-10T11:59:59Z"),
                outcome: "succeeded".into(),
                error_class: None,
                error_message: None,
                http_status: None,
                next_run_at: None,
                detail: None,
            }),
        };
        let miss = |jobs_naming_it, last_import| NearMiss::NotImported {
            store: "BETA".into(),
            reference: "BETA-7".into(),
            jobs_naming_it,
            latest_job_enqueued_at: Some(at("2026-03-10T10:00:01Z")),
            last_import,
        };
        assert_eq!(
            reference_hints(&miss(2, Some(Box::new(import)))),
            [
                "2 job(s) name BETA-7 (the latest enqueued 2026-03-10 10:00:01 UTC), but the order was never imported",
                "store BETA's last import_orders finished 2026-03-10 11:59:59 UTC (succeeded): an order created in the shop since then is not imported yet",
            ]
        );
        assert_eq!(
            reference_hints(&miss(0, None)),
            ["store BETA has never run import_orders"]
        );
    }

    #[test]
    fn a_misspelled_reference_gets_one_hint() {
        assert_eq!(
            reference_hints(&NearMiss::LowerCaseStore {
                upper: "ALPH".into(),
                number: "9".into()
            }),
            ["store codes are upper-case: try ALPH-9"]
        );
        assert_eq!(
            reference_hints(&NearMiss::NotStoreNumber),
            ["order references look like STORE-NUMBER, e.g. ALPH-1001"]
        );
    }
}
