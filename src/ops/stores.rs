//! Per-store freshness and tracking coverage: "is every store still
//! syncing?" (domain.md: a store whose key was revoked goes quiet, not loud).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use crate::config::Config;

/// A store is stale when its last successful import is older than this:
/// imports run every 2 minutes, so 30 minutes is a dozen missed runs.
pub const IMPORT_STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// ... or its last successful tracking sync is older than this: syncs run
/// every 6 hours, so 13 hours is two missed runs and a margin.
pub const TRACKING_STALE_AFTER: Duration = Duration::from_secs(13 * 3600);

/// One store's freshness.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreFreshness {
    /// Store code.
    pub store: String,
    /// In the config's active stores.
    pub active: bool,
    /// Its courier account (`None` for a store only the ledger knows).
    pub courier_account: Option<String>,
    /// Orders imported.
    pub orders: u64,
    /// Of which have a tracking number.
    pub tracked: u64,
    /// `tracked / orders` (`None` without orders).
    pub tracking_coverage: Option<f64>,
    /// Last successful import_orders.
    pub last_import_at: Option<DateTime<Utc>>,
    /// Its age in seconds.
    pub last_import_age_secs: Option<f64>,
    /// Last successful fetch_tracking.
    pub last_tracking_at: Option<DateTime<Utc>>,
    /// Its age in seconds.
    pub last_tracking_age_secs: Option<f64>,
    /// An active store that never synced, or whose last sync is older than
    /// [`IMPORT_STALE_AFTER`] / [`TRACKING_STALE_AFTER`].
    pub stale: bool,
}

/// Every configured store, then any other store the ledger has orders of.
///
/// # Errors
/// Postgres failed.
pub async fn freshness(db: &PgPool, config: &Config) -> sqlx::Result<Vec<StoreFreshness>> {
    let now = Utc::now();
    let mut states = crate::ledger::ops::store_states(db).await?;
    let age =
        |at: Option<DateTime<Utc>>| at.map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
    let too_old = |age: Option<f64>, limit: Duration| age.is_none_or(|a| a > limit.as_secs_f64());
    let mut out = Vec::new();
    let configured = config
        .stores
        .iter()
        .map(|s| (s.code.clone(), Some(s.courier_account.clone()), true));
    let mut others: Vec<String> = states
        .keys()
        .filter(|code| !config.stores.iter().any(|s| &s.code == *code))
        .cloned()
        .collect();
    others.sort();
    for (store, courier_account, active) in
        configured.chain(others.into_iter().map(|code| (code, None, false)))
    {
        let state = states.remove(&store).unwrap_or_default();
        let last_import_age_secs = age(state.last_import_at);
        let last_tracking_age_secs = age(state.last_tracking_at);
        out.push(StoreFreshness {
            stale: active
                && (too_old(last_import_age_secs, IMPORT_STALE_AFTER)
                    || too_old(last_tracking_age_secs, TRACKING_STALE_AFTER)),
            tracking_coverage: (state.orders > 0)
                .then(|| state.tracked as f64 / state.orders as f64),
            store,
            active,
            courier_account,
            orders: state.orders,
            tracked: state.tracked,
            last_import_at: state.last_import_at,
            last_import_age_secs,
            last_tracking_at: state.last_tracking_at,
            last_tracking_age_secs,
        });
    }
    Ok(out)
}
