//! Private Redis and Postgres servers for one test.
//!
//! Each listens on a free loopback port with its data in a temporary
//! directory, runs as a child process, and is stopped and removed on drop.
//! Postgres refuses to run as root, so when the test runs as root its
//! cluster is created and started as the `postgres` user.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// How long a server may take to accept connections after it starts.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A free TCP port on 127.0.0.1 (bound, then released).
///
/// # Errors
/// No port could be bound.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    while !ready() {
        if Instant::now() > deadline {
            bail!("{what} did not come up within {START_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A private `redis-server`.
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    dir: tempfile::TempDir,
    append_only: bool,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Start one. With `append_only`, it keeps an append-only file fsynced
    /// every second (Redis's usual durable setting), and a restart reloads it.
    ///
    /// # Errors
    /// `redis-server` is missing or does not come up.
    pub fn start(append_only: bool) -> anyhow::Result<Self> {
        let mut redis = Self {
            port: free_port()?,
            dir: tempfile::tempdir()?,
            append_only,
            child: None,
        };
        redis.spawn()?;
        Ok(redis)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--save", ""])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.append_only {
            cmd.args(["--appendonly", "yes", "--appendfsync", "everysec"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        self.child = Some(cmd.spawn().context("starting redis-server")?);
        let port = self.port;
        wait_until("private redis-server", || accepts(port))
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kill it with SIGKILL (no chance to write anything more).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again on the same port and directory: empty without an
    /// append-only file, reloaded from it with one.
    ///
    /// # Errors
    /// It does not come up.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// `FLUSHALL`: every key of every database gone.
    ///
    /// # Errors
    /// Redis did not answer.
    pub async fn flushall(&self) -> anyhow::Result<()> {
        let client = redis::Client::open(self.url())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("FLUSHALL").query_async::<()>(&mut conn).await?;
        Ok(())
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A private PostgreSQL cluster (`initdb` + `postgres`), trust auth.
#[derive(Debug)]
pub struct PrivatePostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    as_postgres_user: bool,
    child: Option<Child>,
}

impl PrivatePostgres {
    /// Create and start one.
    ///
    /// # Errors
    /// The PostgreSQL server binaries are missing, or it does not come up.
    pub fn start() -> anyhow::Result<Self> {
        let bin = postgres_bin_dir()?;
        let as_postgres_user = running_as_root();
        let dir =
            std::env::temp_dir().join(format!("ordersync-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        if as_postgres_user {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .status()
                .context("chown of the private cluster's directory")?;
            anyhow::ensure!(status.success(), "chown postgres {} failed", dir.display());
        }
        let mut pg = Self {
            port: free_port()?,
            dir,
            bin,
            as_postgres_user,
            child: None,
        };
        let data = pg.data_dir();
        let initdb = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .context("running initdb")?;
        if !initdb.status.success() {
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&initdb.stderr).trim()
            );
        }
        pg.spawn()?;
        Ok(pg)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres_user {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.display()))
            .args(["-c", "max_connections=200", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting postgres")?;
        self.child = Some(child);
        let port = self.port;
        wait_until("private postgres", || accepts(port))?;
        // Accepting TCP is not accepting queries: wait for the startup to end.
        let ready = self.bin.join("pg_isready");
        wait_until("private postgres", || {
            Command::new(&ready)
                .args(["-h", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// The URL of database `name` on it.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stop it (immediate shutdown, as a crash or a failover would).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start it again after [`PrivatePostgres::stop`].
    ///
    /// # Errors
    /// It does not come up.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The directory of the PostgreSQL server binaries (`pg_config --bindir`, or
/// the newest `/usr/lib/postgresql/*/bin`).
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|bin| bin.join("initdb").is_file())
                .collect()
        })
        .unwrap_or_default();
    candidates.sort_by_key(|p| version_of(p));
    candidates
        .pop()
        .context("no PostgreSQL server binaries (initdb, postgres) found: install postgresql")
}

fn version_of(bin: &Path) -> u32 {
    bin.parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
