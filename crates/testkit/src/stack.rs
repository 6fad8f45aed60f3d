//! A whole ordersync deployment for one test: a private Redis, a private
//! Postgres, the provider simulator (two stores on two courier accounts),
//! the config pointing at it, and `ordersync-worker` processes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ordersync::config::Config;
use ordersync::jobs::Deps;
use ordersync::startup::Settings;
use ordersync_simulator::{Knobs, Service, SimConfig, SimHandle};

use crate::services::{PrivatePostgres, PrivateRedis};

/// How a stack is set up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// Orders in each of the two shops.
    pub orders_per_store: usize,
    /// Redis keeps an append-only file (fsync every second).
    pub append_only_redis: bool,
    /// Latency of every provider answer.
    pub latency: Duration,
    /// Share of provider requests answered 5xx.
    pub error_rate: f64,
    /// Courier statuses advance one step per period (zero: frozen).
    pub status_step: Duration,
    /// Config appended to the generated one (retry policies).
    pub policies: String,
    /// Where worker logs go (a temporary directory if `None`).
    pub log_dir: Option<PathBuf>,
}

/// The running deployment.
#[derive(Debug)]
pub struct Stack {
    /// The private Redis.
    pub redis: PrivateRedis,
    /// The private Postgres (database `ordersync`).
    pub postgres: PrivatePostgres,
    /// The providers.
    pub sim: SimHandle,
    /// The loaded config.
    pub config: Config,
    /// Where its file is.
    pub config_path: PathBuf,
    /// The secrets it names, as environment variables.
    pub secrets: Vec<(String, String)>,
    /// Where the services are.
    pub settings: Settings,
    /// Worker processes started with [`Stack::add_worker`].
    pub workers: Vec<Child>,
    /// Where worker logs go.
    pub logs: PathBuf,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// Start the services and the simulator (no workers yet).
    ///
    /// # Errors
    /// A service could not be started.
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let redis = PrivateRedis::start(options.append_only_redis)?;
        let postgres = PrivatePostgres::start()?;
        let admin = ordersync::ledger::connect(&postgres.url("postgres"), 1).await?;
        sqlx::query("CREATE DATABASE ordersync")
            .execute(&admin)
            .await?;
        admin.close().await;

        let mut sim_config = SimConfig::demo(options.orders_per_store * 6);
        sim_config
            .stores
            .retain(|s| s.code == "ALPH" || s.code == "BETA");
        for store in &mut sim_config.stores {
            store.orders = options.orders_per_store;
        }
        sim_config.status_step = options.status_step;
        let sim =
            ordersync_simulator::start(sim_config, SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        for service in Service::ALL {
            sim.set_knobs(
                service,
                Knobs {
                    latency: options.latency,
                    error_rate: options.error_rate,
                    ..Knobs::default()
                },
            );
        }
        let dir = tempfile::tempdir()?;
        let logs = options
            .log_dir
            .clone()
            .unwrap_or_else(|| dir.path().to_owned());
        std::fs::create_dir_all(&logs)?;
        let (toml, secrets) = ordersync_simulator::ordersync_config(&sim, &options.policies);
        let config_path = dir.path().join("ordersync.toml");
        std::fs::write(&config_path, &toml)?;
        let env: HashMap<String, String> = secrets.iter().cloned().collect();
        let config = Config::resolve(toml::from_str(&toml)?, &|name| env.get(name).cloned())?;
        let settings = Settings {
            database_url: postgres.url("ordersync"),
            redis_url: redis.url(),
            namespace: "stack".into(),
        };
        Ok(Stack {
            redis,
            postgres,
            sim,
            config,
            config_path,
            secrets,
            settings,
            workers: Vec::new(),
            logs,
            _dir: dir,
        })
    }

    /// Connections and clients for the stack (migrates the database);
    /// build again after a service restarted.
    ///
    /// # Errors
    /// A service is unreachable.
    pub async fn deps(&self) -> anyhow::Result<Deps> {
        ordersync::startup::build(&self.settings, &self.config, 4).await
    }

    /// The store codes.
    pub fn stores(&self) -> Vec<String> {
        self.config.stores.iter().map(|s| s.code.clone()).collect()
    }

    /// Start an `ordersync-worker` process (`bin`) with short heartbeats and
    /// a reconciler that looks every second; returns its index.
    ///
    /// # Errors
    /// The binary is missing.
    pub fn add_worker(&mut self, bin: &Path) -> anyhow::Result<usize> {
        let worker = self.spawn_worker(bin)?;
        self.workers.push(worker);
        Ok(self.workers.len() - 1)
    }

    /// Kill worker `index` with SIGKILL and start a new process in its place.
    ///
    /// # Errors
    /// The binary is missing.
    pub fn replace_worker(&mut self, index: usize, bin: &Path) -> anyhow::Result<()> {
        self.kill_worker(index);
        self.workers[index] = self.spawn_worker(bin)?;
        Ok(())
    }

    /// Kill worker `index` with SIGKILL (no chance to finish anything).
    pub fn kill_worker(&mut self, index: usize) {
        if let Some(worker) = self.workers.get_mut(index) {
            let _ = worker.kill();
            let _ = worker.wait();
        }
    }

    fn spawn_worker(&self, bin: &Path) -> anyhow::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join("workers.log"))?;
        Command::new(bin)
            .arg("--config")
            .arg(&self.config_path)
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--heartbeat-secs", "1", "--missed-heartbeats", "3"])
            .args(["--reconcile-interval", "1s", "--reconcile-grace", "2s"])
            .args(["--shutdown-timeout", "5s"])
            .env("DATABASE_URL", &self.settings.database_url)
            .env("REDIS_URL", &self.settings.redis_url)
            .env("ORDERSYNC_NAMESPACE", &self.settings.namespace)
            .env("RUST_LOG", "warn")
            .envs(self.secrets.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))
    }

    /// SIGTERM every worker and wait for it (SIGKILL after 10 s).
    pub fn stop_workers(&mut self) {
        for worker in &mut self.workers {
            // A worker killed earlier has been waited for: nothing to signal.
            if worker.try_wait().ok().flatten().is_none() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(worker.id().to_string())
                    .status();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for worker in &mut self.workers {
            while worker.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = worker.kill();
            let _ = worker.wait();
        }
        self.workers.clear();
    }

    /// Where the next delivery of every unfinished job is in Redis, counted
    /// by place (`pending`, `delayed`, `in flight`, `done`, `nowhere`), with
    /// a few examples: what a run that does not settle is stuck on.
    ///
    /// # Errors
    /// Postgres or Redis failed.
    pub async fn open_job_whereabouts(&self, deps: &Deps) -> anyhow::Result<String> {
        use ordersync::domain::{JobEnvelope, Lane};
        type OpenRow = (
            uuid::Uuid,
            i32,
            Option<serde_json::Value>,
            serde_json::Value,
            chrono::DateTime<chrono::Utc>,
        );
        let open: Vec<OpenRow> =
            sqlx::query_as(
                "SELECT o.job_id, o.run, o.envelope, j.payload, o.due_at FROM open_jobs o JOIN jobs j USING (job_id)
                 ORDER BY o.job_id",
            )
            .fetch_all(&deps.db)
            .await?;
        let mut conn = deps.enqueuer.connection();
        let mut places: std::collections::BTreeMap<String, u64> = Default::default();
        let mut examples = Vec::new();
        for (job_id, run, envelope, payload, due_at) in open {
            let envelope: JobEnvelope = serde_json::from_value(envelope.unwrap_or(payload))?;
            let keys = deps.enqueuer.keys(envelope.kind, Lane::of(envelope.source));
            let task = format!("{job_id}:{run}");
            let status: Option<String> = redis::cmd("HGET")
                .arg(format!("{}:{task}", keys.config.job_meta_hash()))
                .arg("status")
                .query_async(&mut conn)
                .await?;
            let delayed: Option<f64> = redis::cmd("ZSCORE")
                .arg(keys.delayed())
                .arg(&task)
                .query_async(&mut conn)
                .await?;
            let pending: Option<i64> = redis::cmd("LPOS")
                .arg(keys.config.active_jobs_list())
                .arg(&task)
                .query_async(&mut conn)
                .await?;
            let held: bool = redis::cmd("HEXISTS")
                .arg(keys.config.job_data_hash())
                .arg(&task)
                .query_async(&mut conn)
                .await?;
            let place = match (pending, delayed, held, status.as_deref()) {
                (Some(_), _, _, _) => "pending".to_owned(),
                (_, Some(_), _, _) => "delayed".to_owned(),
                (_, _, true, Some(s)) => format!("held, status {s}"),
                (_, _, true, None) => "held, no metadata".to_owned(),
                (_, _, false, _) => "nowhere".to_owned(),
            };
            if examples.len() < 5 {
                let runs: Vec<(i32, i32, String, Option<String>)> = sqlx::query_as(
                    "SELECT run, attempt, outcome, error_class FROM job_runs WHERE job_id = $1 ORDER BY run",
                )
                .bind(job_id)
                .fetch_all(&deps.db)
                .await?;
                let runs: Vec<String> = runs
                    .iter()
                    .map(|(run, attempt, outcome, class)| {
                        format!(
                            "{run}/{attempt} {outcome} {}",
                            class.as_deref().unwrap_or("")
                        )
                    })
                    .collect();
                examples.push(format!(
                    "{} {task} due {} ({place}; runs: {})",
                    envelope.kind,
                    due_at,
                    runs.join(", ")
                ));
            }
            *places.entry(place).or_default() += 1;
        }
        Ok(format!("{places:?}; e.g. {}", examples.join("; ")))
    }

    /// The simulator's own record (`/_sim/sms`, `/_sim/invoices`, ...).
    ///
    /// # Errors
    /// The simulator did not answer.
    pub async fn sim_record(&self, what: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let url = format!("{}/_sim/{what}", self.sim.base_url());
        Ok(reqwest::get(&url).await?.error_for_status()?.json().await?)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.stop_workers();
    }
}

/// Wait until the ledger holds no unfinished job, polling; a database error
/// (Postgres restarting) is waited out too.
///
/// # Errors
/// Jobs are still unfinished at the deadline (how many is said).
pub async fn wait_settled(db: &sqlx::PgPool, deadline: Duration) -> anyhow::Result<()> {
    let until = Instant::now() + deadline;
    loop {
        let open: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM open_jobs")
            .fetch_one(db)
            .await;
        match open {
            Ok(0) => return Ok(()),
            Ok(n) if Instant::now() > until => {
                anyhow::bail!("{n} job(s) still unfinished after {deadline:?}")
            }
            Err(error) if Instant::now() > until => return Err(error.into()),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}
