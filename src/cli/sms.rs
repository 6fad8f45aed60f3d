//! `ordersync sms unknown|resend`: texts whose fate is unknown.

use clap::Subcommand;

use crate::cli::{operator, GlobalArgs};
use crate::domain::Source;
use crate::texts::{self, Resend, Selection};

/// `ordersync sms ...`
#[derive(Debug, Subcommand)]
pub enum SmsCommand {
    /// Texts whose fate is unknown (the gateway timed out, or the worker
    /// died while sending): never re-sent by themselves.
    Unknown {
        /// Only this store.
        #[arg(long)]
        store: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 200)]
        limit: i64,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Send texts of unknown fate again, on purpose (the customer may get
    /// two). Each becomes a new send_sms job recorded with who asked.
    Resend {
        /// The order whose text to resend (with --status).
        #[arg(long, requires = "status", conflicts_with = "all")]
        order: Option<String>,
        /// The status the text announces (e.g. delivered).
        #[arg(long, requires = "order")]
        status: Option<String>,
        /// Every text of unknown fate (of --store, if given).
        #[arg(long)]
        all: bool,
        /// Only this store (with --all).
        #[arg(long, requires = "all")]
        store: Option<String>,
        /// Show what would be resent; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

/// Run an `sms` command.
///
/// # Errors
/// Bad input (named), or Postgres or Redis failed.
pub(crate) async fn run(g: &GlobalArgs, command: SmsCommand) -> anyhow::Result<()> {
    match command {
        SmsCommand::Unknown { store, limit, json } => {
            let db = crate::ledger::connect(&g.database_url, 2).await?;
            let mut texts = crate::ledger::sms::unknown(&db, store.as_deref(), limit).await?;
            for t in &mut texts {
                t.phone = crate::redact::mask_phone(&t.phone);
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&texts)?);
                return Ok(());
            }
            for t in &texts {
                println!(
                    "{} {:<14} {:<16} {} job {} \"{}\"",
                    t.claimed_at.format("%Y-%m-%d %H:%M:%S"),
                    t.reference,
                    t.status,
                    t.phone,
                    t.job_id,
                    t.message
                );
            }
            println!("{} text(s) of unknown fate", texts.len());
            Ok(())
        }
        SmsCommand::Resend {
            order,
            status,
            all,
            store,
            dry_run,
            json,
        } => {
            let selection = match (order, status, all) {
                (Some(reference), Some(status), false) => Selection::One { reference, status },
                (None, None, true) => Selection::All { store },
                _ => anyhow::bail!("name one text (--order REF --status S) or --all"),
            };
            let config = g.load_config()?;
            let deps = crate::startup::build(&g.settings(), &config, 2).await?;
            let by = format!("cli:{}", operator());
            let results = texts::resend(&deps, &selection, &by, Source::Cli, dry_run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&results)?);
                return Ok(());
            }
            let mut resent = 0;
            for r in &results {
                match r {
                    Resend::Resent {
                        reference,
                        status,
                        job_id,
                        ..
                    } => {
                        resent += 1;
                        println!("resending {reference} {status} as job {job_id}");
                    }
                    Resend::WouldResend { reference, status } => {
                        resent += 1;
                        println!("would resend {reference} {status}");
                    }
                    Resend::Skipped {
                        reference,
                        status,
                        reason,
                    } => println!("skipped {reference} {status}: {reason}"),
                }
            }
            let verb = if dry_run { "would resend" } else { "resent" };
            println!("{verb} {resent} of {} text(s)", results.len());
            Ok(())
        }
    }
}
