//! A test's own Postgres database and Redis namespace, released when their
//! owner is dropped (the test passed or panicked), and a start-up sweep of
//! what a killed test process left behind.
//!
//! How the sweep tells abandoned resources from those of a test still
//! running (in this process or in another developer's run): while a test
//! runs it holds a Postgres session named `ordersync-test {id}`, opened
//! before anything else is made. However the process ends (panic, SIGKILL,
//! Ctrl-C) the operating system closes that connection and Postgres ends the
//! session, so "no such session" means "nobody will clean this up". The
//! database `ordersync_t_{id}` carries a comment saying it is ours (with its
//! creation time, for whoever reads `\l+`); the namespace `t-{id}` is listed in
//! the Redis sorted set `ordersync-test:namespaces` until its keys are gone.
//! Databases without the comment and namespaces without the entry (made by
//! another harness) are never touched.

use std::collections::HashSet;
use std::str::FromStr as _;
use std::time::Duration;

use anyhow::Context as _;
use chrono::Utc;
use redis::aio::ConnectionManager;
use redis::AsyncCommands as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use tokio::sync::{oneshot, OnceCell};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{database_url, redis_url};

/// `application_name` of a running test's liveness session, before its id.
const SESSION_PREFIX: &str = "ordersync-test ";
/// Test databases are `ordersync_t_{id}`.
const DATABASE_PREFIX: &str = "ordersync_t_";
/// Test namespaces are `t-{id}`.
const NAMESPACE_PREFIX: &str = "t-";
/// The start of the comment on every database this harness creates.
const DATABASE_COMMENT: &str = "ordersync test database";
/// Sorted set of the ids of namespaces whose keys may still exist, scored by
/// creation time (unix seconds).
const NAMESPACE_REGISTRY: &str = "ordersync-test:namespaces";
/// apalis-redis registers every queue here (`{ns}:{kind}[:bulk]:workers`,
/// scored by the last registration) and never removes one.
const APALIS_QUEUE_LIST: &str = "core:apalis:queues:list";
/// Queues of test namespaces in that list with no registration for this long
/// (and no live test) are removed, also those of other harnesses: nothing
/// reads the list but apalis's worker listing, and a registration re-adds it.
const APALIS_QUEUE_LIST_STALE: chrono::Duration = chrono::Duration::minutes(10);
/// How long a dropped test's in-process workers get to stop gracefully
/// (unregistering from Redis) before they are aborted.
const WORKER_STOP_WAIT: Duration = Duration::from_secs(5);

/// An in-process worker: its stop signal and its task.
pub type WorkerTask = (oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>);

/// What one test made: its liveness session, its database and namespace and
/// its in-process workers. [`TestResources::release`] frees them and checks
/// the workers stopped cleanly; dropping the value unreleased (a panicking
/// test) frees them too, on a thread of its own.
pub struct TestResources {
    id: String,
    session: Option<PgConnection>,
    database: Option<String>,
    namespace: Option<String>,
    workers: Vec<WorkerTask>,
}

impl TestResources {
    /// Sweep what dead test processes left (once per process), then open this
    /// test's liveness session.
    pub async fn acquire() -> Self {
        sweep_once().await;
        let id = Uuid::new_v4().simple().to_string();
        let options = PgConnectOptions::from_str(&database_url())
            .unwrap()
            .application_name(&format!("{SESSION_PREFIX}{id}"));
        let session = PgConnection::connect_with(&options)
            .await
            .expect("opening the test's liveness session");
        Self {
            id,
            session: Some(session),
            database: None,
            namespace: None,
            workers: Vec::new(),
        }
    }

    /// Create this test's empty database; returns its name.
    pub async fn create_database(&mut self) -> String {
        let name = format!("{DATABASE_PREFIX}{}", self.id);
        let session = self.session.as_mut().unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut *session)
            .await
            .unwrap();
        self.database = Some(name.clone());
        // Names and times only: nothing to quote.
        sqlx::query(&format!(
            "COMMENT ON DATABASE {name} IS '{DATABASE_COMMENT}, created {} by process {}; \
             dropped by the tests once no session is named {SESSION_PREFIX}{}'",
            Utc::now().to_rfc3339(),
            std::process::id(),
            self.id
        ))
        .execute(&mut *session)
        .await
        .unwrap();
        name
    }

    /// The URL of this test's database.
    pub fn database_url(&self) -> String {
        let mut url = url::Url::parse(&database_url()).unwrap();
        url.set_path(&format!("/{}", self.database.as_deref().unwrap()));
        url.to_string()
    }

    /// Register this test's Redis namespace (before any key of it is
    /// written); returns it.
    pub async fn register_namespace(&mut self) -> String {
        let mut redis = redis_connection().await.unwrap();
        let () = redis
            .zadd(NAMESPACE_REGISTRY, &self.id, Utc::now().timestamp())
            .await
            .unwrap();
        let namespace = format!("{NAMESPACE_PREFIX}{}", self.id);
        self.namespace = Some(namespace.clone());
        namespace
    }

    /// Stop `worker` with the rest of this test's resources.
    pub fn add_worker(&mut self, worker: WorkerTask) {
        self.workers.push(worker);
    }

    /// Stop the in-process workers and check each stopped cleanly.
    pub async fn stop_workers(&mut self) {
        for (stop, handle) in self.workers.drain(..) {
            let _ = stop.send(());
            handle.await.unwrap().unwrap();
        }
    }

    /// Stop the workers, delete the namespace, drop the database; a failure
    /// fails the test (it would leave something behind).
    pub async fn release(mut self) {
        self.stop_workers().await;
        if let Some(namespace) = self.namespace.take() {
            delete_namespace(&namespace).await.unwrap();
            let mut redis = redis_connection().await.unwrap();
            let () = redis.zrem(NAMESPACE_REGISTRY, &self.id).await.unwrap();
        }
        let mut session = self.session.take().unwrap();
        if let Some(database) = self.database.take() {
            drop_database(&mut session, &database).await.unwrap();
        }
        session.close().await.unwrap();
    }
}

impl Drop for TestResources {
    /// The test did not release its resources (it panicked): free them on a
    /// thread with its own runtime, since this may run inside the test's
    /// runtime, which cannot be blocked on. A failure is reported, not
    /// raised (a panic while panicking aborts); the next run's sweep retries.
    fn drop(&mut self) {
        if self.database.is_none() && self.namespace.is_none() && self.workers.is_empty() {
            return;
        }
        // The workers run on the test runtime's threads and can only finish
        // stopping there: wait for them when that runtime has threads of its
        // own, else abort them at once.
        let wait = match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                WORKER_STOP_WAIT
            }
            _ => Duration::ZERO,
        };
        let mut handles = Vec::new();
        for (stop, handle) in self.workers.drain(..) {
            let _ = stop.send(());
            handles.push(handle);
        }
        let database = self.database.take();
        let namespace = self.namespace.take();
        let freed = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let deadline = tokio::time::Instant::now() + wait;
                for mut handle in handles {
                    if tokio::time::timeout_at(deadline, &mut handle)
                        .await
                        .is_err()
                    {
                        handle.abort();
                    }
                }
                // The namespace stays registered: a task the test spawned may
                // still write a key before its runtime ends, and the next
                // run's sweep deletes it then.
                if let Some(namespace) = &namespace {
                    delete_namespace(namespace).await?;
                }
                if let Some(database) = &database {
                    let mut admin = PgConnection::connect(&database_url()).await?;
                    drop_database(&mut admin, database).await?;
                    admin.close().await?;
                }
                Ok(())
            })
        })
        .join();
        match freed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!(
                "cleaning up test {} failed: {error:#}; the next test run sweeps it",
                self.id
            ),
            Err(_) => eprintln!(
                "cleaning up test {} panicked; the next test run sweeps it",
                self.id
            ),
        }
        // Last: until now the session said someone would clean up.
        self.session.take();
    }
}

async fn redis_connection() -> anyhow::Result<ConnectionManager> {
    ordersync::queue::connect(&redis_url()).await
}

async fn drop_database(admin: &mut PgConnection, name: &str) -> sqlx::Result<()> {
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(admin)
        .await
        .map(drop)
}

/// Every key of `namespace`, and its queues in apalis's global queue list.
async fn delete_namespace(namespace: &str) -> anyhow::Result<()> {
    ordersync::queue::depth::delete_namespace(&redis_url(), namespace).await?;
    let mut redis = redis_connection().await?;
    let listed: Vec<String> = listed_queues(&mut redis, &format!("{namespace}:*"))
        .await?
        .into_iter()
        .map(|(queue, _)| queue)
        .collect();
    if !listed.is_empty() {
        let () = redis.zrem(APALIS_QUEUE_LIST, listed).await?;
    }
    Ok(())
}

/// Members of apalis's queue list matching `pattern`, with their scores.
async fn listed_queues(
    redis: &mut ConnectionManager,
    pattern: &str,
) -> anyhow::Result<Vec<(String, f64)>> {
    let mut found = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, flat): (u64, Vec<String>) = redis::cmd("ZSCAN")
            .arg(APALIS_QUEUE_LIST)
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        for pair in flat.chunks_exact(2) {
            found.push((pair[0].clone(), pair[1].parse()?));
        }
        if next == 0 {
            return Ok(found);
        }
        cursor = next;
    }
}

static SWEPT: OnceCell<()> = OnceCell::const_new();

/// Run [`sweep`] once per test process. A failed sweep is reported and does
/// not fail the test that happened to run it.
async fn sweep_once() {
    SWEPT
        .get_or_init(|| async {
            if let Err(error) = sweep().await {
                eprintln!("sweeping abandoned test resources failed: {error:#}");
            }
        })
        .await;
}

/// The id of test namespace `t-{32 hex digits}` at the start of `key`.
fn namespace_id(key: &str) -> Option<&str> {
    let id = key.strip_prefix(NAMESPACE_PREFIX)?.split(':').next()?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Free what test processes that are gone left behind: namespaces still
/// registered, databases with our comment, and stale entries of apalis's
/// queue list. Each candidate is read before the live sessions are: a
/// resource that exists had its session opened before it was made, so its
/// test, if alive, is in the set read afterwards.
async fn sweep() -> anyhow::Result<()> {
    let mut redis = redis_connection().await?;
    let registered: Vec<String> = redis.zrange(NAMESPACE_REGISTRY, 0, -1).await?;
    let listed = listed_queues(&mut redis, &format!("{NAMESPACE_PREFIX}*")).await?;
    let mut admin = PgConnection::connect(&database_url())
        .await
        .context("connecting to Postgres")?;
    let live: HashSet<String> = sqlx::query_scalar(
        "SELECT substr(application_name, length($1) + 1) FROM pg_stat_activity
          WHERE starts_with(application_name, $1)",
    )
    .bind(SESSION_PREFIX)
    .fetch_all(&mut admin)
    .await?
    .into_iter()
    .collect();

    for id in registered.iter().filter(|id| !live.contains(*id)) {
        let namespace = format!("{NAMESPACE_PREFIX}{id}");
        delete_namespace(&namespace).await?;
        let () = redis.zrem(NAMESPACE_REGISTRY, id).await?;
        eprintln!("swept abandoned test namespace {namespace}");
    }

    let stale_before = (Utc::now() - APALIS_QUEUE_LIST_STALE).timestamp() as f64;
    let stale: Vec<&str> = listed
        .iter()
        .filter(|(queue, registered_at)| {
            *registered_at < stale_before
                && namespace_id(queue).is_some_and(|id| !live.contains(id))
        })
        .map(|(queue, _)| queue.as_str())
        .collect();
    if !stale.is_empty() {
        let () = redis.zrem(APALIS_QUEUE_LIST, &stale).await?;
    }

    // One statement: the database list is its snapshot, the sessions are
    // read after it.
    let abandoned: Vec<(String, String)> = sqlx::query_as(
        "SELECT d.datname, shobj_description(d.oid, 'pg_database') FROM pg_database d
          WHERE starts_with(d.datname, $1)
            AND starts_with(coalesce(shobj_description(d.oid, 'pg_database'), ''), $2)
            AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                             WHERE a.application_name = $3 || substr(d.datname, length($1) + 1))",
    )
    .bind(DATABASE_PREFIX)
    .bind(DATABASE_COMMENT)
    .bind(SESSION_PREFIX)
    .fetch_all(&mut admin)
    .await?;
    for (database, comment) in abandoned {
        drop_database(&mut admin, &database).await?;
        eprintln!("swept abandoned test database {database} ({comment})");
    }
    admin.close().await?;
    Ok(())
}

#[test]
fn only_test_namespaces_have_an_id() {
    let id = "0123456789abcdef0123456789abcdef";
    assert_eq!(namespace_id(&format!("t-{id}:noop:workers")), Some(id));
    assert_eq!(namespace_id(&format!("t-{id}")), Some(id));
    assert_eq!(namespace_id("t-demo:noop:workers"), None);
    assert_eq!(namespace_id(&format!("x-{id}:noop:workers")), None);
}
