//! One provider client per configured account, and the store -> account
//! mapping jobs go through. A job for a store uses that store's courier
//! credential and no other (domain.md section 1).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::domain::Provider;
use crate::providers::courier::CourierClient;
use crate::providers::datamart::DatamartClient;
use crate::providers::erpnext::ErpClient;
use crate::providers::maystro::MaystroClient;
use crate::providers::mnotify::MnotifyClient;
use crate::providers::sms::SmsClient;
use crate::providers::twilio::{TwilioClient, TwilioSettings};
use crate::providers::woocommerce::WooClient;
use crate::providers::yalidine::YalidineClient;
use crate::providers::{http_client, HttpSettings};

/// A job names a store (or account) this process has no client for: the
/// store was removed from the configuration, or never mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store {store} has no {role} configured")]
pub struct AccountError {
    /// The store asked for.
    pub store: String,
    /// What it lacks (`courier account`, `shop`).
    pub role: &'static str,
}

/// Every provider client, built once per process.
#[derive(Debug)]
pub struct Accounts {
    couriers: HashMap<String, Arc<CourierClient>>,
    courier_of_store: HashMap<String, Arc<CourierClient>>,
    shops: HashMap<String, Arc<WooClient>>,
    erp: Arc<ErpClient>,
    sms: Arc<SmsClient>,
    rules: HashMap<String, StoreRules>,
}

/// A store's rules for the invoice lifecycle after creation.
#[derive(Debug, Clone, Default)]
pub struct StoreRules {
    /// Which payments are recorded in the ERP.
    pub payments: crate::config::StorePayments,
    /// What the shop is told when the courier finishes.
    pub write_back: crate::config::StoreWriteBack,
}

impl Accounts {
    /// Build the clients for `config`.
    pub fn new(config: &Config) -> Self {
        let http = http_client(&HttpSettings {
            timeout: Duration::from_millis(config.http.timeout_ms),
            connect_timeout: Duration::from_millis(config.http.connect_timeout_ms),
        });
        let mut couriers = HashMap::new();
        let mut courier_of_store = HashMap::new();
        for account in &config.courier_accounts {
            let client = Arc::new(match (account.provider, &account.api_id) {
                (Provider::Yalidine, Some(api_id)) => CourierClient::Yalidine(YalidineClient::new(
                    &account.name,
                    &account.base_url,
                    api_id.clone(),
                    account.key.clone(),
                    http.clone(),
                )),
                (Provider::Datamart, _) => CourierClient::Datamart(DatamartClient::new(
                    &account.name,
                    &account.base_url,
                    account.key.clone(),
                    http.clone(),
                )),
                // `Config` admits only these providers (Yalidine with its id).
                _ => CourierClient::Maystro(MaystroClient::new(
                    &account.name,
                    &account.base_url,
                    account.key.clone(),
                    http.clone(),
                )),
            });
            for store in &account.stores {
                courier_of_store.insert(store.clone(), client.clone());
            }
            couriers.insert(account.name.clone(), client);
        }
        let shops = config
            .stores
            .iter()
            .map(|s| {
                let client = WooClient::new(
                    &s.code,
                    &s.shop_url,
                    s.shop_key.clone(),
                    s.shop_secret.clone(),
                    http.clone(),
                );
                (s.code.clone(), Arc::new(client))
            })
            .collect();
        let erp = Arc::new(ErpClient::new(
            &config.erp.name,
            &config.erp.base_url,
            config.erp_key.clone(),
            config.erp_secret.clone(),
            http.clone(),
        ));
        let sms = Arc::new(match (config.sms_provider, &config.sms_account_sid) {
            (Provider::Twilio, Some(sid)) => SmsClient::Twilio(TwilioClient::new(
                &config.sms.name,
                &config.sms.base_url,
                sid.clone(),
                config.sms_key.clone(),
                TwilioSettings {
                    from: config.sms.sender.clone(),
                    status_callback: config.sms.status_callback_url.clone(),
                    country_code: config.sms.country_code.clone(),
                },
                http,
            )),
            // `Config` admits only mNotify and Twilio (with its SID).
            _ => SmsClient::Mnotify(MnotifyClient::new(
                &config.sms.name,
                &config.sms.base_url,
                config.sms_key.clone(),
                &config.sms.sender,
                http,
            )),
        });
        let rules = config
            .stores
            .iter()
            .map(|s| {
                let rules = StoreRules {
                    payments: s.payments.clone(),
                    write_back: s.write_back.clone(),
                };
                (s.code.clone(), rules)
            })
            .collect();
        Self {
            couriers,
            courier_of_store,
            shops,
            erp,
            sms,
            rules,
        }
    }

    /// The courier client of `store`'s account.
    ///
    /// # Errors
    /// Permanent when the store is not configured (a job for a removed store).
    pub fn courier(&self, store: &str) -> Result<&CourierClient, AccountError> {
        self.courier_of_store
            .get(store)
            .map(Arc::as_ref)
            .ok_or_else(|| AccountError {
                store: store.to_owned(),
                role: "courier account",
            })
    }

    /// The lifecycle rules of `store` (payments, write-back).
    ///
    /// # Errors
    /// Permanent when the store is not configured.
    pub fn rules(&self, store: &str) -> Result<&StoreRules, AccountError> {
        self.rules.get(store).ok_or_else(|| AccountError {
            store: store.to_owned(),
            role: "store rules",
        })
    }

    /// The shop client of `store`.
    ///
    /// # Errors
    /// Permanent when the store is not configured.
    pub fn shop(&self, store: &str) -> Result<&WooClient, AccountError> {
        self.shops
            .get(store)
            .map(Arc::as_ref)
            .ok_or_else(|| AccountError {
                store: store.to_owned(),
                role: "shop",
            })
    }

    /// The ERP client.
    ///
    /// # Errors
    /// Never today; fallible so a store-specific ERP can be added.
    pub fn erp(&self) -> Result<&ErpClient, AccountError> {
        Ok(&self.erp)
    }

    /// The SMS client.
    ///
    /// # Errors
    /// Never today; fallible so per-store SMS accounts can be added.
    pub fn sms(&self) -> Result<&SmsClient, AccountError> {
        Ok(&self.sms)
    }

    /// Courier clients by account name.
    pub fn couriers(&self) -> impl Iterator<Item = (&String, &Arc<CourierClient>)> {
        self.couriers.iter()
    }

    /// Shop clients by store code.
    pub fn shops(&self) -> impl Iterator<Item = (&String, &Arc<WooClient>)> {
        self.shops.iter()
    }
}
