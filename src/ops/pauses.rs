//! Pauses as operators name them: checked against the configuration (an
//! unknown store, account or kind is refused, naming it and what exists),
//! listed for `ordersync pause --list`, the admin API and the dashboard, and
//! the `ordersync_paused` gauge. The pauses themselves live in Redis
//! (`crate::queue::pause`).

use std::fmt::Write as _;

use crate::config::Config;
use crate::queue::pause::{Pause, PauseScope};

/// Refuse a scope the configuration does not know.
///
/// # Errors
/// The store, account or role is not configured; the message names it and
/// lists the known ones.
pub fn validate(scope: &PauseScope, config: &Config) -> Result<(), String> {
    match scope {
        PauseScope::Store(code) => {
            if config.stores.iter().any(|s| &s.code == code) {
                Ok(())
            } else {
                let known: Vec<&str> = config.stores.iter().map(|s| s.code.as_str()).collect();
                Err(format!(
                    "unknown store '{code}' (configured: {})",
                    known.join(", ")
                ))
            }
        }
        PauseScope::Account { role, name } => {
            let known: Vec<String> = crate::ops::accounts::configured(config)
                .into_iter()
                .filter(|(provider, _)| crate::domain::limits::role_of(*provider) == *role)
                .map(|(_, account)| account)
                .collect();
            if known.iter().any(|k| k == name) {
                Ok(())
            } else {
                Err(format!(
                    "unknown {role} account '{name}' (configured: {})",
                    known.join(", ")
                ))
            }
        }
        // Every kind parsed is a real kind.
        PauseScope::Kind(_) => Ok(()),
    }
}

/// One pause as the admin API and the dashboard show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PauseView {
    /// `store`, `account` or `kind`.
    pub scope: &'static str,
    /// `ALPH`, `erp:erpnext`, `create_invoice`.
    pub name: String,
    /// Who paused it.
    pub by: String,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Why, if they said.
    pub reason: Option<String>,
}

impl PauseView {
    /// The view of one pause.
    pub fn of(scope: &PauseScope, pause: &Pause) -> Self {
        Self {
            scope: scope.scope(),
            name: scope.name(),
            by: pause.by.clone(),
            at: pause.at,
            reason: pause.reason.clone(),
        }
    }
}

/// One line per pause (`paused: store ALPH by ... since ...: why`), or a
/// line saying there is none.
pub fn lines(pauses: &[(PauseScope, Pause)]) -> Vec<String> {
    if pauses.is_empty() {
        return vec!["paused: nothing".to_owned()];
    }
    pauses
        .iter()
        .map(|(scope, pause)| format!("paused: {scope} {}", pause.describe()))
        .collect()
}

/// Prometheus text: `ordersync_paused{scope,name} 1` per pause.
pub fn render_gauge(pauses: &[(PauseScope, Pause)]) -> String {
    let mut out = String::new();
    out.push_str("# HELP ordersync_paused Stores, accounts and job kinds an operator paused (their jobs wait, parked without using attempts).\n");
    out.push_str("# TYPE ordersync_paused gauge\n");
    for (scope, _) in pauses {
        let _ = writeln!(
            out,
            "ordersync_paused{{scope=\"{}\",name=\"{}\"}} 1",
            scope.scope(),
            scope.name().replace('\\', "\\\\").replace('"', "\\\"")
        );
    }
    out
}
