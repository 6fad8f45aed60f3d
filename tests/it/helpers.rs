//! Test harness: a fresh database, a unique Redis namespace and a simulator
//! per test, so tests run in parallel against the real services. What a test
//! makes is freed when it ends, pass or fail ([`resources`]).

mod api;
mod resources;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ordersync::config::{Config, FileConfig};
use ordersync::domain::JobKind;
use ordersync::domain::{JobEnvelope, Source};
use ordersync::jobs::Deps;
use ordersync::ledger::runs::{RunRow, RunWriter};
use ordersync::queue::NewJob;
use ordersync::worker::{self, WorkerOptions};
use ordersync_simulator::{self as simulator, SimConfig, SimHandle};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::sync::oneshot;
use uuid::Uuid;

pub use api::{serve_api, serve_api_with, ApiServer, ADMIN_TOKEN};
use resources::TestResources;

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
[jobs.cancel_invoice]\nmax_attempts = 5\nbackoff_base_ms = 40\nbackoff_cap_ms = 1000\n\
[jobs.record_payment]\nmax_attempts = 5\nbackoff_base_ms = 40\nbackoff_cap_ms = 1000\n\
[jobs.write_back]\nbackoff_base_ms = 20\nbackoff_cap_ms = 200\n\
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

/// ALPH's config points at the primary account (domain.md section 1's
/// mistake, the field report's bug): a `spawn_with` edit.
pub fn alph_on_the_primary_account(toml: &mut String) {
    *toml = toml
        .replace("stores = [\"ALPH\"]", "stores = []")
        .replace("stores = [\"BETA\"]", "stores = [\"ALPH\", \"BETA\"]");
}

/// A no-op job of BETA with `args` (`{"fail": "permanent"}`, `{"sleep_ms": 50}`...).
pub fn noop(args: Value) -> NewJob {
    NewJob {
        args,
        ..NewJob::for_store(JobKind::Noop, "BETA")
    }
}

/// `n` no-op jobs of BETA with `args`.
pub fn noops(n: usize, args: Value) -> Vec<NewJob> {
    (0..n).map(|_| noop(args.clone())).collect()
}

/// Poll `check` until it returns Some, or fail after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
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

/// A Redis connection (to look at what the queues hold).
pub async fn redis() -> redis::aio::ConnectionManager {
    ordersync::queue::connect(&redis_url()).await.unwrap()
}

/// A fresh, migrated database and nothing else (no simulator, no Redis):
/// for tests of the SQL itself. Dropped with this value, pass or fail.
pub struct TestDb {
    /// A pool on the database.
    pub db: PgPool,
    // After `db`: fields drop in order, and the database goes last.
    _resources: TestResources,
}

impl TestDb {
    pub async fn create() -> Self {
        let mut resources = TestResources::acquire().await;
        resources.create_database().await;
        let db = ordersync::ledger::connect(&resources.database_url(), 4)
            .await
            .unwrap();
        ordersync::ledger::migrate(&db).await.unwrap();
        Self {
            db,
            _resources: resources,
        }
    }
}

/// `program` as a child the kernel kills when the test process dies, however
/// it dies (a SIGKILLed `cargo test` included), through util-linux's
/// `setpriv --pdeathsig KILL`, which execs `program` in place: the child's
/// pid is the program's, so signals a test sends reach it. The signal comes
/// when the spawning thread ends: a test's threads live as long as the test.
/// Where `setpriv` is missing, `program` is run directly.
pub fn child_command(program: impl AsRef<OsStr>) -> Command {
    static SETPRIV: OnceLock<bool> = OnceLock::new();
    let setpriv = *SETPRIV.get_or_init(|| {
        Command::new("setpriv")
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success())
    });
    if !setpriv {
        return Command::new(program);
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
    cmd
}

/// A child process that is killed and reaped when dropped, so a failing test
/// leaves no worker (or server) running. Derefs to the [`std::process::Child`].
pub struct ChildGuard(std::process::Child);

impl ChildGuard {
    pub fn new(child: std::process::Child) -> Self {
        Self(child)
    }
}

impl std::ops::Deref for ChildGuard {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for ChildGuard {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Never waited on before this, the pid cannot belong to anyone else.
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

pub struct TestApp {
    pub db: PgPool,
    pub namespace: String,
    pub sim: SimHandle,
    pub deps: Deps,
    pub config: Config,
    pub config_path: PathBuf,
    pub secrets: Vec<(String, String)>,
    /// The database, the namespace and the in-process workers.
    resources: TestResources,
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
        let mut resources = TestResources::acquire().await;
        resources.create_database().await;
        let namespace = resources.register_namespace().await;
        let sim = simulator::start(sim_config, SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let (mut toml, secrets) = ordersync_simulator::ordersync_config(&sim, policies);
        edit(&mut toml);
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("ordersync.toml");
        std::fs::write(&config_path, &toml).unwrap();
        let env: HashMap<String, String> = secrets.iter().cloned().collect();
        let file: FileConfig = toml::from_str(&toml).unwrap();
        let config = Config::resolve(file, &|name| env.get(name).cloned()).unwrap();
        let settings = ordersync::startup::Settings {
            database_url: resources.database_url(),
            redis_url: redis_url(),
            namespace: namespace.clone(),
        };
        let deps = ordersync::startup::build(&settings, &config, 8)
            .await
            .unwrap();
        Self {
            db: deps.db.clone(),
            namespace,
            sim,
            deps,
            config,
            config_path,
            secrets,
            resources,
            _dir: dir,
        }
    }

    pub fn database_url(&self) -> String {
        self.resources.database_url()
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
        self.resources.add_worker((tx, handle));
    }

    /// A worker as its own OS process (for kill -9 tests).
    pub fn spawn_worker_process(&self, kinds: &[JobKind]) -> ChildGuard {
        self.spawn_worker_process_with(kinds, &[])
    }

    /// A worker process with extra flags (e.g. short heartbeats).
    pub fn spawn_worker_process_with(&self, kinds: &[JobKind], extra: &[&str]) -> ChildGuard {
        let child = self.worker_command(kinds).args(extra).spawn();
        ChildGuard::new(child.expect("starting ordersync-worker"))
    }

    /// `ordersync-worker` on this test's services, consuming `kinds` (all
    /// real kinds if empty), logging warnings to nowhere; it dies with the
    /// test process (see [`child_command`]).
    pub fn worker_command(&self, kinds: &[JobKind]) -> Command {
        let kinds: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
        let mut cmd = child_command(env!("CARGO_BIN_EXE_ordersync-worker"));
        cmd.arg("--config")
            .arg(&self.config_path)
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env("DATABASE_URL", self.database_url())
            .env("REDIS_URL", redis_url())
            .env("ORDERSYNC_NAMESPACE", &self.namespace)
            .env("RUST_LOG", "warn")
            .envs(self.secrets.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !kinds.is_empty() {
            cmd.arg("--kinds").arg(kinds.join(","));
        }
        cmd
    }

    pub async fn enqueue(&self, jobs: Vec<NewJob>) -> Vec<JobEnvelope> {
        self.deps
            .enqueuer
            .enqueue(Source::Cli, jobs)
            .await
            .unwrap()
            .0
    }

    /// Enqueue `jobs`: their ids, in order.
    pub async fn enqueue_ids(&self, jobs: Vec<NewJob>) -> Vec<Uuid> {
        self.enqueue(jobs).await.iter().map(|e| e.job_id).collect()
    }

    pub async fn enqueue_one(&self, job: NewJob) -> Uuid {
        self.enqueue(vec![job]).await[0].job_id
    }

    /// Enqueue `job`, wait until it is final and check it succeeded; its runs.
    pub async fn run_ok(&self, job: NewJob) -> Vec<RunRow> {
        let id = self.enqueue_one(job).await;
        let runs = self.wait_final(id).await;
        assert_eq!(runs.last().unwrap().outcome, "succeeded", "{runs:#?}");
        runs
    }

    /// Add `n` processing orders paid by `method` to `store`'s shop and
    /// import them (a worker must run import_orders): their references.
    pub async fn import_new_orders(&self, store: &str, n: usize, method: &str) -> Vec<String> {
        let references = (0..n)
            .map(|_| {
                let order = self.sim.add_shop_order(store, method, "processing", false);
                format!("{store}-{}", order["number"].as_str().unwrap())
            })
            .collect();
        self.run_ok(NewJob::for_store(JobKind::ImportOrders, store))
            .await;
        references
    }

    /// A no-op job that fails for good, once a worker has run it: its id.
    pub async fn failed_noop(&self) -> Uuid {
        let id = self.enqueue_one(noop(json!({"fail": "permanent"}))).await;
        assert_eq!(self.wait_final(id).await.last().unwrap().outcome, "failed");
        id
    }

    /// The single number `sql` selects (a count, mostly).
    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }

    /// The courier API key the simulator gave `store`.
    pub fn courier_key(&self, store: &str) -> String {
        self.sim
            .config()
            .stores
            .iter()
            .find(|s| s.code == store)
            .unwrap()
            .courier_key
            .clone()
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

    /// How many of `envelopes` have started: our start counter in their
    /// task metadata, which a delivery bumps before it runs. A task fetched
    /// into the in-flight set has not necessarily started yet.
    pub async fn started(
        &self,
        conn: &mut redis::aio::ConnectionManager,
        envelopes: &[JobEnvelope],
    ) -> usize {
        let mut n = 0;
        for envelope in envelopes {
            let starts: Option<u64> = redis::cmd("HGET")
                .arg(self.deps.enqueuer.meta_key(envelope))
                .arg("ordersync_starts")
                .query_async(conn)
                .await
                .unwrap();
            n += usize::from(starts.unwrap_or(0) > 0);
        }
        n
    }

    /// Poll `check` until it returns Some, or fail after the deadline.
    pub async fn eventually<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        eventually(what, check).await
    }

    /// Import every store's orders and fetch tracking, waiting for both.
    pub async fn import_and_track(&self) {
        for kind in [JobKind::ImportOrders, JobKind::FetchTracking] {
            let jobs = self
                .config
                .stores
                .iter()
                .map(|s| NewJob::for_store(kind, &s.code))
                .collect();
            for id in self.enqueue_ids(jobs).await {
                let runs = self.wait_final(id).await;
                assert_eq!(runs.last().unwrap().outcome, "succeeded", "{runs:#?}");
            }
        }
    }

    /// Stop the in-process workers, checking each stopped cleanly.
    pub async fn stop_workers(&mut self) {
        self.resources.stop_workers().await;
    }

    /// Run the `ordersync` binary against this test's services.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_ordersync"))
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

    /// Stop the workers (checking they stop cleanly), the simulator, and
    /// drop the database and the Redis keys. A test that never gets here
    /// (it panicked) is cleaned up when the app is dropped.
    pub async fn cleanup(mut self) {
        self.stop_workers().await;
        self.db.close().await;
        self.sim.clone().shutdown().await;
        self.resources.release().await;
    }
}

/// The outcome of each run.
pub fn outcomes(runs: &[RunRow]) -> Vec<&str> {
    runs.iter().map(|r| r.outcome.as_str()).collect()
}

/// The outcome and error class of each run.
pub fn outcomes_and_classes(runs: &[RunRow]) -> Vec<(&str, Option<&str>)> {
    runs.iter()
        .map(|r| (r.outcome.as_str(), r.error_class.as_deref()))
        .collect()
}

/// Kill a worker process with SIGKILL (no chance to finish anything).
pub fn kill9(child: &mut std::process::Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}
