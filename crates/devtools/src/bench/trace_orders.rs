//! (h) Order tracing on a big ledger: seeds N orders (a million for `just
//! bench`) with their status history, ~3 jobs each with 1–3 runs, failures,
//! invoices and texts, plus a month of the stores' own syncs and a few
//! orders polled every five minutes for a month (10,000 jobs each), in a
//! throwaway database; then times `trace_order` on random references and
//! `stuck_orders`, and checks that no query plan scans a big table.
//!
//! Seeding uses `INSERT ... SELECT` over `generate_series` (nothing crosses
//! the wire), in insertion order of time, as production writes it: order ids
//! grow with import time and job ids are UUIDv7-shaped from their enqueue
//! time, so the indexes are as dense as the real ones.

use std::collections::BTreeMap;
use std::time::Instant;

use std::str::FromStr as _;

use anyhow::Context as _;
use rand::Rng as _;
use sqlx::ConnectOptions as _;
use sqlx::PgPool;

use ordersync::trace;

/// Stores of the seeded orders (ALPH on its own courier account, as in the demo).
const STORES: [&str; 6] = ["ALPH", "BETA", "GAMA", "DELT", "EPSI", "ZETA"];
/// Orders polled every five minutes for 35 days: the worst case of a trace.
const HEAVY_ORDERS: i64 = 5;
const HEAVY_JOBS_PER_ORDER: i64 = 10_000;

/// A UUIDv7-shaped id from a timestamp expression and a unique sequence
/// number expression (SQL), so ids sort by time like the real ones.
fn job_id_sql(at: &str, seq: &str) -> String {
    format!(
        "(lpad(to_hex((extract(epoch FROM {at}) * 1000)::bigint), 12, '0') || '7'
          || lpad(to_hex(({seq}) % 4096), 3, '0') || '8' || lpad(to_hex({seq}), 15, '0'))::uuid"
    )
}

/// Seed, measure, report into `results`, drop the database.
///
/// # Errors
/// Postgres failed, or a trace came back wrong.
pub(super) async fn run(
    server_url: &str,
    database: &str,
    orders: i64,
    samples: usize,
    results: &mut BTreeMap<&'static str, f64>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        orders >= 1000,
        "--trace-orders {orders}: seed at least 1000 orders"
    );
    let name = format!("{database}_trace");
    let url = crate::database::recreate_scratch(server_url, &name).await?;
    // Seeding statements run for seconds by design: no slow-statement warnings.
    // Index builds sort in memory rather than in temporary files.
    let options = sqlx::postgres::PgConnectOptions::from_str(&url)?
        .disable_statement_logging()
        .options([("maintenance_work_mem", "256MB")]);
    let db = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .context("connecting to the tracing benchmark's database")?;
    ordersync::ledger::migrate(&db).await?;

    let started = Instant::now();
    // Bulk loads build keys and indexes and check foreign keys once at the
    // end, which is several times faster than row by row; the schema ends up
    // identical.
    let deferred = Deferred::drop(&db).await?;
    // The orders view's triggers keep counts row by row and statement by
    // statement; the load sets the invoice state itself and counts once.
    for table in VIEW_TRIGGER_TABLES {
        sqlx::query(&format!("ALTER TABLE {table} DISABLE TRIGGER USER"))
            .execute(&db)
            .await?;
    }
    let heavy = seed(&db, orders).await?;
    for table in VIEW_TRIGGER_TABLES {
        sqlx::query(&format!("ALTER TABLE {table} ENABLE TRIGGER USER"))
            .execute(&db)
            .await?;
    }
    ordersync::ledger::orders_view::recount(&db).await?;
    deferred.restore(&db).await?;
    // Production's autovacuum keeps statistics and the visibility map fresh;
    // a bulk load needs it done once.
    parallel(
        &db,
        SEEDED_TABLES
            .iter()
            .map(|t| {
                (
                    format!("vacuum analyze {t}"),
                    format!("VACUUM (ANALYZE) {t}"),
                )
            })
            .collect(),
    )
    .await?;
    let seed_secs = started.elapsed().as_secs_f64();
    println!("(h) seeded {orders} orders in {seed_secs:.1}s");
    results.insert("trace_seed_secs", seed_secs);
    results.insert("trace_orders_seeded", orders as f64);

    let seq_scans = check_plans(
        &db,
        heavy.first().context("no heavily polled order seeded")?,
    )
    .await?;
    results.insert("trace_plan_seq_scans", seq_scans as f64);

    // Random references, each traced once: mostly cold pages, as an
    // operator's look-ups are.
    let picks: Vec<String> = {
        let mut rng = rand::rng();
        (0..samples)
            .map(|_| reference(rng.random_range(0..orders)))
            .collect()
    };
    let mut latencies = Vec::with_capacity(samples);
    for reference in &picks {
        let t = Instant::now();
        let found = trace::trace_order(&db, reference)
            .await?
            .with_context(|| format!("seeded order {reference} not found"))?;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            found.jobs.len() >= 3,
            "{reference}: expected its 3 jobs, got {}",
            found.jobs.len()
        );
    }
    latencies.sort_by(f64::total_cmp);
    results.insert("trace_order_p50_ms", super::percentile(&latencies, 0.50));
    results.insert("trace_order_p99_ms", super::percentile(&latencies, 0.99));

    let mut heavy_max: f64 = 0.0;
    for reference in &heavy {
        let t = Instant::now();
        let found = trace::trace_order(&db, reference)
            .await?
            .context("heavy order missing")?;
        heavy_max = heavy_max.max(t.elapsed().as_secs_f64() * 1000.0);
        let polls = found.job_totals.get("refresh_status").copied();
        anyhow::ensure!(
            polls > Some(HEAVY_JOBS_PER_ORDER)
                && found.jobs.len() as i64 <= 3 * trace::JOBS_SHOWN_PER_KIND,
            "{reference}: {polls:?} polls, {} jobs shown",
            found.jobs.len()
        );
    }
    results.insert("trace_order_heavy_max_ms", heavy_max);

    let mut unknown_max: f64 = 0.0;
    for reference in ["ALPH-999999999", "alph-1001", "ZZZZ-1"] {
        let t = Instant::now();
        anyhow::ensure!(trace::trace_order(&db, reference).await?.is_none());
        let hints = trace::unknown_reference_hints(&db, reference).await?;
        anyhow::ensure!(!hints.is_empty(), "no hint for {reference}");
        unknown_max = unknown_max.max(t.elapsed().as_secs_f64() * 1000.0);
    }
    results.insert("trace_unknown_max_ms", unknown_max);

    let (stuck_ms, stuck) = median_ms(5, || {
        trace::stuck_orders(
            &db,
            trace::DEFAULT_STUCK_DAYS,
            None,
            trace::DEFAULT_STUCK_LIMIT,
        )
    })
    .await?;
    results.insert("stuck_orders_ms", stuck_ms);
    results.insert("stuck_orders_found", stuck.total as f64);
    let (stuck_store_ms, _) = median_ms(5, || {
        trace::stuck_orders(
            &db,
            trace::DEFAULT_STUCK_DAYS,
            Some("BETA"),
            trace::DEFAULT_STUCK_LIMIT,
        )
    })
    .await?;
    results.insert("stuck_orders_store_ms", stuck_store_ms);
    println!(
        "(h) {samples} traces of random orders, {} of orders with {HEAVY_JOBS_PER_ORDER}+ jobs, `stuck` over {} stuck orders; {seq_scans} sequential scans in the plans",
        heavy.len(),
        stuck.total
    );

    orders_view(&db, orders, samples, results).await?;

    db.close().await;
    let admin = ordersync::ledger::connect(server_url, 1).await?;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&admin)
        .await?;
    Ok(())
}

async fn median_ms<T, F, Fut>(runs: usize, mut f: F) -> anyhow::Result<(f64, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = sqlx::Result<T>>,
{
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f().await?);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok((super::percentile(&times, 0.5), last.context("no run")?))
}

/// Tables whose triggers maintain the orders view (migration 0011).
const VIEW_TRIGGER_TABLES: [&str; 3] = ["orders", "invoices", "invoice_steps"];

/// The orders view over the seeded orders: `samples` list pages under
/// random filters, searches and depths (`orders_list_p99_ms`), and the
/// counts (`orders_stats_ms`, median of 5), checked against the seed.
async fn orders_view(
    db: &PgPool,
    orders: i64,
    samples: usize,
    results: &mut BTreeMap<&'static str, f64>,
) -> anyhow::Result<()> {
    use ordersync::ops::orders_view::{page, ListParams};
    let stores: Vec<String> = STORES.iter().map(|s| (*s).to_owned()).collect();
    let pick = |rng: &mut rand::rngs::ThreadRng, options: &[&str]| -> Option<String> {
        let i = rng.random_range(0..options.len() * 2);
        options.get(i).map(|s| (*s).to_owned())
    };
    let mut latencies = Vec::with_capacity(samples * 2);
    let mut rng = rand::rng();
    for _ in 0..samples {
        let i = rng.random_range(0..orders);
        let q = match rng.random_range(0..6) {
            0 => Some(reference(i).to_lowercase()),
            1 => Some(format!("{:07}", i % 10_000_000)),
            2 => Some(format!("Customer {i}")),
            _ => None,
        };
        let mut params = ListParams {
            store: pick(&mut rng, &STORES),
            shop_status: pick(
                &mut rng,
                &["processing", "completed", "cancelled", "pending"],
            ),
            courier_status: pick(
                &mut rng,
                &[
                    "delivered",
                    "in_transit",
                    "returned",
                    "postponed",
                    "none",
                    "cancelled",
                ],
            ),
            invoice_state: pick(&mut rng, &["none", "draft"]),
            q,
            cursor: None,
            limit: None,
        };
        // Up to three pages deep, each timed.
        for _ in 0..rng.random_range(1..=3) {
            let request = params.check(&stores).map_err(anyhow::Error::msg)?;
            let t = Instant::now();
            let got = page(db, &request).await?;
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            match got.next_cursor {
                Some(next) => params.cursor = Some(next),
                None => break,
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    results.insert("orders_list_p50_ms", super::percentile(&latencies, 0.50));
    results.insert("orders_list_p99_ms", super::percentile(&latencies, 0.99));
    results.insert(
        "orders_list_max_ms",
        latencies.last().copied().unwrap_or(0.0),
    );
    let (stats_ms, stats) = median_ms(5, || ordersync::ledger::orders_view::stats(db)).await?;
    anyhow::ensure!(
        stats.total.orders == orders,
        "stats count {} orders, {orders} seeded",
        stats.total.orders
    );
    results.insert("orders_stats_ms", stats_ms);
    println!(
        "(h) orders view: {} list pages under random filters, p99 {:.1} ms; stats {stats_ms:.1} ms",
        latencies.len(),
        super::percentile(&latencies, 0.99)
    );
    Ok(())
}

/// The reference of seeded order `i` (0-based).
fn reference(i: i64) -> String {
    format!("{}-{}", STORES[(i % 6) as usize], 1000 + i / 6)
}

/// Statements run at once while seeding: one per core of the benchmark machine.
const PARALLEL: usize = 2;

async fn step(db: &PgPool, what: &str, sql: &str) -> anyhow::Result<()> {
    let t = Instant::now();
    let done = sqlx::query(sql)
        .execute(db)
        .await
        .with_context(|| format!("seeding {what}"))?;
    println!(
        "    {what}: {} rows in {:.1}s",
        done.rows_affected(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Run independent statements [`PARALLEL`] at a time.
async fn parallel(db: &PgPool, statements: Vec<(String, String)>) -> anyhow::Result<()> {
    use futures::{StreamExt as _, TryStreamExt as _};
    futures::stream::iter(statements)
        .map(|(what, sql)| async move { step(db, &what, &sql).await })
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// `n` contiguous ranges `[lo, hi)` covering `[0, total)`.
fn ranges(total: i64, n: i64) -> Vec<(i64, i64)> {
    (0..n)
        .map(|k| (total * k / n, total * (k + 1) / n))
        .collect()
}

/// Seed `orders` orders and everything around them; returns the references
/// of the heavily polled ones.
async fn seed(db: &PgPool, orders: i64) -> anyhow::Result<Vec<String>> {
    let stores = STORES.map(|s| format!("'{s}'")).join(", ");
    let halves = ranges(orders, PARALLEL as i64);
    // Old orders: 82% delivered, 8% returned, 6% cancelled, 3% stuck in a
    // non-final status, 1% never seen by the courier. The last three days:
    // moving parcels, fast deliveries, and some not at the courier yet. Ids
    // are given (i + 1), so they grow with the import time as in production.
    let orders_sql = |lo: i64, hi: i64| {
        format!(
            "WITH base AS (
                 SELECT i, (ARRAY[{stores}])[1 + i % 6] AS store, 1000 + i / 6 AS number,
                        now() - make_interval(secs => ({orders} - i)::float8 / {orders} * 180 * 86400) AS imported,
                        random() AS r1, random() AS r2
                 FROM generate_series({lo}, {hi} - 1) AS i
             ), fated AS (
                 SELECT b.*,
                        CASE WHEN imported > now() - interval '3 days' THEN
                                  CASE WHEN r1 < 0.55 THEN 'moving' WHEN r1 < 0.85 THEN 'delivered' ELSE 'untracked' END
                             WHEN r1 < 0.82 THEN 'delivered' WHEN r1 < 0.90 THEN 'returned'
                             WHEN r1 < 0.96 THEN 'cancelled' WHEN r1 < 0.99 THEN 'stuck' ELSE 'untracked' END AS fate
                 FROM base b
             ), statused AS (
                 SELECT f.*,
                        CASE WHEN fate IN ('moving', 'stuck') THEN
                                  CASE WHEN r2 < 0.3 THEN 4 WHEN r2 < 0.6 THEN 9 WHEN r2 < 0.8 THEN 31
                                       WHEN r2 < 0.9 THEN 42 ELSE 32 END
                             WHEN fate = 'delivered' THEN 41 WHEN fate = 'returned' THEN 52
                             WHEN fate = 'cancelled' THEN 50 END AS code,
                        CASE fate WHEN 'moving' THEN imported + (now() - imported) * r2
                                  WHEN 'stuck' THEN imported + interval '1 day'
                                  WHEN 'untracked' THEN NULL
                                  ELSE least(now(), imported + make_interval(secs => (1 + r2 * 4) * 86400)) END AS changed,
                        round((500 + r2 * 20000)::numeric, 2) AS total,
                        (ARRAY['cod', 'instapay', 'kashier_card', 'kashier_wallet'])[1 + i % 4] AS method,
                        '05' || lpad((i % 100000000)::text, 8, '0') AS phone,
                        CASE WHEN fate = 'cancelled' THEN 'cancelled'
                             WHEN fate IN ('delivered', 'returned') THEN 'completed'
                             WHEN fate = 'untracked' AND r2 < 0.2 THEN 'pending'
                             ELSE 'processing' END AS shop_status
                 FROM fated f
             )
             INSERT INTO orders (id, store, shop_order_id, reference, shop_status, payment_method, total, currency,
                                 phone, customer_name, raw, shop_modified_at, tracking_number, courier_order_id,
                                 courier_code, courier_label, status, status_changed_at, last_polled_at,
                                 imported_at, updated_at, invoice_state)
             SELECT i + 1, store, number, store || '-' || number, shop_status, method, total, 'DZD', phone,
                    'Customer ' || i,
                    jsonb_build_object('id', number, 'number', number::text, 'status', shop_status,
                        'currency', 'DZD', 'total', total::text, 'payment_method', method,
                        'date_created_gmt', to_char(imported, 'YYYY-MM-DD\"T\"HH24:MI:SS'),
                        'billing', jsonb_build_object('first_name', 'Customer', 'last_name', i::text,
                            'phone', phone, 'address_1', i || ' rue Didouche Mourad', 'city', 'Alger',
                            'country', 'DZ'),
                        'line_items', jsonb_build_array(jsonb_build_object('name', 'Coque téléphone',
                            'sku', 'CAS-012', 'quantity', 1, 'price', total::text))),
                    imported,
                    CASE WHEN code IS NOT NULL THEN (10000000 + i)::text END,
                    CASE WHEN code IS NOT NULL THEN 500000 + i END,
                    code,
                    CASE code WHEN 4 THEN 'CRÉÉ' WHEN 9 THEN 'EN TRANSIT POUR EXPÉDITION' WHEN 31 THEN 'EXPÉDIÉ'
                              WHEN 42 THEN 'REPORTÉ' WHEN 32 THEN 'ALERTÉ' WHEN 41 THEN 'LIVRÉ'
                              WHEN 52 THEN 'PRIS PAR LE MAGASIN' WHEN 50 THEN 'ANNULÉ' END,
                    CASE code WHEN 4 THEN 'pending' WHEN 9 THEN 'in_transit' WHEN 31 THEN 'out_for_delivery'
                              WHEN 42 THEN 'postponed' WHEN 32 THEN 'delivery_issue' WHEN 41 THEN 'delivered'
                              WHEN 52 THEN 'returned' WHEN 50 THEN 'cancelled' END,
                    changed,
                    CASE WHEN fate IN ('moving', 'stuck') THEN now() - make_interval(secs => r2 * 300)
                         ELSE changed END,
                    imported, COALESCE(changed, imported),
                    -- The invoices seeded below (one per completed order), as
                    -- migration 0011's trigger would have set it.
                    CASE WHEN shop_status = 'completed' THEN 'draft' ELSE 'none' END
             FROM statused"
        )
    };
    parallel(
        db,
        halves
            .iter()
            .map(|&(lo, hi)| (format!("orders {lo}..{hi}"), orders_sql(lo, hi)))
            .collect(),
    )
    .await?;
    sqlx::query("SELECT setval('orders_id_seq', (SELECT max(id) FROM orders))")
        .execute(db)
        .await?;

    // Per order: its invoice job, one status poll and one text.
    let id = job_id_sql("j.enq", "o.id * 4 + j.k");
    let jobs_sql = |lo: i64, hi: i64| {
        format!(
            "INSERT INTO jobs (job_id, kind, queue, store, order_ref, payload, source, enqueued_at, max_attempts)
             SELECT x.id, x.kind, 'bench:' || x.kind, x.store, x.reference,
                    jsonb_build_object('job_id', x.id, 'kind', x.kind, 'store', x.store, 'order_ref', x.reference,
                        'args', x.args, 'attempt', 1, 'run', 1, 'max_attempts', x.max_attempts,
                        'enqueued_at', x.enq, 'source', x.source),
                    x.source, x.enq, x.max_attempts
             FROM (
                 SELECT {id} AS id, j.kind, o.store, o.reference, j.args, j.enq, j.max_attempts,
                        CASE j.k WHEN 2 THEN 'job' ELSE 'scheduler' END AS source
                 FROM orders o CROSS JOIN LATERAL (VALUES
                     (0, 'create_invoice', 'null'::jsonb, o.imported_at + interval '2 minutes', 8),
                     (1, 'refresh_status', 'null'::jsonb, COALESCE(o.status_changed_at, o.imported_at) - interval '1 minute', 6),
                     (2, 'send_sms', jsonb_build_object('status', COALESCE(o.status, 'in_transit')),
                         COALESCE(o.status_changed_at, o.imported_at) + interval '1 second', 5)
                 ) AS j(k, kind, args, enq, max_attempts)
                 WHERE o.id > {lo} AND o.id <= {hi}
             ) x"
        )
    };
    let invoice_job = job_id_sql("o.imported_at + interval '2 minutes'", "o.id * 4");
    let sms_job = job_id_sql("o.status_changed_at + interval '1 second'", "o.id * 4 + 2");
    let mut from_orders: Vec<(String, String)> = halves
        .iter()
        .map(|&(lo, hi)| (format!("jobs of orders {lo}..{hi}"), jobs_sql(lo, hi)))
        .collect();
    from_orders.push((
        "status history".into(),
        "INSERT INTO order_status_history (order_id, status, courier_code, courier_label, observed_at)
         SELECT o.id, h.status, h.code, h.label, h.at
         FROM orders o CROSS JOIN LATERAL (VALUES
             (1, 'pending', 4, 'CRÉÉ', o.imported_at + interval '1 hour'),
             (2, 'in_transit', 9, 'EN TRANSIT POUR EXPÉDITION', o.imported_at + interval '1 day'),
             (3, o.status, o.courier_code, o.courier_label, o.status_changed_at)
         ) AS h(step, status, code, label, at)
         WHERE o.status IS NOT NULL
           AND (h.step = 1
                OR (h.step = 2 AND o.status IN ('delivered', 'returned', 'out_for_delivery', 'postponed', 'delivery_issue'))
                OR (h.step = 3 AND o.status <> 'pending'))"
            .into(),
    ));
    from_orders.push((
        "invoices".into(),
        format!(
            "INSERT INTO invoices (order_id, reference, state, erp_name, job_id, claimed_at, settled_at)
             SELECT o.id, o.reference, 'created', 'ACC-SINV-2026-' || lpad(o.id::text, 7, '0'), {invoice_job},
                    o.imported_at + interval '2 minutes', o.imported_at + interval '2 minutes 1 second'
             FROM orders o WHERE o.shop_status = 'completed'"
        ),
    ));
    from_orders.push((
        "texts".into(),
        format!(
            "INSERT INTO sms_messages (order_id, status, state, phone, message, provider_message_id, job_id,
                                       claimed_at, sent_at)
             SELECT o.id, o.status, 'sent', o.phone, 'Order ' || o.reference || ' was delivered. Thank you!',
                    md5(o.reference), {sms_job}, o.status_changed_at, o.status_changed_at + interval '1 second'
             FROM orders o WHERE o.status IN ('delivered', 'in_transit', 'out_for_delivery')"
        ),
    ));
    parallel(db, from_orders).await?;

    // 60% of jobs have one run, 25% two, 15% three; 1% fail for good.
    let runs_sql = |kind: &str| {
        format!(
            "INSERT INTO job_runs (job_id, run, attempt, worker, started_at, finished_at, outcome, error_class,
                                   error_message, http_status, next_run_at, detail)
             SELECT j.job_id, r, r, 'bench-host-' || (j.h % 4), s.at, s.at + interval '40 ms',
                    CASE WHEN r < j.runs THEN 'retry' WHEN j.h % 100 = 0 THEN 'failed' ELSE 'succeeded' END,
                    CASE WHEN r < j.runs THEN 'server_error' WHEN j.h % 100 = 0 THEN 'validation' END,
                    CASE WHEN r < j.runs THEN j.provider || ' server_error (HTTP 503): Service Unavailable'
                         WHEN j.h % 100 = 0 THEN j.provider || ' validation (HTTP 417): ValidationError: Customer is mandatory' END,
                    CASE WHEN r < j.runs THEN 503 WHEN j.h % 100 = 0 THEN 417 END,
                    CASE WHEN r < j.runs THEN s.at + interval '2 seconds' END,
                    CASE WHEN r = j.runs AND j.h % 100 <> 0 THEN
                         CASE j.kind WHEN 'create_invoice' THEN jsonb_build_object('invoice', 'ACC-SINV-2026-00001', 'mode_of_payment', 'Cash')
                                     WHEN 'refresh_status' THEN jsonb_build_object('courier_code', 9, 'courier_label', 'EN TRANSIT POUR EXPÉDITION', 'status', 'in_transit')
                                     ELSE jsonb_build_object('message_id', md5(j.job_id::text), 'status', 'delivered') END END
             FROM (SELECT job_id, kind, enqueued_at, h,
                          CASE WHEN h % 20 < 12 THEN 1 WHEN h % 20 < 17 THEN 2 ELSE 3 END AS runs,
                          CASE kind WHEN 'create_invoice' THEN 'erpnext/erpnext' WHEN 'send_sms' THEN 'mnotify/mnotify'
                                    ELSE 'maystro/primary' END AS provider
                   FROM (SELECT job_id, kind, enqueued_at, abs(hashtext(job_id::text)) AS h
                         FROM jobs WHERE kind = '{kind}') hashed) j
             CROSS JOIN LATERAL generate_series(1, j.runs) AS r
             CROSS JOIN LATERAL (SELECT j.enqueued_at + make_interval(secs => (r - 1) * 2.05 + 0.01) AS at) s"
        )
    };
    parallel(
        db,
        ["create_invoice", "refresh_status", "send_sms"]
            .iter()
            .map(|kind| (format!("runs of {kind} jobs"), runs_sql(kind)))
            .collect(),
    )
    .await?;

    // The worst case: orders stuck for over a month, polled every five minutes.
    let heavy: Vec<String> = sqlx::query_scalar(
        "SELECT reference FROM orders WHERE status = 'in_transit'
           AND status_changed_at < now() - interval '40 days' ORDER BY id LIMIT $1",
    )
    .bind(HEAVY_ORDERS)
    .fetch_all(db)
    .await?;
    let quoted: Vec<String> = heavy.iter().map(|r| format!("'{r}'")).collect();
    let heavy_job = job_id_sql("p.at", "5000000000000 + p.n");
    // The stores' own syncs: fetch_tracking every 6 hours for 90 days,
    // import_orders every 2 minutes for 30 days, one run each.
    let store_job = job_id_sql("s.at", "4000000000000 + s.n");
    parallel(
        db,
        vec![
            (
                "dead letters".into(),
                "INSERT INTO dead_letters (job_id, kind, store, order_ref, payload, failed_at, attempts, outcome,
                                           error_class, error_message, http_status, fingerprint)
                 SELECT j.job_id, j.kind, j.store, j.order_ref, j.payload, r.finished_at, r.attempt, 'failed',
                        r.error_class, r.error_message, r.http_status, 'bench-' || j.kind
                 FROM job_runs r JOIN jobs j ON j.job_id = r.job_id WHERE r.outcome = 'failed'"
                    .into(),
            ),
            (
                format!("{HEAVY_ORDERS} orders polled {HEAVY_JOBS_PER_ORDER} times each"),
                format!(
                    "WITH p AS (
                         SELECT o.reference, o.store, t.at, row_number() OVER () AS n
                         FROM orders o
                         CROSS JOIN LATERAL generate_series(1, {HEAVY_JOBS_PER_ORDER}) AS g(i)
                         CROSS JOIN LATERAL (SELECT now() - make_interval(mins => 5 * g.i) AS at) t
                         WHERE o.reference IN ({})
                     ), j AS (
                         INSERT INTO jobs (job_id, kind, queue, store, order_ref, payload, source, enqueued_at, max_attempts)
                         SELECT {heavy_job}, 'refresh_status', 'bench:refresh_status', p.store, p.reference,
                                jsonb_build_object('kind', 'refresh_status', 'order_ref', p.reference), 'scheduler', p.at, 6
                         FROM p
                         RETURNING job_id, enqueued_at
                     )
                     INSERT INTO job_runs (job_id, run, attempt, worker, started_at, finished_at, outcome, detail)
                     SELECT job_id, 1, 1, 'bench-host-1', enqueued_at, enqueued_at + interval '20 ms', 'succeeded',
                            jsonb_build_object('courier_code', 9, 'status', 'in_transit')
                     FROM j",
                    quoted.join(", ")
                ),
            ),
            (
                "store syncs".into(),
                format!(
                    "WITH s AS (
                         SELECT st.store, k.kind, t.at, row_number() OVER () AS n
                         FROM unnest(ARRAY[{stores}]) AS st(store)
                         CROSS JOIN (VALUES ('fetch_tracking', interval '6 hours', interval '90 days'),
                                            ('import_orders', interval '2 minutes', interval '30 days')) AS k(kind, every, span)
                         CROSS JOIN LATERAL generate_series(now() - k.span, now(), k.every) AS t(at)
                     ), j AS (
                         INSERT INTO jobs (job_id, kind, queue, store, payload, source, enqueued_at, max_attempts)
                         SELECT {store_job}, s.kind, 'bench:' || s.kind, s.store,
                                jsonb_build_object('kind', s.kind, 'store', s.store), 'scheduler', s.at, 5
                         FROM s
                         RETURNING job_id, kind, store, enqueued_at
                     ), runs AS (
                         INSERT INTO job_runs (job_id, run, attempt, worker, started_at, finished_at, outcome, detail)
                         SELECT job_id, 1, 1, 'bench-host-0', enqueued_at, enqueued_at + interval '3 seconds', 'succeeded',
                                CASE kind WHEN 'fetch_tracking' THEN jsonb_build_object(
                                         'courier_account', CASE store WHEN 'ALPH' THEN 'alph' ELSE 'primary' END,
                                         'courier_orders', 10000, 'matched', 1650, 'status_changes', 40, 'unknown_refs', 25,
                                         'unknown_sample', jsonb_build_array(store || '-1000', store || '-1001'))
                                     ELSE jsonb_build_object('fetched', 12, 'inserted', 9, 'updated', 3) END
                         FROM j
                     )
                     INSERT INTO store_sync_state (store, kind, cursor, last_success_at)
                     SELECT st.store, k.kind, now(), now() FROM unnest(ARRAY[{stores}]) AS st(store)
                     CROSS JOIN (VALUES ('fetch_tracking'), ('import_orders')) AS k(kind)"
                ),
            ),
        ],
    )
    .await?;
    Ok(heavy)
}

/// Keys, indexes and foreign keys of the seeded tables, dropped for the load
/// and put back after it.
struct Deferred {
    /// (table, name, definition) of primary and unique keys.
    keys: Vec<(String, String, String)>,
    /// `CREATE INDEX ...` of the other indexes.
    indexes: Vec<String>,
    /// (table, name, definition) of foreign keys.
    foreign_keys: Vec<(String, String, String)>,
}

/// `invoice_steps` is not seeded, but its foreign key to `orders` must go
/// for the orders' key to be dropped.
const SEEDED_TABLES: [&str; 9] = [
    "orders",
    "invoice_steps",
    "order_status_history",
    "jobs",
    "job_runs",
    "dead_letters",
    "invoices",
    "sms_messages",
    "store_sync_state",
];

impl Deferred {
    async fn drop(db: &PgPool) -> anyhow::Result<Self> {
        let constraints = |kinds: &'static str| {
            sqlx::query_as::<_, (String, String, String)>(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                 WHERE contype = ANY($1) AND conrelid::regclass::text = ANY($2) ORDER BY conname",
            )
            .bind(kinds.split(',').collect::<Vec<_>>())
            .bind(SEEDED_TABLES)
            .fetch_all(db)
        };
        let foreign_keys = constraints("f").await?;
        let keys = constraints("p,u").await?;
        // Indexes that back no constraint.
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i
             WHERE i.schemaname = 'public' AND i.tablename = ANY($1)
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        )
        .bind(SEEDED_TABLES)
        .fetch_all(db)
        .await?;
        for (table, name, _) in foreign_keys.iter().chain(&keys) {
            sqlx::query(&format!("ALTER TABLE {table} DROP CONSTRAINT {name}"))
                .execute(db)
                .await?;
        }
        for (name, _) in &indexes {
            sqlx::query(&format!("DROP INDEX {name}"))
                .execute(db)
                .await?;
        }
        Ok(Self {
            keys,
            indexes: indexes.into_iter().map(|(_, create)| create).collect(),
            foreign_keys,
        })
    }

    async fn restore(self, db: &PgPool) -> anyhow::Result<()> {
        let t = Instant::now();
        let add = |(table, name, definition): &(String, String, String)| {
            (
                format!("key {name}"),
                format!("ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"),
            )
        };
        // Keys and indexes first (foreign keys need the referenced keys).
        let mut builds: Vec<(String, String)> = self.keys.iter().map(add).collect();
        builds.extend(self.indexes.iter().map(|create| {
            (
                create.split(" ON ").next().unwrap_or(create).to_owned(),
                create.clone(),
            )
        }));
        parallel(db, builds).await?;
        parallel(db, self.foreign_keys.iter().map(add).collect()).await?;
        println!(
            "    {} keys, {} indexes and {} foreign keys built: {:.1}s",
            self.keys.len(),
            self.indexes.len(),
            self.foreign_keys.len(),
            t.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// EXPLAIN every query of a trace and of `stuck`; print their scans and
/// return how many are sequential scans of a table that grows with the
/// orders (a small table may be scanned when that is cheaper).
async fn check_plans(db: &PgPool, heavy: &str) -> anyhow::Result<usize> {
    let (order_id, reference, store): (i64, String, String) = sqlx::query_as(
        "SELECT id, reference, store FROM orders WHERE status = 'in_transit' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(db)
    .await?;
    let job_ids: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT job_id FROM jobs WHERE order_ref = $1")
            .bind(&reference)
            .fetch_all(db)
            .await?;
    let cutoff = chrono::Utc::now() - chrono::Duration::days(i64::from(trace::DEFAULT_STUCK_DAYS));
    let mut seq_scans = 0;
    let plans: Vec<(&str, String)> = vec![
        ("order", trace::ORDER_SQL.to_owned()),
        ("history", trace::HISTORY_SQL.to_owned()),
        ("jobs", trace::JOBS_SQL.to_owned()),
        (
            "jobs of an order polled 10,000 times",
            trace::JOBS_SQL.to_owned(),
        ),
        ("runs", trace::RUNS_SQL.to_owned()),
        ("store jobs", trace::STORE_JOBS_SQL.to_owned()),
        ("stuck counts", trace::stuck_counts_sql(false)),
        ("stuck counts, one store", trace::stuck_counts_sql(true)),
        ("stuck list", trace::stuck_list_sql(false)),
        ("stuck list, one store", trace::stuck_list_sql(true)),
    ];
    for (what, sql) in plans {
        let explain = format!("EXPLAIN (FORMAT JSON) {sql}");
        let q = sqlx::query_scalar::<_, serde_json::Value>(&explain);
        let q = match what {
            "order" => q.bind(&reference),
            "history" => q.bind(order_id),
            "jobs" => q.bind(&reference).bind(trace::JOBS_SHOWN_PER_KIND),
            "jobs of an order polled 10,000 times" => {
                q.bind(heavy).bind(trace::JOBS_SHOWN_PER_KIND)
            }
            "runs" => q.bind(&job_ids),
            "store jobs" => q
                .bind(&store)
                .bind("fetch_tracking")
                .bind(trace::STORE_JOBS_SEARCHED),
            "stuck counts" => q.bind(cutoff),
            "stuck counts, one store" => q.bind(cutoff).bind(&store),
            "stuck list" => q
                .bind(cutoff)
                .bind(chrono::Utc::now())
                .bind(trace::DEFAULT_STUCK_LIMIT),
            _ => q
                .bind(cutoff)
                .bind(chrono::Utc::now())
                .bind(trace::DEFAULT_STUCK_LIMIT)
                .bind(&store),
        };
        let plan = q.fetch_one(db).await?;
        let mut scans = Vec::new();
        collect_scans(&plan, &mut scans);
        seq_scans += scans.iter().filter(|s| s.starts_with("Seq Scan")).count();
        println!("    plan of {what}: {}", scans.join(", "));
    }
    Ok(seq_scans)
}

fn collect_scans(node: &serde_json::Value, out: &mut Vec<String>) {
    match node {
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_scans(i, out)),
        serde_json::Value::Object(map) => {
            let kind = map.get("Node Type").and_then(|v| v.as_str());
            let relation = map
                .get("Relation Name")
                .and_then(|v| v.as_str())
                .map(|r| format!(" on {r}"));
            let index = map
                .get("Index Name")
                .and_then(|v| v.as_str())
                .map(|i| format!(" using {i}"));
            if let (Some(kind), true) = (kind, relation.is_some() || index.is_some()) {
                out.push(format!(
                    "{kind}{}{}",
                    relation.unwrap_or_default(),
                    index.unwrap_or_default()
                ));
            }
            map.values().for_each(|v| collect_scans(v, out));
        }
        _ => {}
    }
}
