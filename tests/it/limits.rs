//! Per-account request limits shared through Redis: the script's rules on
//! their own, a provider's "slow down" reaching every job of the account,
//! and three worker processes against the simulator's count of requests per
//! credential per second.

use std::collections::BTreeMap;
use std::time::Duration;

use ordersync::domain::limits::{AccountLimit, BreakerSettings};
use ordersync::domain::{JobKind, Provider};
use ordersync::providers::gate::Admission;
use ordersync::queue::ratelimit::Limiter;
use ordersync::queue::NewJob;
use ordersync_simulator::Service;

use crate::helpers::{redis, two_stores, TestApp, FAST_POLICIES};

/// A limiter on a namespace of its own; its keys are deleted by `drop_keys`.
async fn limiter(limit: AccountLimit) -> (Limiter, String) {
    let namespace = format!("limits-test-{}", uuid::Uuid::new_v4());
    let limits = BTreeMap::from([((Provider::Erpnext, "erp".to_owned()), limit)]);
    let limiter = Limiter::new(redis().await, &namespace, limits, Duration::from_secs(10));
    (limiter, namespace)
}

async fn drop_keys(namespace: &str) {
    let mut conn = redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{namespace}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_budget_admits_the_burst_then_one_request_per_interval() {
    let (limiter, namespace) = limiter(AccountLimit {
        rate_per_s: Some(10.0),
        burst: 3,
        max_in_flight: None,
        breaker: BreakerSettings::DEFAULT,
    })
    .await;
    for n in 0..3 {
        let admission = limiter.try_admit(Provider::Erpnext, "erp").await.unwrap();
        assert!(
            matches!(admission, Admission::Go(_)),
            "request {n}: {admission:?}"
        );
    }
    match limiter.try_admit(Provider::Erpnext, "erp").await.unwrap() {
        Admission::Wait(wait, "rate") => {
            assert!(wait <= Duration::from_millis(100), "{wait:?}")
        }
        other => panic!("the fourth request went through: {other:?}"),
    }
    // Another account is not limited by this one.
    assert!(matches!(
        limiter.try_admit(Provider::Mnotify, "sms").await.unwrap(),
        Admission::Go(_)
    ));
    drop_keys(&namespace).await;
}

#[tokio::test]
async fn the_in_flight_cap_holds_until_a_permit_is_released() {
    let (limiter, namespace) = limiter(AccountLimit {
        rate_per_s: Some(1000.0),
        burst: 1000,
        max_in_flight: Some(2),
        breaker: BreakerSettings::DEFAULT,
    })
    .await;
    let mut permits = Vec::new();
    for _ in 0..2 {
        match limiter.try_admit(Provider::Erpnext, "erp").await.unwrap() {
            Admission::Go(permit) => permits.push(permit),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        limiter.try_admit(Provider::Erpnext, "erp").await.unwrap(),
        Admission::Wait(_, "in_flight")
    ));
    use ordersync::providers::gate::{RequestGate as _, RequestOutcome};
    limiter
        .release(
            Provider::Erpnext,
            "erp",
            permits.remove(0),
            RequestOutcome::Answered,
        )
        .await;
    assert!(matches!(
        limiter.try_admit(Provider::Erpnext, "erp").await.unwrap(),
        Admission::Go(_)
    ));
    drop_keys(&namespace).await;
}

#[tokio::test]
async fn a_slow_down_stops_the_account_for_everyone_then_halves_its_rate() {
    let (limiter, namespace) = limiter(AccountLimit {
        rate_per_s: Some(100.0),
        burst: 1,
        max_in_flight: None,
        breaker: BreakerSettings::DEFAULT,
    })
    .await;
    limiter
        .pause_for(Provider::Erpnext, "erp", Duration::from_millis(300))
        .await
        .unwrap();
    match limiter.try_admit(Provider::Erpnext, "erp").await.unwrap() {
        Admission::Wait(wait, "backoff") => assert!(
            wait > Duration::from_millis(200) && wait <= Duration::from_millis(300),
            "{wait:?}"
        ),
        other => panic!("admitted during the pause: {other:?}"),
    }
    // An account with no configured limit obeys its provider too.
    limiter
        .pause_for(Provider::Mnotify, "sms", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(matches!(
        limiter.try_admit(Provider::Mnotify, "sms").await.unwrap(),
        Admission::Wait(_, "backoff")
    ));
    // After the pause: half the rate (one request per 20 ms, not 10 ms).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Admission::Go(_) = limiter.try_admit(Provider::Erpnext, "erp").await.unwrap() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never admitted again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    match limiter.try_admit(Provider::Erpnext, "erp").await.unwrap() {
        Admission::Wait(wait, "rate") => assert!(
            wait > Duration::from_millis(10) && wait <= Duration::from_millis(20),
            "{wait:?}"
        ),
        other => panic!("{other:?}"),
    }
    drop_keys(&namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_holds_back_the_next_job_of_the_account_without_using_its_attempt() {
    let mut app = TestApp::spawn(two_stores(3)).await;
    app.start_worker(&[]);
    app.import_and_track().await;
    let tracked: Vec<String> = sqlx::query_scalar(
        "SELECT reference FROM orders WHERE store = 'ALPH' AND tracking_number IS NOT NULL ORDER BY id LIMIT 2",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(tracked.len(), 2, "two tracked ALPH orders");
    // The courier tells the ALPH account to stay away for 30 s.
    app.sim.fail_next(Service::Courier, 1, 429, Some(30));
    let first = app
        .enqueue_one(NewJob::for_order(
            JobKind::RefreshStatus,
            "ALPH",
            &tracked[0],
        ))
        .await;
    app.eventually("the 429 to be recorded", || async {
        let runs = app.runs(first).await;
        runs.first().map(|r| r.outcome.clone())
    })
    .await;
    let requests_after_429 = app.sim.request_count(Service::Courier);
    let second = app
        .enqueue_one(NewJob::for_order(
            JobKind::RefreshStatus,
            "ALPH",
            &tracked[1],
        ))
        .await;
    let runs = app
        .eventually("the second job to be parked", || async {
            let runs = app.runs(second).await;
            (!runs.is_empty()).then_some(runs)
        })
        .await;
    assert_eq!(runs[0].outcome, "deferred", "{runs:#?}");
    assert_eq!(
        runs[0].error_class.as_deref(),
        Some("held_back"),
        "{runs:#?}"
    );
    assert_eq!(runs[0].attempt, 1, "parking uses no attempt");
    assert_eq!(
        app.sim.request_count(Service::Courier),
        requests_after_429,
        "nothing was sent to the courier during its Retry-After"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_stay_within_an_accounts_limit_plus_its_burst() {
    const RATE: u64 = 50;
    const BURST: u64 = 10;
    let mut app = TestApp::spawn_with(two_stores(300), FAST_POLICIES, |toml| {
        toml.push_str(&format!(
            "\n[limits.courier.alph]\nrate_per_s = {RATE}\nburst = {BURST}\n"
        ));
    })
    .await;
    app.start_worker(&[JobKind::ImportOrders, JobKind::FetchTracking]);
    app.import_and_track().await;
    let tracked: Vec<String> = sqlx::query_scalar(
        "SELECT reference FROM orders WHERE store = 'ALPH' AND tracking_number IS NOT NULL ORDER BY id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert!(
        tracked.len() >= 200,
        "{} tracked ALPH orders",
        tracked.len()
    );
    let _workers: Vec<_> = (0..3)
        .map(|_| app.spawn_worker_process(&[JobKind::RefreshStatus]))
        .collect();
    let ids = app
        .enqueue_ids(
            tracked
                .iter()
                .map(|r| NewJob::for_order(JobKind::RefreshStatus, "ALPH", r))
                .collect(),
        )
        .await;
    for id in &ids {
        let runs = app.wait_final(*id).await;
        let last = runs.last().unwrap();
        assert!(
            matches!(last.outcome.as_str(), "succeeded" | "skipped"),
            "{runs:#?}"
        );
        assert!(
            runs.iter().all(|r| r.attempt == 1),
            "an attempt was used on waiting: {runs:#?}"
        );
    }
    let peak = app.sim.peak_requests_per_second(Service::Courier);
    println!("courier account alph: limit {RATE}/s + burst {BURST}, observed peak {peak} requests in one second");
    assert!(
        peak <= RATE + BURST,
        "{peak} requests in one second against a limit of {RATE}/s with a burst of {BURST}"
    );
    let parked = app
        .count("SELECT count(*) FROM job_runs WHERE outcome = 'deferred' AND error_class = 'held_back'")
        .await;
    assert!(
        parked > 0,
        "600 concurrent slots against 50/s: some jobs must have been parked"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn the_breaker_opens_after_failures_in_a_row_probes_once_and_closes_on_success() {
    use ordersync::providers::gate::RequestOutcome;
    use ordersync::queue::breaker::{self, BreakerState};
    let (limiter, namespace) = limiter(AccountLimit {
        rate_per_s: None,
        burst: 1,
        max_in_flight: None,
        breaker: BreakerSettings {
            failures: 3,
            open_for: Duration::from_millis(1500),
        },
    })
    .await;
    let go = |a: Admission| match a {
        Admission::Go(p) => p,
        other => panic!("not admitted: {other:?}"),
    };
    let mut transitions = Vec::new();
    for _ in 0..3 {
        let permit = go(limiter.try_admit(Provider::Erpnext, "erp").await.unwrap());
        transitions.push(
            limiter
                .finish(
                    Provider::Erpnext,
                    "erp",
                    permit.id.as_deref().unwrap(),
                    RequestOutcome::Failed,
                )
                .await
                .unwrap(),
        );
    }
    assert_eq!(transitions, [None, None, Some("opened".to_owned())]);
    let mut conn = redis().await;
    let state = breaker::state(&mut conn, &namespace, Provider::Erpnext, "erp")
        .await
        .unwrap();
    assert_eq!(state.as_str(), "open", "{state:?}");
    assert!(matches!(
        limiter.try_admit(Provider::Erpnext, "erp").await.unwrap(),
        Admission::Wait(_, "breaker_open")
    ));
    // After the open period: exactly one probe goes; the others wait for it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let probe = loop {
        match limiter.try_admit(Provider::Erpnext, "erp").await.unwrap() {
            Admission::Go(p) => break p,
            Admission::Wait(_, "breaker_open") => {}
            other => panic!("{other:?}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "no probe");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(probe.probe);
    assert!(matches!(
        limiter.try_admit(Provider::Erpnext, "erp").await.unwrap(),
        Admission::Wait(_, "breaker_half_open")
    ));
    assert_eq!(
        breaker::state(&mut conn, &namespace, Provider::Erpnext, "erp")
            .await
            .unwrap(),
        BreakerState::HalfOpen
    );
    let closed = limiter
        .finish(
            Provider::Erpnext,
            "erp",
            probe.id.as_deref().unwrap(),
            RequestOutcome::Answered,
        )
        .await
        .unwrap();
    assert_eq!(closed.as_deref(), Some("closed"));
    go(limiter.try_admit(Provider::Erpnext, "erp").await.unwrap());
    drop_keys(&namespace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erp_outage_parks_the_invoices_and_creates_each_once_after_recovery() {
    use ordersync::queue::breaker;
    let mut app = TestApp::spawn_with(two_stores(2), FAST_POLICIES, |toml| {
        toml.push_str("\n[limits.erp.erpnext]\nbreaker_failures = 3\nbreaker_open_secs = 1\n");
    })
    .await;
    app.start_worker(&[]);
    let refs = app.import_new_orders("BETA", 200, "cod").await;
    app.sim.set_knobs(
        Service::Erp,
        ordersync_simulator::Knobs {
            error_rate: 1.0,
            ..Default::default()
        },
    );
    let ids = app
        .enqueue_ids(
            refs.iter()
                .map(|r| NewJob::for_order(JobKind::CreateInvoice, "BETA", r))
                .collect(),
        )
        .await;
    let mut conn = redis().await;
    app.eventually("the ERP's breaker to open", || {
        let mut conn = conn.clone();
        let namespace = app.namespace.clone();
        async move {
            let state = breaker::state(&mut conn, &namespace, Provider::Erpnext, "erpnext")
                .await
                .unwrap();
            (state.as_str() == "open").then_some(())
        }
    })
    .await;
    // Operators see it while the ERP is down (open, or half-open between
    // probes: never closed).
    let stores = app.cli(&["stores"]);
    let text = String::from_utf8_lossy(&stores.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("erp account 'erpnext' (erpnext)")
                && (l.contains("breaker OPEN until") || l.contains("breaker half-open"))),
        "{text}"
    );
    // Two failed probes later (one per open period), the ERP comes back.
    let requests_at_open = app.sim.request_count(Service::Erp);
    app.eventually("two probes of the down ERP", || async {
        (app.sim.request_count(Service::Erp) >= requests_at_open + 2).then_some(())
    })
    .await;
    app.sim
        .set_knobs(Service::Erp, ordersync_simulator::Knobs::default());
    for id in &ids {
        let runs = app.wait_final(*id).await;
        assert_eq!(runs.last().unwrap().outcome, "succeeded", "{runs:#?}");
    }
    assert_eq!(app.count("SELECT count(*) FROM dead_letters").await, 0);
    for reference in &refs {
        assert_eq!(app.sim.invoice_count(reference), 1, "{reference}");
    }
    let parked = app
        .count("SELECT count(*) FROM job_runs WHERE error_class = 'held_back'")
        .await;
    assert!(parked > 0, "the open breaker parked jobs");
    let attempts = app
        .count("SELECT count(*) FROM job_runs WHERE outcome IN ('retry', 'failed')")
        .await;
    println!("ERP outage, 200 invoices: 0 dead letters, {attempts} attempts used on failures, {parked} parked runs");
    let state = breaker::state(&mut conn, &app.namespace, Provider::Erpnext, "erpnext")
        .await
        .unwrap();
    assert_eq!(state.as_str(), "closed", "{state:?}");
    app.cleanup().await;
}
