//! What the courier side says: no tracking number yet (and which sync, or
//! which courier account, is to blame), a status that stopped moving, an
//! order nobody polls.

use chrono::{DateTime, Utc};

use super::pending::unfinished_state;
use super::{latest_of_kind, Finding, Severity, POLL_STALE_AFTER};
use crate::trace::model::{OrderTrace, DEFAULT_STUCK_DAYS};
use crate::trace::text::{fmt_time, when};

/// Why a non-final order has no tracking number.
pub(super) fn tracking_finding(trace: &OrderTrace, now: DateTime<Utc>) -> Option<Finding> {
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

/// A status unchanged for [`DEFAULT_STUCK_DAYS`] or more.
pub(super) fn stuck_finding(trace: &OrderTrace, now: DateTime<Utc>) -> Option<Finding> {
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

/// A tracked, non-final order not polled for [`POLL_STALE_AFTER`].
pub(super) fn poll_finding(trace: &OrderTrace, now: DateTime<Utc>) -> Option<Finding> {
    let order = &trace.order;
    // Tracked: a courier id (Maystro) or a tracking number (Yalidine).
    let tracked = order.courier_order_id.is_some() || order.tracking_number.is_some();
    if !tracked || order.status_is_final {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::trace::diagnosis::diagnose;
    use crate::trace::diagnosis::fixtures::*;

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
}
