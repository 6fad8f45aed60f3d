//! Test harness: a fresh database, a unique Redis namespace and a simulator
//! per test, so tests run in parallel against the real services.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ordersync::config::{Config, FileConfig};
use ordersync::domain::JobKind;
use ordersync::domain::{JobEnvelope, Source};
use ordersync::jobs::Deps;
use ordersync::ledger::runs::{RunRow, RunWriter};
use ordersync::queue::NewJob;
use ordersync::worker::{self, WorkerOptions};
use ordersync_simulator::{self as simulator, SimConfig, SimHandle};
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Small retry delays so retry tests take milliseconds, in the shapes of the
/// production policies.
pub const FAST_POLICIES: &str = "[deferral]\ndelay_ms = 300\nmax_age_secs = 3600\n\
[jobs.import_orders]\nbackoff_base_ms = 20\nbackoff_cap_ms = 200\n\
[jobs.fetch_tracking]\nbackoff_base_ms = 20\nbackoff_cap_ms = 200\n\
[jobs.refresh_status]\nbackoff_base_ms = 20\nbackoff_cap_ms = 200\n\
[jobs.create_invoice]\nmax_attempts = 5\nbackoff_base_ms = 40\nbackoff_cap_ms = 1000\n\
[jobs.send_sms]\nbackoff_base_ms = 20\nbackoff_cap_ms = 200\n\
[jobs.noop]\nmax_attempts = 3\nbackoff_base_ms = 20\nbackoff_cap_ms = 200\n";

/// Two stores like domain.md section 1: ALPH on its own courier account,
/// BETA on the shared primary account.
pub fn two_stores(orders_per_store: usize) -> SimConfig {
    let mut config = SimConfig::demo(orders_per_store * 6);
    config
        .stores
        .retain(|s| s.code == "ALPH" || s.code == "BETA");
    for s in &mut config.stores {
        s.orders = orders_per_store;
    }
    config
}

pub struct TestApp {
    pub db: PgPool,
    pub database: String,
    pub namespace: String,
    pub sim: SimHandle,
    pub deps: Deps,
    pub config: Config,
    pub config_path: PathBuf,
    pub secrets: Vec<(String, String)>,
    workers: Vec<(
        oneshot::Sender<()>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    )>,
    _dir: tempfile::TempDir,
}

impl TestApp {
    pub async fn spawn(sim_config: SimConfig) -> Self {
        Self::spawn_with(sim_config, FAST_POLICIES, |_| {}).await
    }

    /// `edit` may rewrite the generated config (e.g. map a store to the wrong account).
    pub async fn spawn_with(
        sim_config: SimConfig,
        policies: &str,
        edit: impl FnOnce(&mut String),
    ) -> Self {
        let sim = simulator::start(sim_config, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let database = format!("ordersync_t_{}", Uuid::new_v4().simple());
        let admin = ordersync::ledger::connect(&database_url(), 1)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let mut url = url::Url::parse(&database_url()).unwrap();
        url.set_path(&format!("/{database}"));
        let namespace = format!("t-{}", Uuid::new_v4().simple());
        let (mut toml, secrets) = ordersync_simulator::ordersync_config(&sim, policies);
        edit(&mut toml);
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("ordersync.toml");
        std::fs::write(&config_path, &toml).unwrap();
        let env: HashMap<String, String> = secrets.iter().cloned().collect();
        let file: FileConfig = toml::from_str(&toml).unwrap();
        let config = Config::resolve(file, &|name| env.get(name).cloned()).unwrap();
        let settings = ordersync::startup::Settings {
            database_url: url.to_string(),
            redis_url: redis_url(),
            namespace: namespace.clone(),
        };
        let deps = ordersync::startup::build(&settings, &config, 8)
            .await
            .unwrap();
        Self {
            db: deps.db.clone(),
            database,
            namespace,
            sim,
            deps,
            config,
            config_path,
            secrets,
            workers: Vec::new(),
            _dir: dir,
        }
    }

    pub fn database_url(&self) -> String {
        let mut url = url::Url::parse(&database_url()).unwrap();
        url.set_path(&format!("/{}", self.database));
        url.to_string()
    }

    /// Start an in-process worker consuming `kinds` (all real kinds if empty).
    pub fn start_worker(&mut self, kinds: &[JobKind]) {
        let mut options = WorkerOptions::new(&redis_url());
        if !kinds.is_empty() {
            options.kinds = kinds.to_vec();
        }
        options.poll_interval = Duration::from_millis(100);
        let runs = RunWriter::start(self.db.clone());
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(worker::run(self.deps.clone(), runs, options, async {
            let _ = rx.await;
        }));
        self.workers.push((tx, handle));
    }

    /// A worker as its own OS process (for kill -9 tests).
    pub fn spawn_worker_process(&self, kinds: &[JobKind]) -> std::process::Child {
        self.spawn_worker_process_with(kinds, &[])
    }

    /// A worker process with extra flags (e.g. short heartbeats).
    pub fn spawn_worker_process_with(
        &self,
        kinds: &[JobKind],
        extra: &[&str],
    ) -> std::process::Child {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ordersync-worker"));
        cmd.arg("--config")
            .arg(&self.config_path)
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env("DATABASE_URL", self.database_url())
            .env("REDIS_URL", redis_url())
            .env("ORDERSYNC_NAMESPACE", &self.namespace)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if !kinds.is_empty() {
            cmd.arg("--kinds").arg(kinds.join(","));
        }
        cmd.args(extra);
        for (k, v) in &self.secrets {
            cmd.env(k, v);
        }
        cmd.spawn().expect("starting ordersync-worker")
    }

    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Vec<JobEnvelope> {
        self.deps
            .enqueuer
            .enqueue(Source::Cli, jobs)
            .await
            .unwrap()
            .0
    }

    pub async fn enqueue_one(&self, job: NewJob) -> Uuid {
        self.enqueue(vec![job]).await[0].job_id
    }

    /// Runs of `job_id`, in order.
    pub async fn runs(&self, job_id: Uuid) -> Vec<RunRow> {
        ordersync::ledger::runs::for_job(&self.db, job_id)
            .await
            .unwrap()
    }

    /// Poll until `job_id`'s latest run is final (not retry/deferred).
    pub async fn wait_final(&self, job_id: Uuid) -> Vec<RunRow> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let runs = self.runs(job_id).await;
            if let Some(last) = runs.last() {
                if !matches!(last.outcome.as_str(), "retry" | "deferred") {
                    return runs;
                }
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} not final in time: {runs:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Poll until every queue of this test is idle, twice in a row.
    pub async fn wait_idle(&self) {
        let deadline = Instant::now() + DEADLINE;
        let mut conn = ordersync::queue::connect(&redis_url()).await.unwrap();
        let mut idle = 0;
        loop {
            let depths = ordersync::queue::depth::all_depths(&mut conn, &self.namespace)
                .await
                .unwrap();
            if depths.iter().all(|(_, d)| d.is_idle()) {
                idle += 1;
                if idle == 2 {
                    return;
                }
            } else {
                idle = 0;
            }
            assert!(
                Instant::now() < deadline,
                "queues not idle in time: {depths:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Poll `check` until it returns Some, or fail after the deadline.
    pub async fn eventually<T, F, Fut>(&self, what: &str, mut check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(v) = check().await {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Import every store's orders and fetch tracking, waiting for both.
    pub async fn import_and_track(&self) {
        let stores: Vec<String> = self.config.stores.iter().map(|s| s.code.clone()).collect();
        let jobs = stores
            .iter()
            .map(|s| NewJob::for_store(JobKind::ImportOrders, s))
            .collect();
        for id in self.enqueue(jobs).await.iter().map(|e| e.job_id) {
            assert_eq!(
                self.wait_final(id).await.last().unwrap().outcome,
                "succeeded"
            );
        }
        let jobs = stores
            .iter()
            .map(|s| NewJob::for_store(JobKind::FetchTracking, s))
            .collect();
        for id in self.enqueue(jobs).await.iter().map(|e| e.job_id) {
            assert_eq!(
                self.wait_final(id).await.last().unwrap().outcome,
                "succeeded"
            );
        }
    }

    pub async fn stop_workers(&mut self) {
        for (tx, handle) in self.workers.drain(..) {
            let _ = tx.send(());
            handle.await.unwrap().unwrap();
        }
    }

    /// Run the `ordersync` binary against this test's services.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_ordersync"))
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .env("DATABASE_URL", self.database_url())
            .env("REDIS_URL", redis_url())
            .env("ORDERSYNC_NAMESPACE", &self.namespace)
            .envs(self.secrets.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    /// Stop workers, drop the database and the Redis keys.
    pub async fn cleanup(mut self) {
        self.stop_workers().await;
        self.db.close().await;
        let admin = ordersync::ledger::connect(&database_url(), 1)
            .await
            .unwrap();
        let _ = sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.database
        ))
        .execute(&admin)
        .await;
        let _ = ordersync::queue::depth::delete_namespace(&redis_url(), &self.namespace).await;
        self.sim.clone().shutdown().await;
    }
}

/// Kill a worker process with SIGKILL (no chance to finish anything).
pub fn kill9(child: &mut std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}
