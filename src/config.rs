//! The configuration file (TOML) and the secrets it names in the environment.
//!
//! Every store maps to exactly one courier account, one shop, the ERP and
//! the SMS account. Secrets never live in the file: it names environment
//! variables (`*_env`), read at start-up into `SecretString`s.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context as _;
use secrecy::SecretString;
use serde::Deserialize;

use crate::domain::limits::{AccountLimit, LimitsFile};
use crate::domain::retry::default_policy;
use crate::domain::{schedule, JobKind, Policies, Provider, RetryPolicy};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// HTTP client settings for every provider call.
    #[serde(default)]
    pub http: HttpConfig,
    /// Courier accounts, each listing the stores it serves.
    #[serde(default)]
    pub courier_accounts: Vec<CourierAccountConfig>,
    /// The ERP.
    pub erp: ErpConfig,
    /// The SMS account.
    pub sms: SmsConfig,
    /// The stores.
    #[serde(default)]
    pub stores: Vec<StoreConfig>,
    /// Per-kind retry overrides, keyed by kind name.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobPolicyConfig>,
    /// Deferral settings.
    #[serde(default)]
    pub deferral: DeferralConfig,
    /// The admin API.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Scheduler cron expressions by kind (with seconds), overriding the
    /// defaults; `"off"` disables a kind.
    #[serde(default)]
    pub schedule: BTreeMap<String, String>,
    /// Per-account request limits: `[limits.<role>.<account>]` (see
    /// [`crate::domain::limits`]).
    #[serde(default)]
    pub limits: LimitsFile,
}

/// The admin API's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Environment variable holding the bearer token for `/admin/api`.
    pub token_env: String,
}

/// HTTP client settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Whole-request timeout, ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Connect timeout, ms.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_connect_timeout_ms() -> u64 {
    3_000
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeout_ms: default_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
        }
    }
}

/// One courier account (one credential).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourierAccountConfig {
    /// Name shown in logs and the ledger (never the key).
    pub name: String,
    /// Which courier: `maystro` (the default, so older files keep working),
    /// `yalidine`, or `datamart` (a status source for stores that sell
    /// data bundles, polled by order reference).
    #[serde(default = "default_courier_provider")]
    pub provider: String,
    /// API base, e.g. `https://backend.maystro-delivery.com/api` or
    /// `https://api.yalidine.app/v1`.
    pub base_url: String,
    /// Environment variable holding the API key (Maystro's token,
    /// Yalidine's `X-API-TOKEN`).
    pub key_env: String,
    /// Yalidine only: environment variable holding the `X-API-ID`.
    #[serde(default)]
    pub api_id_env: Option<String>,
    /// Store codes this account serves.
    pub stores: Vec<String>,
    /// Optional: environment variable holding the secret the courier's
    /// webhook must present (in its URL path or `X-Ordersync-Token`).
    #[serde(default)]
    pub webhook_secret_env: Option<String>,
}

fn default_courier_provider() -> String {
    "maystro".into()
}

/// The courier providers an account may name, as spelled in the file.
const COURIER_PROVIDERS: [(&str, Provider); 3] = [
    ("maystro", Provider::Maystro),
    ("yalidine", Provider::Yalidine),
    ("datamart", Provider::Datamart),
];

/// The provider of a courier account, checked with its credentials'
/// settings: Yalidine needs `api_id_env`, Maystro has no use for one.
fn courier_provider(account: &CourierAccountConfig) -> Result<Provider, String> {
    let Some((_, provider)) = COURIER_PROVIDERS
        .iter()
        .find(|(name, _)| *name == account.provider)
    else {
        let names: Vec<&str> = COURIER_PROVIDERS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "courier account {} uses provider '{}'; supported: {}",
            account.name,
            account.provider,
            names.join(", ")
        ));
    };
    match (provider, &account.api_id_env) {
        (Provider::Yalidine, None) => Err(format!(
            "courier account {} (yalidine) needs api_id_env: the environment variable holding its X-API-ID",
            account.name
        )),
        (Provider::Maystro | Provider::Datamart, Some(_)) => Err(format!(
            "courier account {} ({}) has api_id_env, which only yalidine accounts use; remove it",
            account.name, account.provider
        )),
        _ => Ok(*provider),
    }
}

/// The ERP account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErpConfig {
    /// Name for logs.
    #[serde(default = "default_erp_name")]
    pub name: String,
    /// Site URL, e.g. `https://erp.example.com`.
    pub base_url: String,
    /// Environment variable holding the API key.
    pub api_key_env: String,
    /// Environment variable holding the API secret.
    pub api_secret_env: String,
}

fn default_erp_name() -> String {
    "erpnext".into()
}

/// The SMS account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// Name for logs.
    #[serde(default = "default_sms_name")]
    pub name: String,
    /// Which gateway: `mnotify` (the default, so older files keep working)
    /// or `twilio`.
    #[serde(default = "default_sms_provider")]
    pub provider: String,
    /// API base, e.g. `https://api.mnotify.com` or `https://api.twilio.com`.
    pub base_url: String,
    /// Environment variable holding the API key (Twilio: the auth token).
    pub api_key_env: String,
    /// Sender id (mNotify: at most 11 characters; Twilio: the `From`
    /// number, E.164).
    pub sender: String,
    /// Twilio only: environment variable holding the Account SID.
    #[serde(default)]
    pub account_sid_env: Option<String>,
    /// Twilio only: our public URL of `POST /webhooks/sms/twilio`, sent as
    /// each text's `StatusCallback` and checked in its signature (absent:
    /// no delivery receipts).
    #[serde(default)]
    pub status_callback_url: Option<String>,
    /// Twilio only: country calling code (e.g. `+213`) for national numbers.
    #[serde(default)]
    pub country_code: Option<String>,
}

fn default_sms_provider() -> String {
    "mnotify".into()
}

/// The SMS account's provider, checked with its provider-specific settings.
fn sms_provider(sms: &SmsConfig) -> Result<Provider, String> {
    let twilio_only = [
        ("account_sid_env", sms.account_sid_env.is_some()),
        ("status_callback_url", sms.status_callback_url.is_some()),
        ("country_code", sms.country_code.is_some()),
    ];
    match sms.provider.as_str() {
        "mnotify" => match twilio_only.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(format!(
                "[sms] {key} is for provider twilio; sms account {} uses mnotify",
                sms.name
            )),
            None => Ok(Provider::Mnotify),
        },
        "twilio" if sms.account_sid_env.is_none() => Err(format!(
            "[sms] sms account {} (twilio) needs account_sid_env: the environment variable holding its Account SID",
            sms.name
        )),
        "twilio" => Ok(Provider::Twilio),
        other => Err(format!(
            "[sms] sms account {} uses provider '{other}'; supported: mnotify, twilio",
            sms.name
        )),
    }
}

fn default_sms_name() -> String {
    "mnotify".into()
}

/// One store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Short code, e.g. `ALPH`: prefixes order references.
    pub code: String,
    /// Inactive stores get no jobs and need no mapping.
    #[serde(default = "default_true")]
    pub active: bool,
    /// WooCommerce site URL.
    pub shop_url: String,
    /// Environment variable holding the consumer key.
    pub shop_key_env: String,
    /// Environment variable holding the consumer secret.
    pub shop_secret_env: String,
    /// Environment variable holding the WooCommerce webhook secret (the
    /// store's webhooks are refused without one).
    #[serde(default)]
    pub webhook_secret_env: Option<String>,
    /// Which payments are recorded in the ERP (`[stores.payments]`).
    #[serde(default)]
    pub payments: StorePayments,
    /// What the shop is told when the courier finishes (`[stores.write_back]`).
    #[serde(default)]
    pub write_back: StoreWriteBack,
}

fn default_true() -> bool {
    true
}

/// A store's payment rules: the shop payment methods whose invoices get a
/// Payment Entry right after the invoice, into which ERP account; and the
/// account cash on delivery is received into when the courier delivers
/// (absent: COD payments are not recorded).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorePayments {
    /// Shop payment method -> ERP account (e.g. `kashier_card = "Kashier - ACME"`,
    /// the company's `custom_kashier_account`).
    #[serde(default)]
    pub accounts: BTreeMap<String, String>,
    /// ERP account receiving cash on delivery, on delivery.
    #[serde(default)]
    pub cod_on_delivery: Option<String>,
}

impl StorePayments {
    /// The ERP account a Payment Entry for an order paid with `method` goes
    /// to, once the order is `delivered` (or not): prepaid methods at once,
    /// cash on delivery on delivery. `None`: no payment is recorded.
    pub fn account_for(&self, method: &str, delivered: bool) -> Option<&str> {
        if method == "cod" {
            return self.cod_on_delivery.as_deref().filter(|_| delivered);
        }
        self.accounts.get(method).map(String::as_str)
    }
}

/// The shop statuses written back when the courier reports a final status;
/// `off` leaves the shop alone. Both default to `off`: writing to a shop is
/// a new side effect an operator turns on per store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreWriteBack {
    /// Written when the courier delivers (e.g. `completed`; default `off`).
    #[serde(default = "default_off")]
    pub delivered: String,
    /// Written when the parcel is returned (default `off`; e.g. `cancelled`
    /// or `refunded`).
    #[serde(default = "default_off")]
    pub returned: String,
}

impl Default for StoreWriteBack {
    fn default() -> Self {
        Self {
            delivered: default_off(),
            returned: default_off(),
        }
    }
}

impl StoreWriteBack {
    /// The shop status to write for a courier's final `status`, if any.
    pub fn target(&self, status: &str) -> Option<&str> {
        let target = match status {
            "delivered" => &self.delivered,
            "returned" => &self.returned,
            _ => return None,
        };
        (target != "off").then_some(target.as_str())
    }
}

fn default_off() -> String {
    "off".into()
}

/// Shop statuses a write-back may set (WooCommerce's own, less `trash`).
const WRITABLE_SHOP_STATUSES: [&str; 7] = [
    "pending",
    "processing",
    "on-hold",
    "completed",
    "cancelled",
    "refunded",
    "failed",
];

/// Checks one store's payment and write-back rules, naming the store and
/// the offending key.
fn check_store_rules(store: &StoreConfig) -> anyhow::Result<()> {
    for (method, account) in &store.payments.accounts {
        if method == "cod" {
            anyhow::bail!(
                "store {}: payments.accounts.cod: cash on delivery is paid on delivery; set payments.cod_on_delivery = \"<account>\" instead",
                store.code
            );
        }
        if crate::domain::payment::mode_of_payment(method).is_none() {
            anyhow::bail!(
                "store {}: payments.accounts.{method}: unknown payment method (expected one of instapay, kashier_card, kashier_wallet)",
                store.code
            );
        }
        if account.trim().is_empty() {
            anyhow::bail!(
                "store {}: payments.accounts.{method} is empty: name an ERP account",
                store.code
            );
        }
    }
    if store
        .payments
        .cod_on_delivery
        .as_deref()
        .is_some_and(|a| a.trim().is_empty())
    {
        anyhow::bail!(
            "store {}: payments.cod_on_delivery is empty: name an ERP account or remove it",
            store.code
        );
    }
    for (event, status) in [
        ("delivered", &store.write_back.delivered),
        ("returned", &store.write_back.returned),
    ] {
        if status != "off" && !WRITABLE_SHOP_STATUSES.contains(&status.as_str()) {
            anyhow::bail!(
                "store {}: write_back.{event} = \"{status}\" is not a shop status (expected off or one of {})",
                store.code,
                WRITABLE_SHOP_STATUSES.join(", ")
            );
        }
    }
    Ok(())
}

/// Retry overrides for one kind.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobPolicyConfig {
    /// Attempts in all.
    pub max_attempts: Option<u32>,
    /// First retry's delay ceiling, ms.
    pub backoff_base_ms: Option<u64>,
    /// Largest delay, ms.
    pub backoff_cap_ms: Option<u64>,
}

/// Deferral settings (payment pending).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeferralConfig {
    /// Wait between looks, ms.
    pub delay_ms: Option<u64>,
    /// Give up after this long since enqueue, seconds.
    pub max_age_secs: Option<u64>,
}

/// A store with everything resolved.
#[derive(Debug, Clone)]
pub struct Store {
    /// Code.
    pub code: String,
    /// Its courier account's name.
    pub courier_account: String,
    /// Which courier that account is with.
    pub courier_provider: Provider,
    /// Shop URL.
    pub shop_url: String,
    /// Consumer key.
    pub shop_key: SecretString,
    /// Consumer secret.
    pub shop_secret: SecretString,
    /// Webhook signing secret.
    pub webhook_secret: Option<SecretString>,
    /// Which payments are recorded in the ERP.
    pub payments: StorePayments,
    /// What the shop is told when the courier finishes.
    pub write_back: StoreWriteBack,
}

/// A courier account with its key.
#[derive(Debug, Clone)]
pub struct CourierAccount {
    /// Name.
    pub name: String,
    /// Which courier (Maystro or Yalidine).
    pub provider: Provider,
    /// Yalidine's `X-API-ID` (`None` for Maystro).
    pub api_id: Option<SecretString>,
    /// API base.
    pub base_url: String,
    /// Key.
    pub key: SecretString,
    /// Stores it serves (active ones).
    pub stores: Vec<String>,
    /// The secret its webhook must present, if one is configured.
    pub webhook_secret: Option<SecretString>,
}

/// The loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP settings.
    pub http: HttpConfig,
    /// Active stores, by code order.
    pub stores: Vec<Store>,
    /// Courier accounts.
    pub courier_accounts: Vec<CourierAccount>,
    /// ERP.
    pub erp: ErpConfig,
    /// ERP key.
    pub erp_key: SecretString,
    /// ERP secret.
    pub erp_secret: SecretString,
    /// SMS.
    pub sms: SmsConfig,
    /// SMS key (Twilio: the auth token).
    pub sms_key: SecretString,
    /// Which gateway the SMS account is with.
    pub sms_provider: Provider,
    /// Twilio's Account SID (`None` for mNotify).
    pub sms_account_sid: Option<SecretString>,
    /// Retry and deferral policies.
    pub policies: Policies,
    /// Bearer token of the admin API (`None`: the API is not configured).
    pub admin_token: Option<SecretString>,
    /// The environment variable the admin token came from (for messages).
    pub admin_token_env: Option<String>,
    /// The scheduler's (kind, cron expression) pairs.
    pub schedule: Vec<(JobKind, String)>,
    /// Request limits by (provider, account name); an account absent here
    /// is not limited.
    pub limits: BTreeMap<(Provider, String), AccountLimit>,
}

/// The `[limits]` tables, validated: each names an account the file
/// defines, with values that can work. Complaints go to `problems`.
fn resolve_limits(
    file: &FileConfig,
    problems: &mut Vec<String>,
) -> BTreeMap<(Provider, String), AccountLimit> {
    let mut limits = BTreeMap::new();
    for (role, accounts) in &file.limits {
        let provider = match crate::domain::limits::provider_of_role(role) {
            Ok(p) => p,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let known: Vec<&str> = match provider {
            Provider::Maystro | Provider::Yalidine | Provider::Datamart => file
                .courier_accounts
                .iter()
                .map(|a| a.name.as_str())
                .collect(),
            Provider::Woocommerce => file.stores.iter().map(|s| s.code.as_str()).collect(),
            Provider::Erpnext => vec![file.erp.name.as_str()],
            Provider::Mnotify | Provider::Twilio => vec![file.sms.name.as_str()],
        };
        for (account, config) in accounts {
            if !known.contains(&account.as_str()) {
                problems.push(format!(
                    "[limits.{role}.{account}]: no {role} account named '{account}' (known: {})",
                    known.join(", ")
                ));
                continue;
            }
            // A courier or SMS account's requests are counted under its own
            // provider, which the gate is asked about.
            let provider = match role.as_str() {
                "courier" => file
                    .courier_accounts
                    .iter()
                    .find(|a| &a.name == account)
                    .and_then(|a| courier_provider(a).ok())
                    .unwrap_or(provider),
                "sms" => sms_provider(&file.sms).unwrap_or(provider),
                _ => provider,
            };
            match crate::domain::limits::validate(role, account, config) {
                Ok(limit) => {
                    limits.insert((provider, account.clone()), limit);
                }
                Err(e) => problems.push(e),
            }
        }
    }
    limits
}

impl Config {
    /// Read `path`, resolve secrets from the environment, and validate.
    ///
    /// # Errors
    /// The file is unreadable or invalid, a secret variable is unset, or a
    /// store is mapped to no courier account or to several (named).
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let file: FileConfig = toml::from_str(&text)
            .with_context(|| format!("parsing config file {}", path.display()))?;
        Self::resolve(file, &|name| std::env::var(name).ok())
    }

    /// Validate `file`, reading secrets through `env`.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn resolve(file: FileConfig, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let secret = |var: &str, what: &str| -> anyhow::Result<SecretString> {
            match env(var) {
                Some(v) if !v.is_empty() => Ok(SecretString::from(v)),
                _ => anyhow::bail!("environment variable {var} ({what}) is not set"),
            }
        };
        let mut problems = Vec::new();
        let mut seen_codes = std::collections::HashSet::new();
        for store in &file.stores {
            if !seen_codes.insert(store.code.as_str()) {
                problems.push(format!("store {} is defined twice", store.code));
            }
        }
        let active: Vec<&StoreConfig> = file.stores.iter().filter(|s| s.active).collect();
        let mut account_of: HashMap<&str, Vec<&str>> = HashMap::new();
        let mut provider_of_account: HashMap<&str, Provider> = HashMap::new();
        for account in &file.courier_accounts {
            match courier_provider(account) {
                Ok(provider) => {
                    provider_of_account.insert(account.name.as_str(), provider);
                }
                Err(problem) => problems.push(problem),
            }
            for store in &account.stores {
                if !file.stores.iter().any(|s| &s.code == store) {
                    problems.push(format!(
                        "courier account {} lists store {store}, which is not defined",
                        account.name
                    ));
                }
                account_of
                    .entry(store.as_str())
                    .or_default()
                    .push(account.name.as_str());
            }
        }
        for store in &active {
            match account_of.get(store.code.as_str()).map(Vec::as_slice) {
                None | Some([]) => problems.push(format!(
                    "store {} is active but no courier account lists it",
                    store.code
                )),
                Some([_]) => {}
                Some(many) => problems.push(format!(
                    "store {} is listed by {} courier accounts ({}); it must use exactly one",
                    store.code,
                    many.len(),
                    many.join(", ")
                )),
            }
        }
        let sms_provider = sms_provider(&file.sms).unwrap_or_else(|problem| {
            problems.push(problem);
            Provider::Mnotify
        });
        let limits = resolve_limits(&file, &mut problems);
        if !problems.is_empty() {
            anyhow::bail!("invalid configuration:\n  - {}", problems.join("\n  - "));
        }

        let mut courier_accounts = Vec::new();
        for account in &file.courier_accounts {
            let stores: Vec<String> = account
                .stores
                .iter()
                .filter(|s| active.iter().any(|a| &a.code == *s))
                .cloned()
                .collect();
            courier_accounts.push(CourierAccount {
                name: account.name.clone(),
                provider: provider_of_account[account.name.as_str()],
                api_id: match &account.api_id_env {
                    Some(var) => Some(secret(
                        var,
                        &format!("courier account {} API id", account.name),
                    )?),
                    None => None,
                },
                base_url: account.base_url.clone(),
                key: secret(
                    &account.key_env,
                    &format!("courier account {} key", account.name),
                )?,
                stores,
                webhook_secret: match &account.webhook_secret_env {
                    Some(var) => Some(secret(
                        var,
                        &format!("courier account {} webhook secret", account.name),
                    )?),
                    None => None,
                },
            });
        }
        let mut stores = Vec::new();
        for store in active {
            check_store_rules(store)?;
            stores.push(Store {
                payments: store.payments.clone(),
                write_back: store.write_back.clone(),
                code: store.code.clone(),
                courier_account: account_of[store.code.as_str()][0].to_owned(),
                courier_provider: provider_of_account[account_of[store.code.as_str()][0]],
                shop_url: store.shop_url.clone(),
                shop_key: secret(
                    &store.shop_key_env,
                    &format!("store {} shop consumer key", store.code),
                )?,
                shop_secret: secret(
                    &store.shop_secret_env,
                    &format!("store {} shop consumer secret", store.code),
                )?,
                webhook_secret: match &store.webhook_secret_env {
                    Some(var) => Some(secret(
                        var,
                        &format!("store {} webhook secret", store.code),
                    )?),
                    None => None,
                },
            });
        }
        let mut policies = Policies::default();
        for (name, over) in &file.jobs {
            let kind: JobKind = name
                .parse()
                .map_err(|e: String| anyhow::anyhow!("[jobs.{name}]: {e}"))?;
            let base = default_policy(kind);
            let policy = RetryPolicy {
                max_attempts: over.max_attempts.unwrap_or(base.max_attempts).max(1),
                base: over
                    .backoff_base_ms
                    .map(std::time::Duration::from_millis)
                    .unwrap_or(base.base),
                cap: over
                    .backoff_cap_ms
                    .map(std::time::Duration::from_millis)
                    .unwrap_or(base.cap),
            };
            policies.set(kind, policy);
        }
        if let Some(ms) = file.deferral.delay_ms {
            policies.defer_delay = std::time::Duration::from_millis(ms);
        }
        if let Some(secs) = file.deferral.max_age_secs {
            policies.defer_max_age = std::time::Duration::from_secs(secs);
        }
        let mut schedule: Vec<(JobKind, String)> = schedule::DEFAULTS
            .iter()
            .map(|(k, s)| (*k, (*s).to_owned()))
            .collect();
        for (name, expr) in &file.schedule {
            let kind: JobKind = name
                .parse()
                .map_err(|e: String| anyhow::anyhow!("[schedule] {name}: {e}"))?;
            schedule.retain(|(k, _)| *k != kind);
            if expr != "off" {
                schedule.push((kind, expr.clone()));
            }
        }
        schedule::entries(&schedule)?;
        let admin_token = match &file.admin {
            Some(admin) => Some(secret(&admin.token_env, "admin API bearer token")?),
            None => None,
        };
        Ok(Config {
            limits,
            schedule,
            admin_token,
            admin_token_env: file.admin.as_ref().map(|a| a.token_env.clone()),
            erp_key: secret(&file.erp.api_key_env, "ERP API key")?,
            erp_secret: secret(&file.erp.api_secret_env, "ERP API secret")?,
            sms_key: secret(&file.sms.api_key_env, "SMS API key")?,
            sms_provider,
            sms_account_sid: match &file.sms.account_sid_env {
                Some(var) => Some(secret(var, "SMS (Twilio) Account SID")?),
                None => None,
            },
            http: file.http,
            stores,
            courier_accounts,
            erp: file.erp,
            sms: file.sms,
            policies,
        })
    }

    /// The store with `code`, if active.
    pub fn store(&self, code: &str) -> Option<&Store> {
        self.stores.iter().find(|s| s.code == code)
    }

    /// One line per store: `ALPH -> courier account alph` (never a secret).
    pub fn mapping_lines(&self) -> Vec<String> {
        self.stores
            .iter()
            .map(|s| {
                format!(
                    "{} -> courier account '{}' ({}), shop {}, ERP '{}', SMS '{}' ({})",
                    s.code,
                    s.courier_account,
                    s.courier_provider,
                    s.shop_url,
                    self.erp.name,
                    self.sms.name,
                    self.sms_provider
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        [erp]
        base_url = "http://erp"
        api_key_env = "ERP_KEY"
        api_secret_env = "ERP_SECRET"
        [sms]
        base_url = "http://sms"
        api_key_env = "SMS_KEY"
        sender = "SHOP"
        [[stores]]
        code = "ALPH"
        shop_url = "http://shop/alph"
        shop_key_env = "K"
        shop_secret_env = "S"
        [[stores]]
        code = "BETA"
        shop_url = "http://shop/beta"
        shop_key_env = "K"
        shop_secret_env = "S"
    "#;

    fn env(_: &str) -> Option<String> {
        Some("secret-value".into())
    }

    fn load(accounts: &str) -> anyhow::Result<Config> {
        let file: FileConfig = toml::from_str(&format!("{BASE}\n{accounts}")).unwrap();
        Config::resolve(file, &env)
    }

    #[test]
    fn each_store_maps_to_its_own_account() {
        let config = load(
            r#"
            [[courier_accounts]]
            name = "alph"
            base_url = "http://c"
            key_env = "A"
            stores = ["ALPH"]
            [[courier_accounts]]
            name = "primary"
            base_url = "http://c"
            key_env = "P"
            stores = ["BETA"]
        "#,
        )
        .unwrap();
        assert_eq!(config.store("ALPH").unwrap().courier_account, "alph");
        assert_eq!(config.store("BETA").unwrap().courier_account, "primary");
        let lines = config.mapping_lines().join("\n");
        assert!(lines.contains("ALPH -> courier account 'alph'"));
        assert!(!lines.contains("secret-value"));
    }

    /// BASE with `extra` appended to store BETA (the last `[[stores]]`).
    fn load_with_beta_rules(extra: &str) -> anyhow::Result<Config> {
        let file: FileConfig = toml::from_str(&format!(
            "{BASE}\n{extra}\n[[courier_accounts]]\nname = \"p\"\nbase_url = \"http://c\"\nkey_env = \"P\"\nstores = [\"ALPH\", \"BETA\"]"
        ))?;
        Config::resolve(file, &env)
    }

    #[test]
    fn payment_and_write_back_rules_load_with_defaults() {
        let config = load_with_beta_rules(
            "[stores.payments]\naccounts = { kashier_card = \"Kashier - SIM\" }\ncod_on_delivery = \"Cash - SIM\"\n[stores.write_back]\ndelivered = \"completed\"\nreturned = \"refunded\"",
        )
        .unwrap();
        let beta = config.store("BETA").unwrap();
        assert_eq!(
            beta.payments.account_for("kashier_card", false),
            Some("Kashier - SIM")
        );
        assert_eq!(beta.payments.account_for("kashier_wallet", true), None);
        assert_eq!(beta.payments.account_for("cod", false), None);
        assert_eq!(beta.payments.account_for("cod", true), Some("Cash - SIM"));
        assert_eq!(beta.write_back.target("delivered"), Some("completed"));
        assert_eq!(beta.write_back.target("returned"), Some("refunded"));
        let alph = config.store("ALPH").unwrap();
        assert_eq!(alph.payments, StorePayments::default());
        assert_eq!(alph.write_back.target("returned"), None);
        assert_eq!(alph.write_back.target("delivered"), None);
        assert_eq!(alph.write_back.target("in_transit"), None);
    }

    #[test]
    fn bad_payment_and_write_back_rules_are_named() {
        for (extra, expected) in [
            (
                "[stores.payments]\naccounts = { paypal = \"X\" }",
                "store BETA: payments.accounts.paypal: unknown payment method",
            ),
            (
                "[stores.payments]\naccounts = { cod = \"X\" }",
                "store BETA: payments.accounts.cod: cash on delivery",
            ),
            (
                "[stores.payments]\naccounts = { instapay = \" \" }",
                "store BETA: payments.accounts.instapay is empty",
            ),
            (
                "[stores.write_back]\ndelivered = \"shipped\"",
                "store BETA: write_back.delivered = \"shipped\" is not a shop status",
            ),
        ] {
            let err = load_with_beta_rules(extra).unwrap_err().to_string();
            assert!(err.contains(expected), "{extra}: {err}");
        }
    }

    #[test]
    fn an_unmapped_active_store_is_refused_by_name() {
        let err = load(
            r#"
            [[courier_accounts]]
            name = "primary"
            base_url = "http://c"
            key_env = "P"
            stores = ["BETA"]
        "#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("store ALPH is active but no courier account lists it"),
            "{err}"
        );
    }

    #[test]
    fn a_store_on_two_accounts_is_refused_by_name() {
        let err = load(
            r#"
            [[courier_accounts]]
            name = "alph"
            base_url = "http://c"
            key_env = "A"
            stores = ["ALPH", "BETA"]
            [[courier_accounts]]
            name = "primary"
            base_url = "http://c"
            key_env = "P"
            stores = ["BETA"]
        "#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("store BETA is listed by 2 courier accounts (alph, primary)"),
            "{err}"
        );
    }

    const YALIDINE_ACCOUNT: &str = r#"
            [[courier_accounts]]
            name = "yal"
            provider = "yalidine"
            base_url = "http://y/v1"
            key_env = "YAL_TOKEN"
            api_id_env = "YAL_ID"
            stores = ["BETA"]
    "#;

    #[test]
    fn a_yalidine_account_serves_its_store_beside_a_maystro_one() {
        let config = load(&format!(
            "{YALIDINE_ACCOUNT}\n[[courier_accounts]]\nname = \"alph\"\nbase_url = \"http://c\"\nkey_env = \"A\"\nstores = [\"ALPH\"]\n[limits.courier.yal]\nrate_per_s = 5\n"
        ))
        .unwrap();
        let beta = config.store("BETA").unwrap();
        assert_eq!(
            (beta.courier_account.as_str(), beta.courier_provider),
            ("yal", Provider::Yalidine)
        );
        assert_eq!(
            config.store("ALPH").unwrap().courier_provider,
            Provider::Maystro
        );
        let yal = config
            .courier_accounts
            .iter()
            .find(|a| a.name == "yal")
            .unwrap();
        assert!(yal.api_id.is_some());
        // Its limits are kept under its own provider, which its requests use.
        assert!(config
            .limits
            .contains_key(&(Provider::Yalidine, "yal".to_owned())));
        assert!(!config
            .limits
            .contains_key(&(Provider::Maystro, "yal".to_owned())));
        let lines = config.mapping_lines().join("\n");
        assert!(
            lines.contains("BETA -> courier account 'yal' (yalidine)"),
            "{lines}"
        );
        assert!(
            lines.contains("ALPH -> courier account 'alph' (maystro)"),
            "{lines}"
        );
    }

    #[test]
    fn a_store_on_no_courier_or_on_a_maystro_and_a_yalidine_account_is_refused() {
        let err = load(YALIDINE_ACCOUNT).unwrap_err().to_string();
        assert!(
            err.contains("store ALPH is active but no courier account lists it"),
            "{err}"
        );
        let err = load(&format!(
            "{YALIDINE_ACCOUNT}\n[[courier_accounts]]\nname = \"primary\"\nbase_url = \"http://c\"\nkey_env = \"P\"\nstores = [\"ALPH\", \"BETA\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("store BETA is listed by 2 courier accounts (yal, primary)"),
            "{err}"
        );
    }

    #[test]
    fn courier_provider_settings_that_cannot_work_are_named() {
        for (account, expected) in [
            (
                "provider = \"ecotrack\"\n",
                "courier account c uses provider 'ecotrack'; supported: maystro, yalidine, datamart",
            ),
            (
                "provider = \"yalidine\"\n",
                "courier account c (yalidine) needs api_id_env",
            ),
            (
                "api_id_env = \"ID\"\n",
                "courier account c (maystro) has api_id_env, which only yalidine accounts use",
            ),
        ] {
            let err = load(&format!(
                "[[courier_accounts]]\nname = \"c\"\nbase_url = \"http://c\"\nkey_env = \"K\"\nstores = [\"ALPH\", \"BETA\"]\n{account}"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains(expected), "{account}: {err}");
        }
    }

    fn load_sms(sms: &str) -> anyhow::Result<Config> {
        let base = BASE.replace(
            "[sms]\n        base_url = \"http://sms\"",
            &format!("[sms]\n{sms}\n        base_url = \"http://sms\""),
        );
        let file: FileConfig = toml::from_str(&format!(
            "{base}\n[[courier_accounts]]\nname = \"p\"\nbase_url = \"http://c\"\nkey_env = \"P\"\nstores = [\"ALPH\", \"BETA\"]\n[limits.sms.mnotify]\nrate_per_s = 1\n"
        ))?;
        Config::resolve(file, &env)
    }

    #[test]
    fn a_twilio_sms_account_loads_and_bad_sms_settings_are_named() {
        let config = load_sms(
            "provider = \"twilio\"\naccount_sid_env = \"TW_SID\"\nstatus_callback_url = \"https://o.example/webhooks/sms/twilio\"",
        )
        .unwrap();
        assert_eq!(config.sms_provider, Provider::Twilio);
        assert!(config.sms_account_sid.is_some());
        assert!(config
            .limits
            .contains_key(&(Provider::Twilio, "mnotify".to_owned())));
        assert!(config.mapping_lines()[0].ends_with("SMS 'mnotify' (twilio)"));
        assert_eq!(load_sms("").unwrap().sms_provider, Provider::Mnotify);
        for (sms, expected) in [
            (
                "provider = \"twilio\"",
                "sms account mnotify (twilio) needs account_sid_env",
            ),
            (
                "provider = \"nexmo\"",
                "uses provider 'nexmo'; supported: mnotify, twilio",
            ),
            (
                "country_code = \"+213\"",
                "[sms] country_code is for provider twilio",
            ),
        ] {
            let err = load_sms(sms).unwrap_err().to_string();
            assert!(err.contains(expected), "{sms}: {err}");
        }
    }

    #[test]
    fn a_missing_secret_names_its_variable_not_a_value() {
        let file: FileConfig = toml::from_str(&format!(
            "{BASE}\n[[courier_accounts]]\nname = \"p\"\nbase_url = \"http://c\"\nkey_env = \"MISSING_KEY\"\nstores = [\"ALPH\", \"BETA\"]"
        ))
        .unwrap();
        let err = Config::resolve(file, &|name| {
            (name != "MISSING_KEY").then(|| "x".to_owned())
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("MISSING_KEY") && err.contains("courier account p key"),
            "{err}"
        );
    }

    #[test]
    fn job_overrides_apply_and_unknown_kinds_are_named() {
        let mut text = format!(
            "{BASE}\n[[courier_accounts]]\nname = \"p\"\nbase_url = \"http://c\"\nkey_env = \"P\"\nstores = [\"ALPH\", \"BETA\"]\n"
        );
        text.push_str("[jobs.send_sms]\nmax_attempts = 2\nbackoff_base_ms = 10\n");
        let config = Config::resolve(toml::from_str(&text).unwrap(), &env).unwrap();
        let policy = config.policies.get(JobKind::SendSms);
        assert_eq!(policy.max_attempts, 2);
        assert_eq!(policy.base, std::time::Duration::from_millis(10));
        text.push_str("[jobs.send_fax]\nmax_attempts = 2\n");
        let err = Config::resolve(toml::from_str(&text).unwrap(), &env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown job kind 'send_fax'"), "{err}");
    }

    #[test]
    fn limits_are_read_per_account_and_bad_ones_are_named() {
        let base = format!(
            "{BASE}\n[[courier_accounts]]\nname = \"p\"\nbase_url = \"http://c\"\nkey_env = \"P\"\nstores = [\"ALPH\", \"BETA\"]\n"
        );
        let text = format!(
            "{base}[limits.courier.p]\nrate_per_s = 50\nburst = 10\nmax_in_flight = 20\n[limits.shop.ALPH]\nrate_per_s = 2\n"
        );
        let config = Config::resolve(toml::from_str(&text).unwrap(), &env).unwrap();
        let p = config.limits[&(Provider::Maystro, "p".to_owned())];
        assert_eq!(
            (p.rate_per_s, p.burst, p.max_in_flight),
            (Some(50.0), 10, Some(20))
        );
        assert_eq!(
            config.limits[&(Provider::Woocommerce, "ALPH".to_owned())].burst,
            2
        );
        for (table, expected) in [
            (
                "[limits.courier.p]\nrate_per_s = 0\n",
                "[limits.courier.p]: rate_per_s must be a number above 0 (got 0)",
            ),
            (
                "[limits.courier.p]\nrate_per_s = -3\n",
                "[limits.courier.p]: rate_per_s must be a number above 0 (got -3)",
            ),
            (
                "[limits.courier.p]\nrate_per_s = 5\nburst = -1\n",
                "[limits.courier.p]: burst must be at least 1 (got -1)",
            ),
            (
                "[limits.courier.nope]\nrate_per_s = 5\n",
                "[limits.courier.nope]: no courier account named 'nope' (known: p)",
            ),
            (
                "[limits.shop.GAMA]\nrate_per_s = 5\n",
                "[limits.shop.GAMA]: no shop account named 'GAMA'",
            ),
            (
                "[limits.bank.x]\nrate_per_s = 5\n",
                "[limits.bank]: unknown role 'bank'",
            ),
        ] {
            let err = Config::resolve(toml::from_str(&format!("{base}{table}")).unwrap(), &env)
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{err}");
        }
    }
}
