//! Operator figures: `ordersync queues`, the api's and workers' /metrics,
//! store freshness and the probes, each compared with what Redis and
//! Postgres hold.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use ordersync::domain::JobKind;
use ordersync::domain::{Lane, Source};
use ordersync::queue::{NewJob, QueueKeys};
use redis::AsyncCommands as _;
use serde_json::{json, Value};

use crate::helpers::{
    child_command, noop, noops, redis, serve_api, two_stores, ChildGuard, TestApp, ADMIN_TOKEN,
};

/// `name{labels} value` lines of a Prometheus text body, keyed by the part
/// before the value.
fn samples(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_figures_match_what_redis_and_the_ledger_hold() {
    let mut app = TestApp::spawn(two_stores(1)).await;

    // History: 5 successes, 2 permanent failures, 1 job failing transiently
    // until its 3 attempts are used (2 retries, then failed).
    let mut history = noops(5, json!(null));
    history.extend(noops(2, json!({"fail": "permanent"})));
    history.extend(noops(1, json!({"fail": "transient"})));
    app.start_worker(&[JobKind::Noop]);
    let envelopes = app.enqueue(history).await;
    for e in &envelopes {
        app.wait_final(e.job_id).await;
    }
    app.stop_workers().await;
    // An operator discards one failure: it leaves the unresolved count, not
    // the last minute's failures.
    let discarded = envelopes[5].job_id.to_string();
    let out = app.cli(&["jobs", "discard", &discarded]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // In flight: a worker process holding 2 slow jobs, frozen with SIGSTOP
    // so nothing moves while the figures are read.
    app.enqueue(noops(2, json!({"sleep_ms": 120_000}))).await;
    let mut worker = app.spawn_worker_process_with(
        &[JobKind::Noop],
        &[
            "--fetchers",
            "1",
            "--fetch-batch",
            "2",
            "--concurrency",
            "2",
        ],
    );
    let live_keys = QueueKeys::new(&app.namespace, JobKind::Noop, Lane::Live, 1);
    let mut redis = redis().await;
    let workers_key = live_keys.config.workers_set();
    let inflight_prefix = live_keys.inflight_prefix();
    app.eventually("the worker holds both slow jobs", || {
        let mut redis = redis.clone();
        let workers_key = workers_key.clone();
        let inflight_prefix = inflight_prefix.clone();
        async move {
            let workers: Vec<String> = redis.zrange(&workers_key, 0, -1).await.unwrap();
            let mut n = 0u64;
            for w in &workers {
                n += redis
                    .scard::<_, u64>(format!("{inflight_prefix}:{w}"))
                    .await
                    .unwrap();
            }
            (n == 2).then_some(())
        }
    })
    .await;
    let stopped = std::process::Command::new("kill")
        .args(["-STOP", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());

    // Pending and scheduled: 3 live, 4 bulk, 2 retries due in an hour.
    let before_pending = Utc::now();
    app.enqueue(noops(3, json!(null))).await;
    app.deps
        .enqueuer
        .enqueue(Source::Scheduler, noops(4, json!(null)))
        .await
        .unwrap();
    let after_pending = Utc::now();
    let later: Vec<NewJob> = noops(2, json!(null))
        .into_iter()
        .map(|j| NewJob {
            run_at: Some(Utc::now() + chrono::Duration::hours(1)),
            ..j
        })
        .collect();
    app.enqueue(later).await;

    let api = serve_api(&app).await;
    let base = &api.base;
    let http = reqwest::Client::new();
    let api: Value = http
        .get(format!("{base}/admin/api/queues"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cli = app.cli(&["queues", "--json"]);
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = samples(&metrics);
    let read_at = Utc::now();

    // What Redis and the ledger hold, read independently.
    let bulk_keys = QueueKeys::new(&app.namespace, JobKind::Noop, Lane::Bulk, 1);
    let mut expected = HashMap::new();
    for (lane, keys) in [("live", &live_keys), ("bulk", &bulk_keys)] {
        let pending: u64 = redis.llen(keys.config.active_jobs_list()).await.unwrap();
        let scheduled: u64 = redis.zcard(keys.delayed()).await.unwrap();
        let workers: Vec<String> = redis
            .zrange(keys.config.workers_set(), 0, -1)
            .await
            .unwrap();
        let mut in_flight = 0u64;
        for w in &workers {
            in_flight += redis
                .scard::<_, u64>(format!("{}:{w}", keys.inflight_prefix()))
                .await
                .unwrap();
        }
        // Live: a heartbeat (unix seconds) within heartbeat x missed.
        let live_since = Utc::now().timestamp() - 15;
        let live: u64 = redis
            .zcount(keys.config.workers_set(), live_since, "+inf")
            .await
            .unwrap();
        expected.insert(lane, (pending, scheduled, in_flight, live));
    }
    let (live_pending, live_scheduled, live_in_flight, live_workers) = expected["live"];
    assert_eq!(
        (live_pending, live_scheduled, live_in_flight),
        (3, 2, 2),
        "Redis itself"
    );
    assert_eq!(&expected["bulk"].0, &4, "Redis itself");
    // The frozen process's fetcher at least (the stopped in-process
    // worker's heartbeat may still be recent).
    assert!(live_workers >= 1);
    let unresolved = app
        .count("SELECT count(*) FROM dead_letters WHERE resolution IS NULL")
        .await as u64;
    let completed = app
        .count("SELECT count(*) FROM job_runs WHERE outcome IN ('succeeded', 'skipped')")
        .await as u64;
    let failed = app
        .count("SELECT count(*) FROM job_runs WHERE outcome IN ('failed', 'not_found')")
        .await as u64;
    let retried = app
        .count("SELECT count(*) FROM job_runs WHERE outcome = 'retry'")
        .await as u64;
    assert_eq!(
        (unresolved, completed, failed, retried),
        (2, 5, 3, 2),
        "the ledger itself"
    );

    for source in [&api, &cli] {
        let queues = source["queues"].as_array().unwrap();
        for (lane, (pending, scheduled, in_flight, workers)) in &expected {
            let q = queues
                .iter()
                .find(|q| q["kind"] == "noop" && q["lane"] == *lane)
                .unwrap_or_else(|| panic!("no noop {lane} queue in {source}"));
            assert_eq!(q["pending"], *pending, "{lane} pending");
            assert_eq!(q["scheduled"], *scheduled, "{lane} scheduled");
            assert_eq!(q["in_flight"], *in_flight, "{lane} in flight");
            assert_eq!(q["workers"], *workers, "{lane} live workers");
            let age = q["oldest_pending_age_secs"].as_f64().unwrap();
            let generated_at: chrono::DateTime<Utc> =
                serde_json::from_value(source["generated_at"].clone()).unwrap();
            let low = (generated_at - after_pending).num_milliseconds() as f64 / 1000.0;
            let high = (generated_at - before_pending).num_milliseconds() as f64 / 1000.0;
            assert!(
                age >= low - 0.01 && age <= high + 0.01,
                "{lane} oldest pending age {age} not within [{low}, {high}]"
            );
        }
        let live = queues
            .iter()
            .find(|q| q["kind"] == "noop" && q["lane"] == "live")
            .unwrap();
        assert_eq!(live["failed"], unresolved);
        assert_eq!(live["completed_last_minute"], completed);
        assert_eq!(live["failed_last_minute"], failed);
        assert_eq!(live["retried_last_minute"], retried);
        // Unused real kinds are listed with zeros; nothing else is invented.
        let invoice = queues
            .iter()
            .find(|q| q["kind"] == "create_invoice" && q["lane"] == "live")
            .unwrap();
        assert_eq!(invoice["pending"], 0);
        assert!(invoice["oldest_pending_age_secs"].is_null());
    }

    let labels = |lane: &str| {
        let queue = match lane {
            "live" => live_keys.name.clone(),
            _ => bulk_keys.name.clone(),
        };
        format!("queue=\"{queue}\",kind=\"noop\",lane=\"{lane}\"")
    };
    for (lane, (pending, scheduled, in_flight, workers)) in &expected {
        let l = labels(lane);
        for (state, value) in [
            ("pending", pending),
            ("scheduled", scheduled),
            ("in_flight", in_flight),
        ] {
            assert_eq!(
                metrics[&format!("ordersync_queue_jobs{{{l},state=\"{state}\"}}")],
                value.to_string(),
                "{lane} {state}"
            );
        }
        assert_eq!(
            metrics[&format!("ordersync_queue_workers{{{l}}}")],
            workers.to_string()
        );
        let age: f64 = metrics[&format!("ordersync_queue_oldest_pending_seconds{{{l}}}")]
            .parse()
            .unwrap();
        let high = (read_at - before_pending).num_milliseconds() as f64 / 1000.0;
        assert!(age > 0.0 && age <= high + 0.01, "{lane} age {age}");
    }
    assert_eq!(
        metrics[&format!("ordersync_failed_jobs{{{}}}", labels("live"))],
        unresolved.to_string()
    );

    // The human table shows the same row.
    let table = app.cli(&["queues"]);
    let table = String::from_utf8(table.stdout).unwrap();
    let row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("noop "))
        .unwrap_or_else(|| panic!("no noop row in\n{table}"))
        .split_whitespace()
        .collect();
    assert_eq!(&row[1..5], ["3", "2", "2", "2"], "{table}");

    worker.kill().unwrap();
    worker.wait().unwrap();
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_its_job_and_provider_metrics_and_probes() {
    let app = TestApp::spawn(two_stores(3)).await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut worker = app.spawn_worker_process_with(
        &[JobKind::Noop, JobKind::ImportOrders],
        &["--metrics-listen", &listen],
    );
    let mut jobs = noops(4, json!(null));
    jobs.extend(noops(1, json!({"fail": "permanent"})));
    jobs.push(NewJob::for_store(JobKind::ImportOrders, "BETA"));
    let envelopes = app.enqueue(jobs).await;
    for e in &envelopes {
        app.wait_final(e.job_id).await;
    }
    let http = reqwest::Client::new();
    let base = format!("http://{listen}");
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // Counters are recorded just before the ledger row is committed; poll.
    let metrics = app
        .eventually("the worker's metrics count every settled job", || {
            let http = http.clone();
            let base = base.clone();
            async move {
                let text = http
                    .get(format!("{base}/metrics"))
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                let m = samples(&text);
                (m.get("ordersync_jobs_total{kind=\"noop\",outcome=\"succeeded\"}")
                    == Some(&"4".to_owned()))
                .then_some(m)
            }
        })
        .await;
    assert_eq!(
        metrics["ordersync_jobs_total{kind=\"noop\",outcome=\"failed\"}"],
        "1"
    );
    assert_eq!(
        metrics["ordersync_jobs_total{kind=\"import_orders\",outcome=\"succeeded\"}"],
        "1"
    );
    assert_eq!(
        metrics["ordersync_job_duration_seconds_count{kind=\"noop\"}"],
        "5"
    );
    assert_eq!(
        metrics["ordersync_job_queue_lag_seconds_count{kind=\"noop\"}"],
        "5"
    );
    assert!(
        metrics.contains_key("ordersync_job_duration_seconds_bucket{kind=\"noop\",le=\"0.005\"}")
    );
    // The simulator counted the shop's requests; the worker counted the same.
    let shop_requests = app.sim.request_count(ordersync_simulator::Service::Shop);
    assert!(shop_requests >= 1);
    assert_eq!(
        metrics["ordersync_provider_requests_total{provider=\"woocommerce\",status=\"200\"}"],
        shop_requests.to_string()
    );
    worker.kill().unwrap();
    worker.wait().unwrap();
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_freshness_matches_the_sync_state_and_orders() {
    // Only BETA syncs; ALPH never does.
    let mut app = TestApp::spawn(two_stores(6)).await;
    app.start_worker(&[JobKind::ImportOrders, JobKind::FetchTracking]);
    for kind in [JobKind::ImportOrders, JobKind::FetchTracking] {
        app.run_ok(NewJob::for_store(kind, "BETA")).await;
    }
    let api = serve_api(&app).await;
    let base = &api.base;
    let http = reqwest::Client::new();
    let stores: Value = http
        .get(format!("{base}/admin/api/stores"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stores = stores["stores"].as_array().unwrap();
    let beta = stores.iter().find(|s| s["store"] == "BETA").unwrap();
    let alph = stores.iter().find(|s| s["store"] == "ALPH").unwrap();
    let (orders, tracked): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(tracking_number) FROM orders WHERE store = 'BETA'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(orders > 0 && tracked > 0);
    assert_eq!(beta["orders"], orders);
    assert_eq!(beta["tracked"], tracked);
    assert!(
        (beta["tracking_coverage"].as_f64().unwrap() - tracked as f64 / orders as f64).abs() < 1e-9
    );
    let last_import: chrono::DateTime<Utc> = sqlx::query_scalar(
        "SELECT last_success_at FROM store_sync_state WHERE store = 'BETA' AND kind = 'import_orders'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    let reported: chrono::DateTime<Utc> =
        serde_json::from_value(beta["last_import_at"].clone()).unwrap();
    assert_eq!(reported, last_import);
    assert_eq!(beta["stale"], false);
    assert_eq!(alph["stale"], true, "ALPH never synced");
    assert!(alph["last_import_at"].is_null());
    let alph_account = &app
        .config
        .stores
        .iter()
        .find(|s| s.code == "ALPH")
        .unwrap()
        .courier_account;
    assert_eq!(alph["courier_account"], alph_account.as_str());

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let metrics = samples(&metrics);
    assert_eq!(
        metrics["ordersync_store_last_success_age_seconds{store=\"ALPH\",kind=\"import_orders\"}"],
        "+Inf"
    );
    let beta_age: f64 = metrics
        ["ordersync_store_last_success_age_seconds{store=\"BETA\",kind=\"fetch_tracking\"}"]
        .parse()
        .unwrap();
    assert!((0.0..60.0).contains(&beta_age), "{beta_age}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_naming_redis_when_it_is_gone() {
    let app = TestApp::spawn(two_stores(1)).await;
    // A private Redis this test may kill.
    let port = free_port();
    let server = child_command("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .spawn();
    let Ok(server) = server else {
        panic!("redis-server is needed for this test");
    };
    let mut server = ChildGuard::new(server);
    let private = format!("redis://127.0.0.1:{port}");
    let redis = app
        .eventually("the private Redis answers", || {
            let url = private.clone();
            async move { ordersync::queue::connect(&url).await.ok() }
        })
        .await;
    let probes = ordersync::http::ops::Probes {
        db: app.db.clone(),
        redis,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, ordersync::http::ops::worker_router(probes)).await
    });
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    server.kill().unwrap();
    server.wait().unwrap();
    let reply = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(reply.status(), 503);
    let body = reply.text().await.unwrap();
    assert!(body.starts_with("redis: "), "{body}");
    assert!(!body.contains("postgres"), "{body}");
    // Liveness is about the process, not its dependencies.
    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_log_line_of_a_job_names_the_job() {
    let app = TestApp::spawn(two_stores(1)).await;
    let log_path = std::env::temp_dir().join(format!("ordersync-log-{}.jsonl", app.namespace));
    let log = std::fs::File::create(&log_path).unwrap();
    let worker = app
        .worker_command(&[JobKind::Noop])
        .arg("--log-json")
        .env("RUST_LOG", "info")
        .stderr(log)
        .spawn()
        .unwrap();
    let mut worker = ChildGuard::new(worker);
    // Transient failures log a line per retry, then the final failure.
    let job = NewJob {
        order_ref: Some("BETA-42".into()),
        ..noop(json!({"fail": "transient"}))
    };
    let id = app.enqueue_one(job).await;
    assert_eq!(app.wait_final(id).await.last().unwrap().outcome, "failed");
    let lines = app
        .eventually("the worker logged the final failure", || {
            let path = log_path.clone();
            async move {
                let text = std::fs::read_to_string(&path).ok()?;
                text.contains("job failed")
                    .then(|| text.lines().map(str::to_owned).collect::<Vec<_>>())
            }
        })
        .await;
    let _ = worker.kill();
    let _ = worker.wait();
    let _ = std::fs::remove_file(&log_path);
    let job_lines: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .filter(|v| v.to_string().contains(&id.to_string()))
        .collect();
    // Two retries and the failure (3 attempts).
    assert!(job_lines.len() >= 3, "{job_lines:?}");
    for line in &job_lines {
        let span = &line["span"];
        assert_eq!(span["job_id"], id.to_string(), "{line}");
        assert_eq!(span["kind"], "noop", "{line}");
        assert_eq!(span["store"], "BETA", "{line}");
        assert_eq!(span["order"], "BETA-42", "{line}");
        assert!(span["attempt"].as_u64().is_some(), "{line}");
    }
    let attempts: Vec<u64> = job_lines
        .iter()
        .map(|l| l["span"]["attempt"].as_u64().unwrap())
        .collect();
    assert!(
        attempts.contains(&1) && attempts.contains(&3),
        "{attempts:?}"
    );
    app.cleanup().await;
}
