//! `ordersync enqueue` and `ordersync backfill`: work put on the queues by hand.

use clap::Subcommand;

use crate::cli::GlobalArgs;
use crate::domain::{JobKind, Source};
use crate::queue::NewJob;

/// `ordersync backfill ...`
#[derive(Debug, Subcommand)]
pub enum BackfillCommand {
    /// ERP invoices for historical completed orders (skipping those the ERP has).
    Invoices {
        /// Store code.
        #[arg(long)]
        store: String,
        /// Orders created on or after this date (YYYY-MM-DD).
        #[arg(long)]
        since: String,
        /// Orders created before this date (YYYY-MM-DD).
        #[arg(long)]
        until: Option<String>,
    },
    /// A full tracking sync and a status poll of every tracked order.
    Tracking {
        /// Store code.
        #[arg(long)]
        store: String,
    },
}

pub(crate) async fn enqueue(
    g: &GlobalArgs,
    kind: JobKind,
    store: String,
    order: Option<String>,
) -> anyhow::Result<()> {
    let config = g.load_config()?;
    if config.store(&store).is_none() {
        anyhow::bail!(
            "store {store} is not an active store in {}",
            g.config.display()
        );
    }
    let job = match (kind.is_per_order(), order) {
        (true, Some(order)) => NewJob::for_order(kind, &store, &order),
        (true, None) => anyhow::bail!("{kind} is a per-order job: pass --order REF"),
        (false, Some(_)) => anyhow::bail!("{kind} is a per-store job: --order does not apply"),
        (false, None) => NewJob::for_store(kind, &store),
    };
    if kind == JobKind::SendSms {
        anyhow::bail!("send_sms jobs are enqueued by status changes, not by hand");
    }
    let deps = crate::startup::build(&g.settings(), &config, 2).await?;
    let (envelopes, _) = deps.enqueuer.enqueue(Source::Cli, vec![job]).await?;
    println!("enqueued {kind} job {}", envelopes[0].job_id);
    Ok(())
}

pub(crate) async fn backfill(g: &GlobalArgs, what: BackfillCommand) -> anyhow::Result<()> {
    let config = g.load_config()?;
    let store = match &what {
        BackfillCommand::Invoices { store, .. } | BackfillCommand::Tracking { store } => {
            store.clone()
        }
    };
    if config.store(&store).is_none() {
        anyhow::bail!(
            "store {store} is not an active store in {}",
            g.config.display()
        );
    }
    let deps = crate::startup::build(&g.settings(), &config, 4).await?;
    let ids = match what {
        BackfillCommand::Invoices {
            store,
            since,
            until,
        } => {
            let since = crate::backfill::parse_date("--since", &since)?;
            let until = until
                .map(|u| crate::backfill::parse_date("--until", &u))
                .transpose()?;
            crate::backfill::invoices(&deps, &store, since, until).await?
        }
        BackfillCommand::Tracking { store } => crate::backfill::tracking(&deps, &store).await?,
    };
    println!("enqueued {} job(s) on the bulk lane", ids.len());
    let bar = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        indicatif::ProgressBar::new(ids.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "completed [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        )
    } else {
        indicatif::ProgressBar::hidden()
    };
    let outcome = crate::backfill::wait(&deps, &ids, &bar).await?;
    bar.finish_and_clear();
    println!(
        "created {}, skipped {}, failed {}",
        outcome.created, outcome.skipped, outcome.failed
    );
    Ok(())
}
