//! Operator pauses of a store, a provider account or a job kind, kept in
//! Redis so every worker process sees them at once, and survive restarts.
//!
//! A pause stops no queue and deletes nothing: a worker that takes a job
//! whose store, account or kind is paused parks it as a delayed task
//! (`crate::worker::settle`: a `deferred` run of class `paused`, no attempt
//! used, looked at again every few seconds), so the queues keep their order
//! and nothing is dead-lettered. The scheduler keeps enqueuing by its usual
//! rules (one unfinished job per store and kind, per order and kind), so a
//! long pause does not pile work up.
//!
//! One hash per namespace, `{ns}:paused`: field `store:<code>`,
//! `account:<role>:<name>` or `kind:<kind>`, value a JSON [`Pause`] (who,
//! when, why). One hash rather than a key per pause: listing them is one
//! HGETALL instead of a SCAN over every task's keys, and a worker reads the
//! current pauses in the same script call that counts its deliveries' starts
//! (`crate::queue::starts`), so checking them costs no round trip per job.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};

use crate::domain::{JobEnvelope, JobKind};

/// The account roles a pause may name (as in `[limits.<role>.<account>]`).
pub const ACCOUNT_ROLES: [&str; 4] = ["courier", "shop", "erp", "sms"];

/// What a pause applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PauseScope {
    /// Every job of one store.
    Store(String),
    /// Every job that uses one provider account.
    Account {
        /// `courier`, `shop`, `erp` or `sms`.
        role: &'static str,
        /// The account's configured name (a store code for shops).
        name: String,
    },
    /// Every job of one kind.
    Kind(JobKind),
}

impl PauseScope {
    /// `store`, `account` or `kind` (the metric's `scope` label).
    pub fn scope(&self) -> &'static str {
        match self {
            PauseScope::Store(_) => "store",
            PauseScope::Account { .. } => "account",
            PauseScope::Kind(_) => "kind",
        }
    }

    /// The name within the scope: `ALPH`, `erp:erpnext`, `create_invoice`.
    pub fn name(&self) -> String {
        match self {
            PauseScope::Store(code) => code.clone(),
            PauseScope::Account { role, name } => format!("{role}:{name}"),
            PauseScope::Kind(kind) => kind.as_str().to_owned(),
        }
    }

    /// An account scope from `ROLE:NAME`.
    ///
    /// # Errors
    /// No colon, an unknown role, or an empty name; the message names it.
    pub fn account(spec: &str) -> Result<Self, String> {
        let (role, name) = spec
            .split_once(':')
            .ok_or_else(|| format!("account '{spec}' must be ROLE:NAME (e.g. erp:erpnext)"))?;
        let role = ACCOUNT_ROLES
            .into_iter()
            .find(|r| *r == role)
            .ok_or_else(|| {
                format!(
                    "unknown account role '{role}' in '{spec}' (expected one of: {})",
                    ACCOUNT_ROLES.join(", ")
                )
            })?;
        if name.is_empty() {
            return Err(format!("account '{spec}' has no name after the colon"));
        }
        Ok(PauseScope::Account {
            role,
            name: name.to_owned(),
        })
    }

    /// Parse `store`/`account`/`kind` and a name, as the admin API takes them.
    ///
    /// # Errors
    /// An unknown scope or kind, or a bad account; the message names it.
    pub fn parse(scope: &str, name: &str) -> Result<Self, String> {
        match scope {
            "store" if !name.is_empty() => Ok(PauseScope::Store(name.to_owned())),
            "store" => Err("store code is empty".into()),
            "account" => Self::account(name),
            "kind" => name.parse().map(PauseScope::Kind),
            other => Err(format!(
                "unknown pause scope '{other}' (expected store, account or kind)"
            )),
        }
    }

    /// Its field in the pauses hash: `store:ALPH`, `account:erp:erpnext`.
    fn field(&self) -> String {
        format!("{}:{}", self.scope(), self.name())
    }

    fn from_field(field: &str) -> Option<Self> {
        let (scope, name) = field.split_once(':')?;
        Self::parse(scope, name).ok()
    }
}

/// The hash holding every pause of `namespace`.
pub fn hash_key(namespace: &str) -> String {
    format!("{namespace}:paused")
}

impl std::fmt::Display for PauseScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.scope(), self.name())
    }
}

/// Who paused, when, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    /// The operator (`$USER@host` on the CLI, `admin` through the API).
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Their reason, if they gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Pause {
    /// `by alice@ops since 2026-12-03T14:00:00Z: ERP maintenance`.
    pub fn describe(&self) -> String {
        let mut text = format!(
            "by {} since {}",
            self.by,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        if let Some(reason) = &self.reason {
            text.push_str(": ");
            text.push_str(reason);
        }
        text
    }

    /// A stored value. One that is not ours still pauses (someone wrote
    /// the field by hand): it reads as paused by `unknown`.
    fn from_stored(value: &str) -> Self {
        serde_json::from_str(value).unwrap_or_else(|_| Pause {
            by: "unknown".into(),
            at: Utc::now(),
            reason: None,
        })
    }
}

/// The pauses as one worker read them, with the starts of a batch of
/// deliveries: field -> stored value, as in the hash. Usually empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PauseSnapshot(HashMap<String, String>);

impl PauseSnapshot {
    /// From HGETALL's flat field, value, field, value... reply.
    pub fn from_flat(flat: Vec<String>) -> Self {
        let mut fields = HashMap::with_capacity(flat.len() / 2);
        let mut items = flat.into_iter();
        while let (Some(field), Some(value)) = (items.next(), items.next()) {
            fields.insert(field, value);
        }
        Self(fields)
    }

    /// Whether nothing is paused.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get(&self, scope: &PauseScope) -> Option<Pause> {
        self.0.get(&scope.field()).map(|v| Pause::from_stored(v))
    }
}

/// How long a job held back by a pause that has lasted `paused_for` waits
/// before it looks again: a tenth of the pause so far, 2 to 30 s. A short
/// pause is picked up soon after its resume; a long one over a big backlog
/// does not write a parked run per job every few seconds.
pub fn recheck_after(paused_for: std::time::Duration) -> std::time::Duration {
    (paused_for / 10).clamp(
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(30),
    )
}

/// Pause `scope`. Pausing what is already paused keeps the first pause's
/// who/when/why and returns it (`false`: it was already paused).
///
/// # Errors
/// Redis failed.
pub async fn pause(
    conn: &mut ConnectionManager,
    namespace: &str,
    scope: &PauseScope,
    pause: &Pause,
) -> redis::RedisResult<(bool, Pause)> {
    let key = hash_key(namespace);
    let field = scope.field();
    let json = serde_json::to_string(pause).expect("a pause serializes");
    let set: bool = redis::cmd("HSETNX")
        .arg(&key)
        .arg(&field)
        .arg(&json)
        .query_async(conn)
        .await?;
    if set {
        return Ok((true, pause.clone()));
    }
    let existing: Option<String> = redis::cmd("HGET")
        .arg(&key)
        .arg(&field)
        .query_async(conn)
        .await?;
    let existing = existing.map_or_else(|| pause.clone(), |j| Pause::from_stored(&j));
    Ok((false, existing))
}

/// Resume `scope`: its pause, if it was paused.
///
/// # Errors
/// Redis failed.
pub async fn resume(
    conn: &mut ConnectionManager,
    namespace: &str,
    scope: &PauseScope,
) -> redis::RedisResult<Option<Pause>> {
    let key = hash_key(namespace);
    let field = scope.field();
    let (existing, _): (Option<String>, i64) = redis::pipe()
        .atomic()
        .cmd("HGET")
        .arg(&key)
        .arg(&field)
        .cmd("HDEL")
        .arg(&key)
        .arg(&field)
        .query_async(conn)
        .await?;
    Ok(existing.map(|j| Pause::from_stored(&j)))
}

/// Every pause now, sorted by scope and name.
///
/// # Errors
/// Redis failed.
pub async fn list(
    conn: &mut ConnectionManager,
    namespace: &str,
) -> redis::RedisResult<Vec<(PauseScope, Pause)>> {
    let stored: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(hash_key(namespace))
        .query_async(conn)
        .await?;
    // A field that names no scope (written by hand) pauses nothing.
    let mut out: Vec<(PauseScope, Pause)> = stored
        .iter()
        .filter_map(|(field, value)| {
            Some((PauseScope::from_field(field)?, Pause::from_stored(value)))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The worker's side: which pauses hold a job back. Knows which account
/// each kind of job of each store uses.
#[derive(Clone)]
pub struct PauseCheck {
    conn: ConnectionManager,
    namespace: String,
    courier_of_store: HashMap<String, String>,
    erp: String,
    sms: String,
}

impl std::fmt::Debug for PauseCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PauseCheck")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl PauseCheck {
    /// `courier_of_store` maps each store to its courier account's name;
    /// `erp` and `sms` are the ERP's and the SMS account's names.
    pub fn new(
        conn: ConnectionManager,
        namespace: &str,
        courier_of_store: HashMap<String, String>,
        erp: &str,
        sms: &str,
    ) -> Self {
        Self {
            conn,
            namespace: namespace.to_owned(),
            courier_of_store,
            erp: erp.to_owned(),
            sms: sms.to_owned(),
        }
    }

    /// Every pause of this namespace (see [`list`]).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn list(&self) -> redis::RedisResult<Vec<(PauseScope, Pause)>> {
        list(&mut self.conn.clone(), &self.namespace).await
    }

    /// Pause `scope` (see [`pause`]).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn pause(
        &self,
        scope: &PauseScope,
        request: &Pause,
    ) -> redis::RedisResult<(bool, Pause)> {
        pause(&mut self.conn.clone(), &self.namespace, scope, request).await
    }

    /// Resume `scope` (see [`resume`]).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn resume(&self, scope: &PauseScope) -> redis::RedisResult<Option<Pause>> {
        resume(&mut self.conn.clone(), &self.namespace, scope).await
    }

    /// The scopes that hold `envelope` back if paused: its store, its kind,
    /// and the accounts its kind calls for its store.
    pub fn scopes_of(&self, envelope: &JobEnvelope) -> Vec<PauseScope> {
        let mut scopes = vec![
            PauseScope::Store(envelope.store.clone()),
            PauseScope::Kind(envelope.kind),
        ];
        let shop = ("shop", envelope.store.clone());
        let erp = ("erp", self.erp.clone());
        let accounts = match envelope.kind {
            JobKind::ImportOrders | JobKind::WriteBack => vec![shop],
            JobKind::FetchTracking | JobKind::RefreshStatus => self
                .courier_of_store
                .get(&envelope.store)
                .map(|name| ("courier", name.clone()))
                .into_iter()
                .collect(),
            JobKind::CreateInvoice | JobKind::RecordPayment => vec![erp],
            // A cancellation asks the shop again before it touches the ERP.
            JobKind::CancelInvoice => vec![shop, erp],
            JobKind::SendSms => vec![("sms", self.sms.clone())],
            JobKind::Noop => Vec::new(),
        };
        scopes.extend(
            accounts
                .into_iter()
                .map(|(role, name)| PauseScope::Account { role, name }),
        );
        scopes
    }

    /// The first pause in `snapshot` that holds `envelope` back, if any.
    pub fn holding(
        &self,
        snapshot: &PauseSnapshot,
        envelope: &JobEnvelope,
    ) -> Option<(PauseScope, Pause)> {
        if snapshot.is_empty() {
            return None;
        }
        self.scopes_of(envelope)
            .into_iter()
            .find_map(|scope| snapshot.get(&scope).map(|pause| (scope, pause)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_name_what_is_wrong() {
        assert_eq!(
            PauseScope::parse("account", "erp:erpnext").unwrap(),
            PauseScope::Account {
                role: "erp",
                name: "erpnext".into()
            }
        );
        assert_eq!(
            PauseScope::parse("kind", "send_sms").unwrap(),
            PauseScope::Kind(JobKind::SendSms)
        );
        let e = PauseScope::parse("account", "bank:x").unwrap_err();
        assert!(e.contains("unknown account role 'bank'"), "{e}");
        let e = PauseScope::parse("account", "erpnext").unwrap_err();
        assert!(e.contains("ROLE:NAME"), "{e}");
        let e = PauseScope::parse("kind", "nap").unwrap_err();
        assert!(e.contains("unknown job kind 'nap'"), "{e}");
        let e = PauseScope::parse("planet", "x").unwrap_err();
        assert!(e.contains("unknown pause scope 'planet'"), "{e}");
    }

    #[test]
    fn fields_read_back_as_their_scope() {
        for scope in [
            PauseScope::Store("ALPH".into()),
            PauseScope::Account {
                role: "courier",
                name: "primary".into(),
            },
            PauseScope::Kind(JobKind::CreateInvoice),
        ] {
            assert_eq!(PauseScope::from_field(&scope.field()), Some(scope));
        }
    }
}
