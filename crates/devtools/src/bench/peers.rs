//! (b') BullMQ on the same Redis in the same run: its bulk enqueue and its
//! no-op consumption at concurrency 50 (how BullMQ's own benchmark runs it),
//! over as many jobs as ours, so `noop_vs_bullmq` and `enqueue_vs_bullmq` are
//! ratios of one run on one machine, not of figures from different days.
//!
//! The script lives in `crates/devtools/peers/bullmq/` with its lockfile;
//! `just bench` installs it (`npm ci`). BullMQ writes no ledger row; ours
//! commits one per job before the ack, which the ratio includes on purpose.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// BullMQ's worker concurrency in its own no-op benchmark.
pub(crate) const BULLMQ_CONCURRENCY: usize = 50;

/// Where the BullMQ script and its `node_modules` live.
pub(crate) fn script_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/bullmq")
}

#[derive(serde::Deserialize)]
struct PeerFigures {
    enqueue_per_s: f64,
    consume_per_s: f64,
}

/// Run BullMQ's no-op benchmark against `redis_url` and record its figures
/// and our ratios to them (ours must already be in `results`).
///
/// # Errors
/// Node or the installed script is missing, or the script failed.
pub(crate) async fn run(
    redis_url: &str,
    jobs: usize,
    results: &mut BTreeMap<&'static str, f64>,
) -> anyhow::Result<()> {
    let dir = script_dir();
    anyhow::ensure!(
        dir.join("node_modules/bullmq").is_dir(),
        "BullMQ is not installed in {}: run `npm ci --prefix {}` (`just bench` does), or pass --no-peers",
        dir.display(),
        dir.display()
    );
    let output = tokio::process::Command::new("node")
        .arg(dir.join("noop.mjs"))
        .arg(redis_url)
        .arg(jobs.to_string())
        .arg(BULLMQ_CONCURRENCY.to_string())
        .current_dir(&dir)
        .kill_on_drop(true)
        .output()
        .await
        .context("running node (install Node.js, or pass --no-peers)")?;
    anyhow::ensure!(
        output.status.success(),
        "BullMQ's benchmark failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .context("BullMQ's benchmark printed no figures")?;
    let figures: PeerFigures =
        serde_json::from_str(line).with_context(|| format!("reading BullMQ's figures {line:?}"))?;
    results.insert("bullmq_enqueue_per_s", figures.enqueue_per_s);
    results.insert("bullmq_consume_per_s", figures.consume_per_s);
    if let Some(ours) = results.get("enqueue_per_s").copied() {
        results.insert("enqueue_vs_bullmq", ours / figures.enqueue_per_s);
    }
    if let Some(ours) = results.get("noop_consume_per_s").copied() {
        results.insert("noop_vs_bullmq", ours / figures.consume_per_s);
    }
    println!(
        "(b') BullMQ on the same Redis: enqueued {jobs} jobs at {:.0}/s, consumed them at {:.0}/s (concurrency {BULLMQ_CONCURRENCY})",
        figures.enqueue_per_s, figures.consume_per_s
    );
    Ok(())
}
