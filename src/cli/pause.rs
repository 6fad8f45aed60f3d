//! `ordersync pause|resume --store S | --account ROLE:NAME | --kind K` and
//! `ordersync pause --list`.

use anyhow::Context as _;
use clap::Args;

use crate::cli::GlobalArgs;
use crate::domain::JobKind;
use crate::queue::pause::{Pause, PauseScope};

/// What to pause or resume: exactly one of the three.
#[derive(Debug, Clone, Args)]
#[group(required = false, multiple = false)]
pub struct ScopeArgs {
    /// A store code: every job of the store.
    #[arg(long)]
    pub store: Option<String>,
    /// A provider account as ROLE:NAME (courier:primary, shop:ALPH,
    /// erp:erpnext, sms:mnotify): every job that calls it.
    #[arg(long)]
    pub account: Option<String>,
    /// A job kind: every job of the kind.
    #[arg(long)]
    pub kind: Option<JobKind>,
}

impl ScopeArgs {
    fn scope(&self) -> anyhow::Result<PauseScope> {
        match (&self.store, &self.account, self.kind) {
            (Some(store), None, None) => Ok(PauseScope::Store(store.clone())),
            (None, Some(account), None) => PauseScope::account(account).map_err(anyhow::Error::msg),
            (None, None, Some(kind)) => Ok(PauseScope::Kind(kind)),
            _ => anyhow::bail!(
                "name what to pause: --store CODE, --account ROLE:NAME or --kind KIND"
            ),
        }
    }
}

/// `ordersync pause`.
pub(crate) async fn pause(
    g: &GlobalArgs,
    what: ScopeArgs,
    reason: Option<String>,
    list: bool,
) -> anyhow::Result<()> {
    let mut conn = crate::queue::connect(&g.redis_url).await?;
    if list {
        let pauses = crate::queue::pause::list(&mut conn, &g.namespace)
            .await
            .context("reading pauses")?;
        for line in crate::ops::pauses::lines(&pauses) {
            println!("{line}");
        }
        return Ok(());
    }
    let config = g.load_config()?;
    let scope = what.scope()?;
    crate::ops::pauses::validate(&scope, &config).map_err(anyhow::Error::msg)?;
    if let Some(reason) = &reason {
        crate::input::plain_text("--reason", reason).map_err(anyhow::Error::msg)?;
    }
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let request = Pause {
        by: crate::cli::operator(),
        at: chrono::Utc::now(),
        reason,
    };
    let (new, pause) = crate::queue::pause::pause(&mut conn, &g.namespace, &scope, &request)
        .await
        .context("recording the pause")?;
    if new {
        println!(
            "paused {scope}: its jobs wait (parked, no attempt used) until 'ordersync resume'"
        );
    } else {
        println!("{scope} was already paused {}", pause.describe());
    }
    Ok(())
}

/// `ordersync resume`.
pub(crate) async fn resume(g: &GlobalArgs, what: ScopeArgs) -> anyhow::Result<()> {
    let config = g.load_config()?;
    let scope = what.scope()?;
    crate::ops::pauses::validate(&scope, &config).map_err(anyhow::Error::msg)?;
    let mut conn = crate::queue::connect(&g.redis_url).await?;
    match crate::queue::pause::resume(&mut conn, &g.namespace, &scope)
        .await
        .context("removing the pause")?
    {
        Some(pause) => println!(
            "resumed {scope} (was paused {}): its parked jobs run at their next look, within 30 s",
            pause.describe()
        ),
        None => println!("{scope} was not paused"),
    }
    Ok(())
}
