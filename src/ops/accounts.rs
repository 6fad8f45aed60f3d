//! Every provider account as operators see it: its configured limits and its
//! circuit breaker's state now (read from Redis), for `ordersync stores`,
//! the admin API's `/admin/api/stores` (the dashboard) and `/metrics`.

use std::fmt::Write as _;

use redis::aio::ConnectionManager;

use crate::config::Config;
use crate::domain::limits::{role_of, AccountLimit};
use crate::domain::Provider;
use crate::queue::breaker::{self, BreakerState};

/// One account's limits and breaker.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccountStatus {
    /// `maystro`, `woocommerce`, `erpnext`, `mnotify`.
    pub provider: &'static str,
    /// `courier`, `shop`, `erp`, `sms` (its `[limits.<role>]` table).
    pub role: &'static str,
    /// The account's configured name (a store code for shops).
    pub account: String,
    /// Sustained requests per second, if limited.
    pub rate_per_s: Option<f64>,
    /// Burst above the rate.
    pub burst: u32,
    /// In-flight cap, if any.
    pub max_in_flight: Option<u32>,
    /// Failures in a row that open the breaker.
    pub breaker_failures: u32,
    /// How long it stays open before a probe, seconds.
    pub breaker_open_secs: f64,
    /// The breaker now.
    pub breaker: BreakerState,
}

/// Every account of `config`: courier accounts, each store's shop, the ERP
/// and the SMS account.
pub fn configured(config: &Config) -> Vec<(Provider, String)> {
    let mut all: Vec<(Provider, String)> = config
        .courier_accounts
        .iter()
        .map(|a| (a.provider, a.name.clone()))
        .collect();
    all.extend(
        config
            .stores
            .iter()
            .map(|s| (Provider::Woocommerce, s.code.clone())),
    );
    all.push((Provider::Erpnext, config.erp.name.clone()));
    all.push((config.sms_provider, config.sms.name.clone()));
    all
}

/// The status of every account of `config`.
///
/// # Errors
/// Redis failed.
pub async fn statuses(
    conn: &mut ConnectionManager,
    namespace: &str,
    config: &Config,
) -> redis::RedisResult<Vec<AccountStatus>> {
    let mut out = Vec::new();
    for (provider, account) in configured(config) {
        let limit = config
            .limits
            .get(&(provider, account.clone()))
            .copied()
            .unwrap_or(AccountLimit::UNLIMITED);
        let breaker = breaker::state(conn, namespace, provider, &account).await?;
        out.push(AccountStatus {
            provider: provider.as_str(),
            role: role_of(provider),
            account,
            rate_per_s: limit.rate_per_s,
            burst: limit.burst,
            max_in_flight: limit.max_in_flight,
            breaker_failures: limit.breaker.failures,
            breaker_open_secs: limit.breaker.open_for.as_secs_f64(),
            breaker,
        });
    }
    Ok(out)
}

/// One line per account for `ordersync stores`.
pub fn lines(statuses: &[AccountStatus]) -> Vec<String> {
    statuses
        .iter()
        .map(|s| {
            let rate = match s.rate_per_s {
                Some(rate) => format!("{rate}/s, burst {}", s.burst),
                None => "no rate limit".to_owned(),
            };
            let in_flight = match s.max_in_flight {
                Some(n) => format!(", at most {n} in flight"),
                None => String::new(),
            };
            format!(
                "{} account '{}' ({}): {rate}{in_flight}; breaker {} (opens after {} failures in a row, for {} s)",
                s.role, s.account, s.provider, s.breaker, s.breaker_failures, s.breaker_open_secs
            )
        })
        .collect()
}

/// Prometheus text: `ordersync_breaker_state` per account (0 closed,
/// 1 half-open, 2 open).
pub fn render_gauge(statuses: &[AccountStatus]) -> String {
    let mut out = String::new();
    out.push_str("# HELP ordersync_breaker_state Circuit breaker per provider account: 0 closed, 1 half-open (one probe testing it), 2 open (its jobs parked).\n");
    out.push_str("# TYPE ordersync_breaker_state gauge\n");
    for s in statuses {
        let _ = writeln!(
            out,
            "ordersync_breaker_state{{provider=\"{}\",account=\"{}\"}} {}",
            s.provider,
            s.account.replace('\\', "\\\\").replace('"', "\\\""),
            s.breaker.gauge()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(breaker: BreakerState) -> AccountStatus {
        AccountStatus {
            provider: "erpnext",
            role: "erp",
            account: "erpnext".into(),
            rate_per_s: Some(5.0),
            burst: 5,
            max_in_flight: Some(4),
            breaker_failures: 10,
            breaker_open_secs: 30.0,
            breaker,
        }
    }

    #[test]
    fn lines_and_gauges_name_the_account_and_its_breaker() {
        let open = status(BreakerState::Open {
            since: None,
            until: chrono::DateTime::parse_from_rfc3339("2026-03-01T10:00:30Z")
                .unwrap()
                .with_timezone(&chrono::Utc),
        });
        let line = &lines(std::slice::from_ref(&open))[0];
        assert_eq!(
            line,
            "erp account 'erpnext' (erpnext): 5/s, burst 5, at most 4 in flight; breaker OPEN until 10:00:30 UTC (jobs parked, no attempts used) (opens after 10 failures in a row, for 30 s)"
        );
        let text = render_gauge(&[open, status(BreakerState::Closed { failures: 2 })]);
        assert!(
            text.contains("ordersync_breaker_state{provider=\"erpnext\",account=\"erpnext\"} 2\n")
        );
        assert!(
            text.contains("ordersync_breaker_state{provider=\"erpnext\",account=\"erpnext\"} 0\n")
        );
    }
}
