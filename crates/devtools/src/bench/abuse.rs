//! (i) Abuse: 200 slow or stalled unauthenticated connections held against
//! a real `ordersync api` process while signed WooCommerce webhooks keep
//! flowing. Reports the webhooks' latency under that load
//! (`abuse_webhook_p50_ms`, `abuse_webhook_p99_ms`) and the api's peak
//! resident memory (`abuse_api_rss_mb`), which must stay under
//! [`RSS_LIMIT_MB`] (the api's Kubernetes limit is 256 Mi; before issue 10,
//! 100 stalled bodies alone held 100 MiB).
//!
//! The attackers, a quarter each, reconnecting whenever the api closes them:
//! a request head that never ends; a connection that sends nothing; a
//! forged webhook whose body trickles in at 1 KiB per 100 ms; a forged
//! webhook that sends 900 KiB of its declared 1,000,000 bytes and stalls.
//! Everything is on loopback, bounded in count and time.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::percentile;

/// The api's peak RSS must stay under this.
pub(crate) const RSS_LIMIT_MB: f64 = 128.0;
/// How soon an attacker the api closed connects again.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// What the section needs.
pub(crate) struct Setup<'a> {
    pub(crate) database_url: &'a str,
    pub(crate) redis_url: &'a str,
    pub(crate) config_path: &'a Path,
    pub(crate) secrets: &'a [(String, String)],
    pub(crate) config: &'a ordersync::config::Config,
    pub(crate) sim: &'a ordersync_simulator::SimHandle,
    pub(crate) dir: &'a Path,
}

/// How hard and how long.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Attacking connections held open at once.
    pub(crate) connections: usize,
    /// Signed webhooks per second.
    pub(crate) webhook_rate: u64,
    /// Seconds of load.
    pub(crate) secs: u64,
}

#[derive(Debug, Clone, Copy)]
enum Attack {
    EndlessHead,
    Silent,
    TricklingBody,
    StalledBody,
}

/// Run (i) and add its figures to `results`.
///
/// # Errors
/// The api did not start, a signed webhook failed, or the api's memory
/// passed [`RSS_LIMIT_MB`].
pub(crate) async fn run(
    setup: Setup<'_>,
    load: Load,
    results: &mut BTreeMap<&'static str, f64>,
) -> anyhow::Result<()> {
    let token = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let mut toml = std::fs::read_to_string(setup.config_path)?;
    toml.push_str("\n[admin]\ntoken_env = \"ORDERSYNC_BENCH_ADMIN_TOKEN\"\n");
    let config_path = setup.dir.join("abuse-api.toml");
    std::fs::write(&config_path, toml)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let exe = std::env::current_exe()?.with_file_name("ordersync");
    let log = std::fs::File::create(setup.dir.join("abuse-api.log"))?;
    let namespace = format!("bench-abuse-{}", std::process::id());
    let mut api = tokio::process::Command::new(&exe)
        .args(["api", "--listen", &addr.to_string(), "--config"])
        .arg(&config_path)
        .envs(setup.secrets.iter().map(|(k, v)| (k, v)))
        .env("ORDERSYNC_BENCH_ADMIN_TOKEN", &token)
        .env("DATABASE_URL", setup.database_url)
        .env("REDIS_URL", setup.redis_url)
        .env("ORDERSYNC_NAMESPACE", &namespace)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let pid = api.id().context("the api exited at once")?;
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the api did not start within 60 s"
        );
        anyhow::ensure!(
            api.try_wait()?.is_none(),
            "the api exited; see abuse-api.log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let idle_rss = rss_mb(pid, "VmRSS:");
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let kinds = [
        Attack::EndlessHead,
        Attack::Silent,
        Attack::TricklingBody,
        Attack::StalledBody,
    ];
    let mut attackers = Vec::with_capacity(load.connections);
    for i in 0..load.connections {
        let (stop, opened, kind) = (stop.clone(), opened.clone(), kinds[i % kinds.len()]);
        attackers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                opened.fetch_add(1, Ordering::Relaxed);
                let _ = attack(addr, kind, &stop).await;
                // Come straight back, but not in a hot loop: this is a
                // slow-connection attack, not a bandwidth flood.
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }));
    }
    // Let the attack build up before timing webhooks.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_mb(pid, "VmRSS:"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    };
    let latencies = signed_webhooks(&http, &base, setup.config, setup.sim, load).await;
    stop.store(true, Ordering::Relaxed);
    let peak_sampled = sampler.await.unwrap_or(0.0);
    let peak = rss_mb(pid, "VmHWM:").max(peak_sampled);
    for a in attackers {
        a.abort();
    }
    let _ = api.kill().await;
    let _ = ordersync::queue::depth::delete_namespace(setup.redis_url, &namespace).await;
    let mut latencies = latencies?;
    latencies.sort_by(f64::total_cmp);
    results.insert("abuse_webhook_p50_ms", percentile(&latencies, 0.50));
    results.insert("abuse_webhook_p99_ms", percentile(&latencies, 0.99));
    results.insert("abuse_api_rss_mb", peak);
    results.insert("abuse_api_rss_idle_mb", idle_rss);
    results.insert("abuse_webhooks_sent", latencies.len() as f64);
    results.insert(
        "abuse_attack_connections",
        opened.load(Ordering::Relaxed) as f64,
    );
    println!(
        "(i) {} signed webhooks at {}/s during {} stalled or slow connections ({} opened in all); api RSS {idle_rss:.1} MiB idle, {peak:.1} MiB peak",
        latencies.len(),
        load.webhook_rate,
        load.connections,
        opened.load(Ordering::Relaxed)
    );
    anyhow::ensure!(
        peak < RSS_LIMIT_MB,
        "the api's peak RSS was {peak:.1} MiB under abuse; the limit is {RSS_LIMIT_MB} MiB"
    );
    Ok(())
}

/// One attacking connection, until the api closes it or `stop` is set.
async fn attack(addr: SocketAddr, kind: Attack, stop: &AtomicBool) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(addr).await?;
    let forged_head: &[u8] = b"POST /webhooks/woocommerce/BETA HTTP/1.1\r\nHost: bench\r\n\
        Content-Type: application/json\r\nX-WC-Webhook-Signature: Zm9yZ2Vk\r\n\
        Content-Length: 1000000\r\n\r\n";
    match kind {
        Attack::EndlessHead => {
            stream
                .write_all(b"POST /webhooks/woocommerce/BETA HTTP/1.1\r\nHost: bench\r\n")
                .await?;
        }
        Attack::Silent => {}
        Attack::TricklingBody => {
            stream.write_all(forged_head).await?;
            let chunk = [b' '; 1024];
            while !stop.load(Ordering::Relaxed) {
                if stream.write_all(&chunk).await.is_err() {
                    return Ok(());
                }
                // Stop trickling once the api answered (it closes after).
                let mut probe = [0u8; 512];
                if let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_millis(100), stream.read(&mut probe)).await
                {
                    if n == 0 {
                        return Ok(());
                    }
                    break;
                }
            }
        }
        Attack::StalledBody => {
            stream.write_all(forged_head).await?;
            let _ = stream.write_all(&vec![b' '; 900 * 1024]).await;
        }
    }
    // Hold the connection until the api closes it.
    let mut sink = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        match tokio::time::timeout(Duration::from_millis(250), stream.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            _ => {}
        }
    }
    Ok(())
}

/// Signed order webhooks at the load's rate; their latencies in ms.
async fn signed_webhooks(
    http: &reqwest::Client,
    base: &str,
    config: &ordersync::config::Config,
    sim: &ordersync_simulator::SimHandle,
    load: Load,
) -> anyhow::Result<Vec<f64>> {
    use hmac::Mac as _;
    let secret = config
        .store("BETA")
        .and_then(|s| s.webhook_secret.clone())
        .context("BETA has no webhook secret in the bench config")?;
    let orders = sim.shop_orders("BETA");
    anyhow::ensure!(!orders.is_empty(), "the simulator has no BETA orders");
    let url = format!("{base}/webhooks/woocommerce/BETA");
    let total = (load.webhook_rate * load.secs) as usize;
    let mut tick =
        tokio::time::interval(Duration::from_micros(1_000_000 / load.webhook_rate.max(1)));
    let mut requests = Vec::with_capacity(total);
    for i in 0..total {
        tick.tick().await;
        let mut order = orders[i % orders.len()].clone();
        let modified = chrono::NaiveDate::from_ymd_opt(2031, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .unwrap_or_default()
            + chrono::Duration::seconds(i as i64);
        order["date_modified_gmt"] =
            serde_json::json!(modified.format("%Y-%m-%dT%H:%M:%S").to_string());
        let body = serde_json::to_vec(&order)?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(
            secrecy::ExposeSecret::expose_secret(&secret).as_bytes(),
        )?;
        mac.update(&body);
        let signature = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            mac.finalize().into_bytes(),
        );
        let request = http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-wc-webhook-signature", signature)
            .header("x-wc-webhook-topic", "order.updated")
            .body(body);
        requests.push(tokio::spawn(async move {
            let started = Instant::now();
            let status = request.send().await.map(|r| r.status().as_u16());
            (started.elapsed().as_secs_f64() * 1000.0, status)
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for r in requests {
        let (ms, status) = r.await?;
        let status = status.context("a signed webhook got no answer")?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "a signed webhook was answered {status} under abuse"
        );
        latencies.push(ms);
    }
    Ok(latencies)
}

/// A field of `/proc/<pid>/status`, MiB.
fn rss_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
