//! Composition root: connections and provider clients, built once per
//! process and handed down explicitly.

use std::sync::Arc;
use std::time::Duration;

use crate::accounts::Accounts;
use crate::config::Config;
use crate::jobs::Deps;
use crate::queue::Enqueuer;

/// Where the services are.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Postgres URL.
    pub database_url: String,
    /// Redis URL.
    pub redis_url: String,
    /// Queue namespace (prefix of every Redis key).
    pub namespace: String,
}

/// How long an invoice or SMS claim protects an attempt in progress: longer
/// than any provider call (timeouts are seconds), short enough that a dead
/// worker's claim is taken over by the next retry.
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);

/// Connect to Postgres (migrated) and Redis, and build every client.
///
/// # Errors
/// A service is unreachable or a migration fails.
pub async fn build(settings: &Settings, config: &Config, pool_size: u32) -> anyhow::Result<Deps> {
    let db = crate::ledger::connect(&settings.database_url, pool_size).await?;
    crate::ledger::migrate(&db).await?;
    let redis = crate::queue::connect(&settings.redis_url).await?;
    let policies = Arc::new(config.policies.clone());
    let limiter = crate::queue::ratelimit::Limiter::new(
        redis.clone(),
        &settings.namespace,
        config.limits.clone(),
        Duration::from_millis(config.http.timeout_ms),
    );
    let pauses = crate::queue::pause::PauseCheck::new(
        redis.clone(),
        &settings.namespace,
        config
            .courier_accounts
            .iter()
            .flat_map(|a| a.stores.iter().map(|s| (s.clone(), a.name.clone())))
            .collect(),
        &config.erp.name,
        &config.sms.name,
    );
    let enqueuer = Enqueuer::new(redis, db.clone(), &settings.namespace, policies.clone());
    for line in config.mapping_lines() {
        tracing::info!("store mapping: {line}");
    }
    Ok(Deps {
        db,
        enqueuer,
        accounts: Arc::new(Accounts::new(config)),
        policies,
        claim_lease: CLAIM_LEASE,
        gate: Some(Arc::new(limiter)),
        pauses: Some(pauses),
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
