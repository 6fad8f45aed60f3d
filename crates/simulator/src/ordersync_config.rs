//! The ordersync configuration that points at a running simulator: every
//! store mapped to its courier account, shop, the ERP and the SMS gateway,
//! with the secrets as environment variables (the file only names them).

use std::collections::BTreeMap;

use crate::{CourierApi, SimHandle};

/// The ordersync config TOML for `sim`'s stores and the environment it
/// needs (secret variable -> value); `extra` is appended to the TOML
/// (policy overrides).
pub fn ordersync_config(sim: &SimHandle, extra: &str) -> (String, Vec<(String, String)>) {
    ordersync_config_with_store_rules(sim, extra, "")
}

/// [`ordersync_config`] with `store_rules` (TOML sub-tables such as
/// `[stores.payments]` and `[stores.write_back]`) added to every store.
/// [`STORE_RULES`] are the rules of the simulated company.
pub fn ordersync_config_with_store_rules(
    sim: &SimHandle,
    extra: &str,
    store_rules: &str,
) -> (String, Vec<(String, String)>) {
    let config = sim.config();
    let mut secrets = vec![
        ("SIM_ERP_KEY".to_owned(), config.erp_api_key.clone()),
        ("SIM_ERP_SECRET".to_owned(), config.erp_api_secret.clone()),
        ("SIM_SMS_KEY".to_owned(), config.sms_api_key.clone()),
    ];
    let mut toml = String::from(
        "# Generated for the simulator: every URL is on loopback.\n\n[http]\ntimeout_ms = 5000\n\n",
    );
    let mut accounts: BTreeMap<&str, (&str, CourierApi, Vec<&str>)> = BTreeMap::new();
    for store in &config.stores {
        accounts
            .entry(store.courier_account.as_str())
            .or_insert((store.courier_key.as_str(), store.courier_api, Vec::new()))
            .2
            .push(store.code.as_str());
    }
    for (name, (key, api, stores)) in &accounts {
        let var = format!("SIM_COURIER_{}_KEY", name.to_uppercase());
        secrets.push((var.clone(), (*key).to_owned()));
        let list: Vec<String> = stores.iter().map(|s| format!("\"{s}\"")).collect();
        // A Yalidine account's API id is its name (see `yalidine`).
        let (base_url, provider) = match api {
            CourierApi::Maystro => (sim.courier_url(), String::new()),
            CourierApi::Datamart => (sim.datamart_url(), "provider = \"datamart\"\n".to_owned()),
            CourierApi::Yalidine => {
                let id_var = format!("SIM_COURIER_{}_API_ID", name.to_uppercase());
                secrets.push((id_var.clone(), (*name).to_owned()));
                (
                    sim.yalidine_url(),
                    format!("provider = \"yalidine\"\napi_id_env = \"{id_var}\"\n"),
                )
            }
        };
        toml.push_str(&format!(
            "[[courier_accounts]]\nname = \"{name}\"\n{provider}base_url = \"{base_url}\"\nkey_env = \"{var}\"\nstores = [{}]\n\n",
            list.join(", ")
        ));
    }
    toml.push_str(&format!(
        "[erp]\nname = \"erpnext\"\nbase_url = \"{}\"\napi_key_env = \"SIM_ERP_KEY\"\napi_secret_env = \"SIM_ERP_SECRET\"\n\n",
        sim.erp_url()
    ));
    toml.push_str(&format!("{}\n", mnotify_sms_section(sim)));
    if !config.twilio_account_sid.is_empty() {
        secrets.push((
            "SIM_TWILIO_SID".to_owned(),
            config.twilio_account_sid.clone(),
        ));
        secrets.push((
            "SIM_TWILIO_TOKEN".to_owned(),
            config.twilio_auth_token.clone(),
        ));
    }
    for store in &config.stores {
        let key_var = format!("SIM_SHOP_{}_KEY", store.code);
        let secret_var = format!("SIM_SHOP_{}_SECRET", store.code);
        let webhook_var = format!("SIM_SHOP_{}_WEBHOOK_SECRET", store.code);
        secrets.push((key_var.clone(), store.shop_consumer_key.clone()));
        secrets.push((secret_var.clone(), store.shop_consumer_secret.clone()));
        secrets.push((
            webhook_var.clone(),
            format!("whsec_demo_{}", store.code.to_lowercase()),
        ));
        toml.push_str(&format!(
            "[[stores]]\ncode = \"{}\"\nshop_url = \"{}\"\nshop_key_env = \"{key_var}\"\nshop_secret_env = \"{secret_var}\"\nwebhook_secret_env = \"{webhook_var}\"\n\n",
            store.code,
            sim.shop_url(&store.code)
        ));
        if !store_rules.is_empty() {
            toml.push_str(store_rules);
            toml.push_str("\n\n");
        }
    }
    toml.push_str(extra);
    (toml, secrets)
}

/// The `[sms]` table [`ordersync_config`] writes: the simulated mNotify.
pub fn mnotify_sms_section(sim: &SimHandle) -> String {
    format!(
        "[sms]\nname = \"mnotify\"\nbase_url = \"{}\"\napi_key_env = \"SIM_SMS_KEY\"\nsender = \"ORDERSYNC\"\n",
        sim.sms_url()
    )
}

/// An `[sms]` table for the simulated Twilio account at `twilio_url`
/// ([`SimHandle::twilio_url`]; `twilio_account_sid` set, its secrets in
/// [`ordersync_config`]'s environment), texting
/// Algerian national numbers, with receipts posted to `status_callback_url`.
/// Swap it for [`mnotify_sms_section`] in the generated file.
pub fn twilio_sms_section(twilio_url: &str, status_callback_url: &str) -> String {
    format!(
        "[sms]\nname = \"twilio\"\nprovider = \"twilio\"\nbase_url = \"{twilio_url}\"\naccount_sid_env = \"SIM_TWILIO_SID\"\napi_key_env = \"SIM_TWILIO_TOKEN\"\nsender = \"+15005550006\"\ncountry_code = \"+213\"\nstatus_callback_url = \"{status_callback_url}\"\n"
    )
}

/// The simulated company's payment and write-back rules: Kashier card and
/// wallet into its Kashier account at once, cash on delivery into its cash
/// account on delivery; delivered orders marked completed, returned ones
/// cancelled.
pub const STORE_RULES: &str = "[stores.payments]\naccounts = { kashier_card = \"Kashier - SIM\", kashier_wallet = \"Kashier - SIM\" }\ncod_on_delivery = \"Cash - SIM\"\n[stores.write_back]\ndelivered = \"completed\"\nreturned = \"cancelled\"";
