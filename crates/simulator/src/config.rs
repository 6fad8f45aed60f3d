//! What a simulator is started with: the stores and their credentials, the
//! other services' credentials, and how the seeded data behaves. Validated
//! before anything is seeded or bound.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::bail;
use serde::{Deserialize, Serialize};

/// Default share of shop orders that exist at the courier.
pub const DEFAULT_COURIER_COVERAGE: f64 = 0.9;
/// Default courier page size, as Maystro's list endpoint.
pub const DEFAULT_COURIER_PAGE_SIZE: usize = 20;

/// The courier API a simulated account answers on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CourierApi {
    /// Maystro Delivery, under `/maystro/api` (the default).
    #[default]
    Maystro,
    /// Yalidine, under `/yalidine/v1`: the same orders and timelines, shown
    /// as parcels with Yalidine's labels.
    Yalidine,
    /// Datamart, under `/datamart/api/developer`: the same orders, by
    /// reference, with Datamart's statuses.
    Datamart,
}

/// One simulated shop and its credentials at the shop and the courier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimStore {
    /// Store code, e.g. `ALPH`; prefixes order references (`ALPH-1001`).
    pub code: String,
    /// Courier account the store's orders live under; stores may share one.
    pub courier_account: String,
    /// The courier account's API token (Maystro's `Authorization: Token
    /// <key>`, Yalidine's `X-API-TOKEN`; Yalidine's `X-API-ID` is the
    /// account name).
    pub courier_key: String,
    /// Which courier the account is with (default Maystro).
    #[serde(default)]
    pub courier_api: CourierApi,
    /// WooCommerce consumer key (Basic auth user).
    pub shop_consumer_key: String,
    /// WooCommerce consumer secret (Basic auth password).
    pub shop_consumer_secret: String,
    /// Number of seeded orders.
    pub orders: usize,
}

/// Everything the simulator needs to seed its data and check credentials.
///
/// JSON form: field names as below, except `status_step` which is
/// `status_step_ms` (integer milliseconds); missing fields take the defaults of
/// [`SimConfig::default`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Seed of every random choice in the data (not of random faults' timing).
    pub seed: u64,
    /// The shops, each with its courier account.
    pub stores: Vec<SimStore>,
    /// ERPNext API key (`Authorization: token key:secret`).
    pub erp_api_key: String,
    /// ERPNext API secret.
    pub erp_api_secret: String,
    /// mNotify API key (`?key=`).
    pub sms_api_key: String,
    /// Courier statuses advance one step per period; zero freezes them.
    #[serde(rename = "status_step_ms", with = "millis")]
    pub status_step: Duration,
    /// Share of shop orders that exist at the courier.
    pub courier_coverage: f64,
    /// Courier list page size.
    pub courier_page_size: usize,
    /// Share of seeded orders paid with a method the ERP does not know (`paypal`).
    pub unknown_payment_rate: f64,
    /// When true, a second invoice with the same `po_no` gets 409; false lets
    /// duplicates in so tests can count them.
    pub erp_unique_po_no: bool,
    /// Yalidine's per-account quotas.
    pub yalidine_quota: YalidineQuota,
    /// The Twilio Account SID (empty: no Twilio account; every call is 401).
    pub twilio_account_sid: String,
    /// The Twilio auth token.
    pub twilio_auth_token: String,
}

/// Requests one Yalidine account may make per window, as Yalidine meters
/// them: what is left is sent in `x-{second,minute,hour,day}-quota-left`,
/// and a request over any of them gets 429 with `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct YalidineQuota {
    /// Per wall-clock second.
    pub per_second: u64,
    /// Per wall-clock minute.
    pub per_minute: u64,
    /// Per wall-clock hour.
    pub per_hour: u64,
    /// Per UTC day.
    pub per_day: u64,
}

impl Default for YalidineQuota {
    /// Yalidine's published limits: 5/s, 50/min, 1000/h, 10000/day.
    fn default() -> YalidineQuota {
        YalidineQuota {
            per_second: 5,
            per_minute: 50,
            per_hour: 1000,
            per_day: 10_000,
        }
    }
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            seed: 0,
            stores: Vec::new(),
            erp_api_key: String::new(),
            erp_api_secret: String::new(),
            sms_api_key: String::new(),
            status_step: Duration::ZERO,
            courier_coverage: DEFAULT_COURIER_COVERAGE,
            courier_page_size: DEFAULT_COURIER_PAGE_SIZE,
            unknown_payment_rate: 0.0,
            erp_unique_po_no: false,
            yalidine_quota: YalidineQuota::default(),
            twilio_account_sid: String::new(),
            twilio_auth_token: String::new(),
        }
    }
}

impl SimConfig {
    /// The demo setup of the field report: six stores, five sharing the courier
    /// account `primary` and one key, ALPH on its own account `alph`;
    /// `total_orders` split evenly (the first stores take the remainder);
    /// fixed, obviously fake secrets; frozen statuses.
    pub fn demo(total_orders: usize) -> SimConfig {
        let codes = ["ALPH", "BETA", "GAMA", "DELT", "EPSI", "ZETA"];
        let per = total_orders / codes.len();
        let extra = total_orders % codes.len();
        let stores = codes
            .iter()
            .enumerate()
            .map(|(i, code)| {
                let lower = code.to_lowercase();
                let (account, key) = if i == 0 {
                    ("alph", "demo-maystro-alph-token")
                } else {
                    ("primary", "demo-maystro-primary-token")
                };
                SimStore {
                    code: (*code).into(),
                    courier_account: account.into(),
                    courier_key: key.into(),
                    courier_api: CourierApi::Maystro,
                    shop_consumer_key: format!("ck_demo_{lower}"),
                    shop_consumer_secret: format!("cs_demo_{lower}"),
                    orders: per + usize::from(i < extra),
                }
            })
            .collect();
        SimConfig {
            seed: 42,
            stores,
            erp_api_key: "demo-erp-key".into(),
            erp_api_secret: "demo-erp-secret".into(),
            sms_api_key: "demo-mnotify-key".into(),
            ..SimConfig::default()
        }
    }

    /// Refuses configs the simulator cannot serve unambiguously.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        let mut codes = HashSet::new();
        let mut key_accounts: HashMap<&str, &str> = HashMap::new();
        for store in &self.stores {
            let code = &store.code;
            if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
                bail!("store code {code:?} must be non-empty ASCII letters and digits");
            }
            if !codes.insert(code.as_str()) {
                bail!("store {code} is configured twice");
            }
            let api_of_account = self
                .stores
                .iter()
                .find(|s| s.courier_account == store.courier_account)
                .map(|s| s.courier_api);
            if api_of_account != Some(store.courier_api) {
                bail!(
                    "store {code}: courier account {:?} is on two courier APIs",
                    store.courier_account
                );
            }
            if let Some(other) = key_accounts.insert(&store.courier_key, &store.courier_account) {
                if other != store.courier_account {
                    bail!(
                        "store {code}: its courier key already belongs to account {other:?}, not {:?}",
                        store.courier_account
                    );
                }
            }
        }
        if self.courier_page_size == 0 {
            bail!("courier_page_size must be at least 1");
        }
        Ok(())
    }
}

/// Durations as integer milliseconds in JSON, so admin calls stay readable.
pub(crate) mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}
