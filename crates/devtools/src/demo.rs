//! `ordersync simulate` and `ordersync demo`: the simulated providers, and
//! the end-to-end run `just demo` performs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;

use ordersync::cli::GlobalArgs;
use ordersync::domain::payment::{AWAITING_PAYMENT, PAYABLE_STATUSES};
use ordersync::domain::JobKind;
use ordersync::domain::NormalizedStatus;
use ordersync::domain::Source;
use ordersync::queue::NewJob;
use ordersync_simulator::{SimConfig, SimHandle};

/// `ordersync simulate`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SimulateArgs {
    /// Orders across the six demo stores.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) orders: usize,
    /// Port to listen on (127.0.0.1).
    #[arg(long, default_value_t = 9400)]
    pub(crate) port: u16,
    /// Added latency per response, ms.
    #[arg(long, default_value_t = 0)]
    pub(crate) latency_ms: u64,
    /// Courier statuses advance one step per this many ms (0: frozen).
    #[arg(long, default_value_t = 0)]
    pub(crate) status_step_ms: u64,
    /// Write an ordersync config file pointing at the simulator here, and its
    /// secrets as `export` lines in `<path>.env`.
    #[arg(long)]
    pub(crate) write_config: Option<PathBuf>,
}

/// Run the simulator until Ctrl-C.
///
/// # Errors
/// The port is taken or the config cannot be written.
pub(crate) async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let mut config = SimConfig::demo(args.orders);
    config.status_step = Duration::from_millis(args.status_step_ms);
    let sim =
        ordersync_simulator::start(config, SocketAddr::from(([127, 0, 0, 1], args.port))).await?;
    sim.set_knobs(
        ordersync_simulator::Service::Courier,
        ordersync_simulator::Knobs {
            latency: Duration::from_millis(args.latency_ms),
            ..Default::default()
        },
    );
    if let Some(path) = &args.write_config {
        let env = write_config(&sim, path, "")?;
        println!(
            "config written to {} (secrets in {})",
            path.display(),
            env.display()
        );
    }
    println!("simulator listening on {}", sim.base_url());
    ordersync::startup::shutdown_signal().await;
    sim.shutdown().await;
    Ok(())
}

/// Write an ordersync config for `sim`'s stores at `path` and the secrets
/// it names to `<path>.env`; `extra` is appended to the TOML (policy
/// overrides). Returns the env file's path.
///
/// # Errors
/// The files cannot be written.
pub(crate) fn write_config(sim: &SimHandle, path: &Path, extra: &str) -> anyhow::Result<PathBuf> {
    let (toml, secrets) = ordersync_simulator::ordersync_config(sim, extra);
    std::fs::write(path, toml).with_context(|| format!("writing {}", path.display()))?;
    let env_path = path.with_extension("env");
    let env: String = secrets
        .iter()
        .map(|(k, v)| format!("export {k}='{v}'\n"))
        .collect();
    std::fs::write(&env_path, env).with_context(|| format!("writing {}", env_path.display()))?;
    Ok(env_path)
}

/// `ordersync demo`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DemoArgs {
    /// Orders across the six stores.
    #[arg(long, default_value_t = 2_000)]
    pub(crate) orders: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    pub(crate) workers: usize,
    /// Database the demo recreates on the DATABASE_URL server.
    #[arg(long, default_value = "ordersync_demo")]
    pub(crate) database: String,
    /// Give up waiting for the queues after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub(crate) timeout_secs: u64,
}

/// Retry and deferral settings that keep the demo short: the shapes of the
/// production policies, with seconds instead of minutes.
const DEMO_POLICIES: &str = "[deferral]\ndelay_ms = 1500\nmax_age_secs = 3600\n\n\
[jobs.import_orders]\nbackoff_base_ms = 200\nbackoff_cap_ms = 2000\n\n\
[jobs.fetch_tracking]\nbackoff_base_ms = 200\nbackoff_cap_ms = 2000\n\n\
[jobs.refresh_status]\nbackoff_base_ms = 200\nbackoff_cap_ms = 2000\n\n\
[jobs.create_invoice]\nbackoff_base_ms = 200\nbackoff_cap_ms = 2000\n\n\
[jobs.send_sms]\nbackoff_base_ms = 200\nbackoff_cap_ms = 2000\n\n\
[jobs.cancel_invoice]\nbackoff_base_ms = 200\nbackoff_cap_ms = 2000\n\n\
[jobs.record_payment]\nbackoff_base_ms = 200\nbackoff_cap_ms = 2000\n\n\
[jobs.write_back]\nbackoff_base_ms = 200\nbackoff_cap_ms = 2000\n";

/// The demo: simulator, a fresh database, two worker processes, three waves
/// of jobs, and a per-store summary.
///
/// # Errors
/// A service is missing, a worker dies, or the queues do not drain in time.
pub(crate) async fn run(g: &GlobalArgs, args: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let database_url = crate::database::recreate_scratch(&g.database_url, &args.database).await?;
    let namespace = format!("demo-{}", chrono::Utc::now().format("%Y%m%d%H%M%S"));

    let mut sim_config = SimConfig::demo(args.orders);
    // Statuses move while the demo runs, so status polls find changes to text about.
    sim_config.status_step = Duration::from_millis(300);
    sim_config.unknown_payment_rate = 0.004;
    use_other_providers(&mut sim_config);
    let sim = ordersync_simulator::start(sim_config, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    // A flaky courier: 2% of calls fail with 5xx and are retried.
    sim.set_knobs(
        ordersync_simulator::Service::Courier,
        ordersync_simulator::Knobs {
            latency: Duration::from_millis(5),
            error_rate: 0.02,
            ..Default::default()
        },
    );
    println!(
        "simulator: {} stores, {} orders on {}",
        sim.config().stores.len(),
        args.orders,
        sim.base_url()
    );

    let dir = std::env::temp_dir().join(format!("ordersync-{namespace}"));
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("ordersync.toml");
    // The simulated company's rules: Kashier payments at once, cash on
    // delivery on delivery, delivered orders completed in the shop.
    let (toml, secrets) = ordersync_simulator::ordersync_config_with_store_rules(
        &sim,
        DEMO_POLICIES,
        ordersync_simulator::STORE_RULES,
    );
    std::fs::write(&config_path, &toml)?;
    // The config file names only variables; the secrets go to the workers'
    // environment, never to disk.
    let env: std::collections::HashMap<String, String> = secrets.iter().cloned().collect();
    let config =
        ordersync::config::Config::resolve(toml::from_str(&toml)?, &|name| env.get(name).cloned())?;
    for line in config.mapping_lines() {
        println!("  {line}");
    }
    let settings = ordersync::startup::Settings {
        database_url: database_url.clone(),
        redis_url: g.redis_url.clone(),
        namespace: namespace.clone(),
    };
    let deps = ordersync::startup::build(&settings, &config, 4).await?;

    let mut workers = Vec::new();
    for i in 0..args.workers {
        workers.push(spawn_worker(
            &config_path,
            &settings,
            &dir.join(format!("worker-{i}.log")),
            &secrets,
            &[],
        )?);
    }
    println!(
        "started {} worker processes (logs in {})",
        workers.len(),
        dir.display()
    );

    let stores: Vec<String> = config.stores.iter().map(|s| s.code.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let waves = Waves {
        deps: &deps,
        source: Source::Demo,
        stores: &stores,
        redis_url: &g.redis_url,
        namespace: &namespace,
        deadline,
    };

    waves.run(JobKind::ImportOrders, &mut workers).await?;
    println!(
        "[{:>5.1}s] imported orders",
        started.elapsed().as_secs_f64()
    );

    let preexisting = seed_old_invoices(&deps, &stores).await?;
    println!(
        "[{:>5.1}s] the ERP already holds {preexisting} invoices from the old cron job",
        started.elapsed().as_secs_f64()
    );

    waves.run(JobKind::FetchTracking, &mut workers).await?;
    println!(
        "[{:>5.1}s] fetched tracking numbers",
        started.elapsed().as_secs_f64()
    );

    let finals: Vec<&str> = NormalizedStatus::ALL
        .iter()
        .filter(|s| s.is_final())
        .map(|s| s.as_str())
        .collect();
    let invoiceable: Vec<&str> = PAYABLE_STATUSES
        .iter()
        .chain(AWAITING_PAYMENT.iter())
        .copied()
        .collect();
    let mut per_order = Vec::new();
    for store in &stores {
        for reference in
            ordersync::ledger::orders::needing_refresh(&deps.db, store, &finals, None).await?
        {
            per_order.push(NewJob::for_order(JobKind::RefreshStatus, store, &reference));
        }
        for reference in
            ordersync::ledger::orders::needing_invoice(&deps.db, store, &invoiceable).await?
        {
            per_order.push(NewJob::for_order(JobKind::CreateInvoice, store, &reference));
        }
    }
    let count = per_order.len();
    deps.enqueuer.enqueue(Source::Demo, per_order).await?;
    println!(
        "[{:>5.1}s] enqueued {count} status refreshes and invoices",
        started.elapsed().as_secs_f64()
    );
    // Customers pay: orders awaiting payment become payable, so their
    // deferred invoices go through on the next look.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut paid = 0;
    for store in &stores {
        for order in sim.shop_orders(store) {
            let status = order["status"].as_str().unwrap_or_default();
            if AWAITING_PAYMENT.contains(&status) {
                if let Some(id) = order["id"].as_i64() {
                    paid += u32::from(sim.set_shop_order_status(store, id, "processing"));
                }
            }
        }
    }
    println!(
        "[{:>5.1}s] {paid} customers paid pending orders",
        started.elapsed().as_secs_f64()
    );
    wait_drained(&g.redis_url, &namespace, deadline, &mut workers).await?;
    println!("[{:>5.1}s] queues drained", started.elapsed().as_secs_f64());

    // Some customers cancel or get refunded after their invoice: the shop's
    // webhooks would enqueue the cancellations.
    let cancellations = cancel_some_orders(&deps, &sim, &stores).await?;
    println!(
        "[{:>5.1}s] the shops cancelled or refunded {cancellations} invoiced orders",
        started.elapsed().as_secs_f64()
    );
    wait_drained(&g.redis_url, &namespace, deadline, &mut workers).await?;
    println!("[{:>5.1}s] queues drained", started.elapsed().as_secs_f64());

    for worker in &mut workers {
        stop_worker(worker).await;
    }
    let rows = ordersync::ledger::summary::per_store(&deps.db).await?;
    println!();
    print!("{}", ordersync::ops::summary::render_table(&rows));
    println!(
        "\nsimulator counted {} invoices and {} SMS (database '{}', namespace '{namespace}')",
        sim.invoices().len(),
        sim.sms_total(),
        args.database
    );
    lifecycle_summary(&deps, &sim, &stores).await?;
    sim.shutdown().await;
    ordersync::queue::depth::delete_namespace(&g.redis_url, &namespace).await?;
    println!("demo finished in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Beside the Maystro stores, GAMA ships with Yalidine (account `yal`) and
/// DELT sells data bundles whose statuses come from Datamart (account `dm`).
/// Yalidine's quotas are raised for the demo: at the published 50 a minute,
/// a few hundred status polls would outlast it.
fn use_other_providers(config: &mut SimConfig) {
    for store in &mut config.stores {
        let (account, key, api) = match store.code.as_str() {
            "GAMA" => (
                "yal",
                "demo-yalidine-token",
                ordersync_simulator::CourierApi::Yalidine,
            ),
            "DELT" => (
                "dm",
                "demo-datamart-key",
                ordersync_simulator::CourierApi::Datamart,
            ),
            _ => continue,
        };
        store.courier_account = account.into();
        store.courier_key = key.into();
        store.courier_api = api;
    }
    config.yalidine_quota = ordersync_simulator::YalidineQuota {
        per_second: 200,
        per_minute: 10_000,
        per_hour: 100_000,
        per_day: 1_000_000,
    };
}

/// The shop cancels every 9th and refunds every 13th invoiced order of each
/// store (after its payment, for prepaid ones); their cancellations are
/// enqueued as the shop's webhooks would. Returns how many.
async fn cancel_some_orders(
    deps: &ordersync::jobs::Deps,
    sim: &ordersync_simulator::SimHandle,
    stores: &[String],
) -> anyhow::Result<usize> {
    let mut jobs = Vec::new();
    for store in stores {
        let invoiced: Vec<(String, i64)> = sqlx::query_as(
            "SELECT o.reference, o.shop_order_id FROM orders o JOIN invoices i ON i.order_id = o.id
             WHERE o.store = $1 AND i.state = 'created' ORDER BY o.id",
        )
        .bind(store)
        .fetch_all(&deps.db)
        .await?;
        for (i, (reference, shop_id)) in invoiced.iter().enumerate() {
            let status = match (i % 9, i % 13) {
                (0, _) => "cancelled",
                (_, 0) => "refunded",
                _ => continue,
            };
            if sim.set_shop_order_status(store, *shop_id, status) {
                jobs.push(NewJob::for_order(JobKind::CancelInvoice, store, reference));
            }
        }
    }
    let n = jobs.len();
    // The import brings the shop's new statuses into the ledger first.
    let imports = stores
        .iter()
        .map(|s| NewJob::for_store(JobKind::ImportOrders, s))
        .collect();
    deps.enqueuer.enqueue(Source::Demo, imports).await?;
    deps.enqueuer.enqueue(Source::Demo, jobs).await?;
    Ok(n)
}

/// Per store: invoices submitted, payments recorded, invoices cancelled,
/// orders written back, from the ledger; then the same totals as the
/// simulator counted them, which must be equal.
async fn lifecycle_summary(
    deps: &ordersync::jobs::Deps,
    sim: &ordersync_simulator::SimHandle,
    stores: &[String],
) -> anyhow::Result<()> {
    let rows = ordersync::ledger::invoice_steps::per_store(&deps.db).await?;
    println!("\ninvoice lifecycle (ledger):");
    println!(
        "  {:<6} {:>10} {:>9} {:>10} {:>13}",
        "store", "submitted", "payments", "cancelled", "written back"
    );
    let mut total = ordersync::ledger::invoice_steps::LifecycleCounts::default();
    for row in &rows {
        println!(
            "  {:<6} {:>10} {:>9} {:>10} {:>13}",
            row.store, row.submitted, row.payments, row.cancelled, row.written_back
        );
        total.submitted += row.submitted;
        total.payments += row.payments;
        total.cancelled += row.cancelled;
        total.payments_cancelled += row.payments_cancelled;
        total.written_back += row.written_back;
    }
    let erp = sim.erp_counts();
    let writes: usize = stores.iter().map(|s| sim.shop_status_writes(s).len()).sum();
    let ledger = (
        total.submitted,
        total.payments,
        total.cancelled,
        total.payments_cancelled,
        total.written_back,
    );
    let simulator = (
        erp.submitted as i64,
        erp.payments as i64,
        erp.cancelled as i64,
        erp.payments_cancelled as i64,
        writes as i64,
    );
    println!(
        "  simulator: {} submitted, {} payments ({} cancelled by refunds), {} cancelled, {} written back",
        simulator.0, simulator.1, simulator.3, simulator.2, simulator.4
    );
    anyhow::ensure!(
        ledger == simulator,
        "the ledger (submitted, payments, cancelled, payments cancelled, written back) {ledger:?} disagrees with the simulator {simulator:?}"
    );
    anyhow::ensure!(
        erp.violations.is_empty(),
        "the ERP saw broken lifecycle rules: {}",
        erp.violations.join("; ")
    );
    println!("  ledger and simulator agree; no invoice submitted, cancelled or paid twice");
    Ok(())
}

/// Create ERP invoices for every 15th payable order, as the cron job that
/// ordersync replaces would have: `create_invoice` must find and skip them.
async fn seed_old_invoices(
    deps: &ordersync::jobs::Deps,
    stores: &[String],
) -> anyhow::Result<usize> {
    let erp = deps.accounts.erp().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut created = 0;
    for store in stores {
        let refs =
            ordersync::ledger::orders::needing_invoice(&deps.db, store, &PAYABLE_STATUSES).await?;
        for reference in refs.iter().step_by(15) {
            let today = chrono::Utc::now().date_naive();
            let invoice = ordersync::providers::erpnext::SalesInvoice {
                customer: "Walk-in Customer".into(),
                posting_date: today,
                due_date: today,
                po_no: reference.clone(),
                items: vec![ordersync::providers::erpnext::InvoiceItem {
                    item_code: "ORDER".into(),
                    item_name: format!("Order {reference}"),
                    qty: 1.0,
                    rate: 1.0,
                }],
                payments: vec![ordersync::providers::erpnext::InvoicePayment {
                    mode_of_payment: "Cash".into(),
                    amount: 1.0,
                }],
                // As the old cron job made them: a paid POS draft.
                is_pos: 1,
                update_stock: 0,
                docstatus: 0,
                custom_payment_method: "Cash".into(),
                woo_order_id: 0,
                woo_order_number: reference.clone(),
                custom_delivery_date: None,
                custom_delivery_time: None,
            };
            erp.create_invoice(&invoice).await?;
            created += 1;
        }
    }
    Ok(created)
}

/// Start an `ordersync-worker` process (the binary beside this one) with
/// `secrets` in its environment and `extra` arguments, logging to `log`.
///
/// # Errors
/// The binary is missing.
pub(crate) fn spawn_worker(
    config: &Path,
    settings: &ordersync::startup::Settings,
    log: &Path,
    secrets: &[(String, String)],
    extra: &[&str],
) -> anyhow::Result<tokio::process::Child> {
    let exe = std::env::current_exe()?.with_file_name("ordersync-worker");
    let log = std::fs::File::create(log)?;
    tokio::process::Command::new(&exe)
        .arg("--config")
        .arg(config)
        // Several workers on one machine: each takes a free metrics port.
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(extra)
        .envs(secrets.iter().map(|(k, v)| (k, v)))
        .env("DATABASE_URL", &settings.database_url)
        .env("REDIS_URL", &settings.redis_url)
        .env("ORDERSYNC_NAMESPACE", &settings.namespace)
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))
}

/// SIGTERM a worker process and wait for its graceful stop (SIGKILL after 10 s).
pub(crate) async fn stop_worker(worker: &mut tokio::process::Child) {
    if let Some(pid) = worker.id() {
        let _ = tokio::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(10), worker.wait())
        .await
        .is_err()
    {
        let _ = worker.kill().await;
    }
}

/// Per-store jobs of one kind for every store, enqueued together and waited for.
pub(crate) struct Waves<'a> {
    /// Where to enqueue.
    pub(crate) deps: &'a ordersync::jobs::Deps,
    /// Recorded as who enqueued them.
    pub(crate) source: Source,
    /// Every store.
    pub(crate) stores: &'a [String],
    /// Redis, to watch the queues.
    pub(crate) redis_url: &'a str,
    /// The queues' namespace.
    pub(crate) namespace: &'a str,
    /// Give up after this.
    pub(crate) deadline: Instant,
}

impl Waves<'_> {
    /// Enqueue a `kind` job for every store and wait until the queues drain.
    ///
    /// # Errors
    /// See [`wait_drained`].
    pub(crate) async fn run(
        &self,
        kind: JobKind,
        workers: &mut [tokio::process::Child],
    ) -> anyhow::Result<()> {
        let jobs = self
            .stores
            .iter()
            .map(|s| NewJob::for_store(kind, s))
            .collect();
        self.deps.enqueuer.enqueue(self.source, jobs).await?;
        wait_drained(self.redis_url, self.namespace, self.deadline, workers).await
    }
}

/// Wait until every queue of `namespace` is idle (twice in a row, so a job
/// enqueuing a follow-up is not mistaken for the end), failing if a worker
/// process exits or `deadline` passes.
///
/// # Errors
/// Redis failed, a worker died, or the deadline passed.
pub(crate) async fn wait_drained(
    redis_url: &str,
    namespace: &str,
    deadline: Instant,
    workers: &mut [tokio::process::Child],
) -> anyhow::Result<()> {
    let mut conn = ordersync::queue::connect(redis_url).await?;
    let mut idle_polls = 0;
    loop {
        for w in workers.iter_mut() {
            if let Some(status) = w.try_wait()? {
                anyhow::bail!("a worker process exited ({status}); see its log");
            }
        }
        let depths = ordersync::queue::depth::all_depths(&mut conn, namespace).await?;
        if depths.iter().all(|(_, d)| d.is_idle()) {
            idle_polls += 1;
            if idle_polls >= 2 {
                return Ok(());
            }
        } else {
            idle_polls = 0;
        }
        if Instant::now() > deadline {
            anyhow::bail!("queues did not drain in time: {depths:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
