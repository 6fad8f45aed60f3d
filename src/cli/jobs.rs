//! `ordersync jobs failed|show|replay|discard|prune`: the failed jobs.

use anyhow::Context as _;
use clap::{Args, Subcommand};

use crate::cli::{operator, GlobalArgs};
use crate::domain::JobKind;

/// Filters shared by the failed-job commands.
#[derive(Debug, Clone, Default, Args)]
pub struct FailedFilter {
    /// Only this job kind.
    #[arg(long)]
    pub kind: Option<JobKind>,
    /// Only this store.
    #[arg(long)]
    pub store: Option<String>,
    /// Failed within this long (e.g. 2h, 3d) or since this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// Message, error class or order reference contains this.
    #[arg(long)]
    pub grep: Option<String>,
}

impl FailedFilter {
    fn to_filter(&self) -> anyhow::Result<crate::ledger::dead_letters::Filter> {
        for (name, value) in [("--store", &self.store), ("--grep", &self.grep)] {
            if let Some(value) = value {
                crate::input::plain_text(name, value).map_err(anyhow::Error::msg)?;
            }
        }
        let since = match &self.since {
            None => None,
            Some(s) => Some(
                crate::input::parse_since("--since", s, chrono::Utc::now())
                    .map_err(anyhow::Error::msg)?,
            ),
        };
        Ok(crate::ledger::dead_letters::Filter {
            kind: self.kind.map(|k| k.as_str().to_owned()),
            store: self.store.clone(),
            since,
            grep: self.grep.clone(),
            ..Default::default()
        })
    }
}

/// Which failed jobs a replay or discard applies to.
#[derive(Debug, Clone, Args)]
pub struct Selection {
    /// Job ids.
    pub ids: Vec<uuid::Uuid>,
    /// Every open failed job of this fingerprint.
    #[arg(long, conflicts_with = "ids")]
    pub fingerprint: Option<String>,
    /// Every open failed job matching the filters.
    #[arg(long, conflicts_with_all = ["ids", "fingerprint"])]
    pub all: bool,
    /// Filters (with --all or --fingerprint).
    #[command(flatten)]
    pub filter: FailedFilter,
    /// Show what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// JSON output.
    #[arg(long)]
    pub json: bool,
}

/// `ordersync jobs ...`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Failed jobs grouped by fingerprint (cause), newest first.
    Failed {
        /// Filters.
        #[command(flatten)]
        filter: FailedFilter,
        /// List jobs instead of groups.
        #[arg(long)]
        ungrouped: bool,
        /// Include replayed and discarded ones.
        #[arg(long)]
        resolved: bool,
        /// At most this many jobs (with --ungrouped).
        #[arg(long, default_value_t = 200)]
        limit: i64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// The whole history of one job and its replays.
    Show {
        /// Job id.
        id: uuid::Uuid,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Re-enqueue failed jobs with a fresh attempt budget.
    Replay(Selection),
    /// Mark failed jobs resolved without running them.
    Discard(Selection),
    /// Delete failed-job records older than the retention.
    Prune {
        /// Retention (default 90 days).
        #[arg(long, default_value = "90d")]
        older_than: String,
    },
    /// Push again, now, every job the ledger holds unfinished that Redis
    /// does not hold (what the workers' reconciler does every 30 s).
    Requeue {
        /// Leave jobs enqueued more recently than this to their own push.
        #[arg(long, default_value = "30s")]
        grace: humantime::Duration,
        /// Count what is missing; push nothing.
        #[arg(long)]
        dry_run: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn jobs_command(g: &GlobalArgs, action: JobsCommand) -> anyhow::Result<()> {
    match action {
        JobsCommand::Failed {
            filter,
            ungrouped,
            resolved,
            limit,
            json,
        } => {
            let db = crate::ledger::connect(&g.database_url, 2).await?;
            let mut filter = filter.to_filter()?;
            filter.include_resolved = resolved;
            if ungrouped {
                let rows = crate::ledger::dead_letters::list(&db, &filter, limit).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rows)?);
                } else {
                    for d in &rows {
                        println!(
                            "{} {} {:<14} {:<5} {:<12} {} [{}] {}{}",
                            d.failed_at.format("%Y-%m-%d %H:%M:%S"),
                            d.job_id,
                            d.kind,
                            d.store.as_deref().unwrap_or("-"),
                            d.order_ref.as_deref().unwrap_or("-"),
                            d.fingerprint,
                            d.error_class,
                            d.error_message,
                            d.resolution
                                .as_deref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        );
                    }
                    println!("{} failed job(s)", rows.len());
                }
            } else {
                let groups = crate::ledger::dead_letters::groups(&db, &filter).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&groups)?);
                } else {
                    println!(
                        "{:<12} {:>6}  {:<14} {:<16} {:<19}  message",
                        "fingerprint", "count", "kind", "class", "last failed"
                    );
                    for grp in &groups {
                        println!(
                            "{:<12} {:>6}  {:<14} {:<16} {:<19}  {} (stores: {})",
                            grp.fingerprint,
                            grp.count,
                            grp.kind,
                            grp.error_class,
                            grp.last_failed_at.format("%Y-%m-%d %H:%M:%S"),
                            grp.sample_message,
                            grp.stores.join(",")
                        );
                    }
                    let total: i64 = groups.iter().map(|grp| grp.count).sum();
                    println!("{total} failed job(s) in {} group(s)", groups.len());
                }
            }
            Ok(())
        }
        JobsCommand::Show { id, json } => show_job(g, id, json).await,
        JobsCommand::Replay(selection) => resolve(g, selection, true).await,
        JobsCommand::Discard(selection) => resolve(g, selection, false).await,
        JobsCommand::Prune { older_than } => {
            let before = crate::input::parse_age("--older-than", &older_than, chrono::Utc::now())
                .map_err(anyhow::Error::msg)?;
            let db = crate::ledger::connect(&g.database_url, 2).await?;
            let n = crate::ledger::dead_letters::prune(&db, before).await?;
            println!("pruned {n} failed-job record(s) older than {older_than}");
            Ok(())
        }
        JobsCommand::Requeue {
            grace,
            dry_run,
            json,
        } => requeue(g, grace.into(), dry_run, json).await,
    }
}

/// `ordersync jobs requeue`.
async fn requeue(
    g: &GlobalArgs,
    grace: std::time::Duration,
    dry_run: bool,
    json: bool,
) -> anyhow::Result<()> {
    use crate::queue::reconcile::{self, Mode};
    let config = g.load_config()?;
    let deps = crate::startup::build(&g.settings(), &config, 2).await?;
    let mode = if dry_run { Mode::Count } else { Mode::Repush };
    let by = format!("cli:{}", operator());
    let report = reconcile::pass(&deps.enqueuer, grace, mode, &by).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for (queue, n) in &report.missing_by_queue {
        println!("{queue}: {n} missing from Redis");
    }
    let verb = if dry_run { "would push" } else { "pushed" };
    println!(
        "{} unfinished job(s) in the ledger, {} missing from Redis; {verb} {}",
        report.examined,
        report.missing,
        if dry_run {
            report.missing
        } else {
            report.pushed
        }
    );
    Ok(())
}

async fn resolve(g: &GlobalArgs, selection: Selection, replay: bool) -> anyhow::Result<()> {
    let config = g.load_config()?;
    let deps = crate::startup::build(&g.settings(), &config, 4).await?;
    let ids = crate::failures::select(
        &deps.db,
        &selection.ids,
        selection.fingerprint.as_deref(),
        selection.all,
        selection.filter.to_filter()?,
    )
    .await?;
    let by = format!("cli:{}", operator());
    let bar = if selection.json || ids.len() < 2 {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(ids.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    };
    bar.set_message(if replay { "replaying" } else { "discarding" });
    let mut summary = crate::failures::Summary::default();
    let mut results = Vec::with_capacity(ids.len());
    for id in ids {
        let r = if replay {
            crate::failures::replay(&deps, id, &by, selection.dry_run).await
        } else {
            crate::failures::discard(&deps, id, &by, selection.dry_run).await
        };
        summary.add(&r);
        match &r {
            crate::failures::Resolution::Skipped { job_id, reason } => bar.suspend(|| {
                if !selection.json {
                    println!("skipped {job_id}: {reason}");
                }
            }),
            crate::failures::Resolution::Error { job_id, error } => {
                bar.suspend(|| eprintln!("error {job_id}: {error}"))
            }
            _ => {}
        }
        results.push(r);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let verb = match (replay, selection.dry_run) {
        (true, false) => "replayed",
        (true, true) => "would replay",
        (false, false) => "discarded",
        (false, true) => "would discard",
    };
    if selection.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "summary": summary, "results": results })
            )?
        );
    } else {
        println!(
            "{verb} {}, skipped {}, errors {}",
            summary.resolved, summary.skipped, summary.errors
        );
    }
    if summary.errors > 0 {
        anyhow::bail!("{} job(s) could not be {verb}", summary.errors);
    }
    Ok(())
}

async fn show_job(g: &GlobalArgs, id: uuid::Uuid, json: bool) -> anyhow::Result<()> {
    let db = crate::ledger::connect(&g.database_url, 2).await?;
    let h = crate::failures::history(&db, id)
        .await?
        .with_context(|| format!("no job {id} in the ledger"))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&h)?);
        return Ok(());
    }
    let job = &h.job;
    println!(
        "job {} {} store={} order={} source={} enqueued={} state={}",
        job.job_id,
        job.kind,
        job.store.as_deref().unwrap_or("-"),
        job.order_ref.as_deref().unwrap_or("-"),
        job.source,
        job.enqueued_at,
        job.state
    );
    for r in &h.runs {
        println!(
            "  run {} attempt {}/{} on {} {} -> {} {}{}{}",
            r.run,
            r.attempt,
            job.max_attempts,
            r.worker,
            r.started_at.format("%H:%M:%S%.3f"),
            r.outcome,
            r.error_class
                .as_ref()
                .map(|c| format!("[{c}] "))
                .unwrap_or_default(),
            r.error_message.as_deref().unwrap_or_default(),
            r.next_run_at
                .map(|t| format!(" (next at {})", t.format("%H:%M:%S%.3f")))
                .unwrap_or_default(),
        );
    }
    if let Some(original) = h.replay_of {
        println!("  replays failed job {original}");
    }
    if let Some(d) = &h.failed {
        let state = match (d.resolution.as_deref(), d.replayed_as) {
            (Some("replayed"), Some(new_job)) => format!(
                "replayed as {new_job} by {} at {}",
                d.resolved_by.as_deref().unwrap_or_default(),
                d.resolved_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            ),
            (Some(r), _) => format!("{r} by {}", d.resolved_by.as_deref().unwrap_or_default()),
            _ => "open".into(),
        };
        println!(
            "  failed {} [{}] fingerprint {}; {state}",
            d.failed_at, d.error_class, d.fingerprint
        );
    }
    if let Some(note) = &h.scheduler_note {
        println!("  {note}");
    }
    for (replay, at) in &h.replays {
        println!("  replayed as {replay} at {at}");
    }
    Ok(())
}
