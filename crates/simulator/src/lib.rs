//! Simulator of the external services ordersync talks to: the Maystro and
//! Yalidine couriers, WooCommerce shops, ERPNext and the mNotify and Twilio
//! SMS gateways.
//!
//! It serves their real request and response shapes (see `shared/providers.md`)
//! over HTTP on loopback, so tests, the demo and benchmarks exercise the same
//! adapters and error classification as production, without reaching any
//! external service. Data is seeded from [`SimConfig::seed`]; faults (latency,
//! 5xx, 429, hangs, revoked keys) are injected per service through [`Knobs`] and
//! [`SimHandle::fail_next`], or over HTTP through the `/_sim/` admin routes
//! (listed in `src/admin.rs`).
//!
//! Layout, each module pointing only down the list:
//!
//! - `server`: [`start`]; binds, seeds, and puts each provider's routes behind
//!   the fault middleware, next to the admin routes;
//! - `admin`: [`SimHandle`] mirrored over HTTP for other processes;
//! - `courier`, `yalidine`, `datamart`, `shop`, `erp`, `sms`, `twilio`: one provider each: routes,
//!   auth, error bodies (including the body of an injected failure);
//! - `faults`: the middleware in front of every provider route; knows no
//!   provider;
//! - `sim`: the state every handler shares (config, data, fault plan, revoked
//!   keys, shutdown);
//! - `state`: the seeded data (shop orders, courier timelines, invoices, SMS);
//! - `fault_plan`: [`Knobs`], `fail_next` queues, request counters, and the
//!   decision for each request;
//! - `config`, `service`, `http`, `lock`: the vocabulary ([`SimConfig`],
//!   [`Service`]) and plumbing everything else uses;
//! - `ordersync_config`: the ordersync config that points at a simulator.

#![allow(
    clippy::result_large_err,
    reason = "handlers bail out early with the provider's own error Response; boxing it buys nothing here"
)]

mod admin;
mod config;
mod courier;
mod datamart;
mod erp;
mod fault_plan;
mod faults;
mod http;
mod lock;
mod ordersync_config;
mod rates;
mod server;
mod service;
mod shop;
mod sim;
mod sms;
mod state;
mod twilio;
mod yalidine;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use self::config::{
    CourierApi, SimConfig, SimStore, YalidineQuota, DEFAULT_COURIER_COVERAGE,
    DEFAULT_COURIER_PAGE_SIZE,
};
pub use self::fault_plan::{Knobs, DEFAULT_HANG};
pub use self::ordersync_config::{
    mnotify_sms_section, ordersync_config, ordersync_config_with_store_rules, twilio_sms_section,
    STORE_RULES,
};
pub use self::server::start;
pub use self::service::Service;
pub use self::state::ErpCounts;

use self::sim::Sim;

/// How long [`SimHandle::shutdown`] waits for in-flight requests before
/// dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running simulator. Cheap to clone; all clones control the same server.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<Sim>,
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle")
            .field("base_url", &self.inner.base_url)
            .finish_non_exhaustive()
    }
}

impl SimHandle {
    /// `http://127.0.0.1:PORT` (the bound address; loopback when bound to any).
    pub fn base_url(&self) -> String {
        self.inner.base_url.clone()
    }

    /// Maystro API root, `{base}/maystro/api`.
    pub fn courier_url(&self) -> String {
        format!("{}/maystro/api", self.inner.base_url)
    }

    /// Yalidine API root, `{base}/yalidine/v1`.
    pub fn yalidine_url(&self) -> String {
        format!("{}/yalidine/v1", self.inner.base_url)
    }

    /// The Yalidine view of the courier order with this reference: its
    /// tracking number and current label.
    pub fn yalidine_parcel_by_ref(&self, external_order_id: &str) -> Option<(String, String)> {
        let st = self.inner.state();
        let order = st.courier.by_ref(external_order_id)?;
        let (code, _) = order.status_at(std::time::Instant::now(), self.inner.config.status_step);
        Some((yalidine::tracking_of(order), yalidine::label_of(code)))
    }

    /// Datamart API root, `{base}/datamart/api/developer`.
    pub fn datamart_url(&self) -> String {
        format!("{}/datamart/api/developer", self.inner.base_url)
    }

    /// The Datamart view of the order with this reference: its order id
    /// and current status.
    pub fn datamart_order_by_ref(&self, reference: &str) -> Option<(String, String)> {
        let st = self.inner.state();
        let order = st.courier.by_ref(reference)?;
        let (code, _) = order.status_at(std::time::Instant::now(), self.inner.config.status_step);
        Some((
            datamart::order_id_of(order),
            datamart::status_of(code).to_owned(),
        ))
    }

    /// Twilio API host, `{base}/twilio`; messages are under
    /// `/2010-04-01/Accounts/{sid}/Messages.json`.
    pub fn twilio_url(&self) -> String {
        format!("{}/twilio", self.inner.base_url)
    }

    /// From now on Twilio records each text, then waits `delay` before
    /// answering (a reply lost to the client's timeout after the send).
    pub fn set_twilio_reply_delay(&self, delay: Duration) {
        self.inner.set_twilio_reply_delay(delay);
    }

    /// Twilio's status callback for message `sid` reaching `status`, to be
    /// posted to `url`: the form fields and the `X-Twilio-Signature` Twilio
    /// would send with them.
    pub fn twilio_status_callback(
        &self,
        url: &str,
        sid: &str,
        status: &str,
    ) -> (Vec<(String, String)>, String) {
        twilio::status_callback(&self.inner, url, sid, status)
    }

    /// Every text accepted, by either gateway, oldest first: (recipient,
    /// gateway message id, text).
    pub fn sms_log(&self) -> Vec<(String, String, String)> {
        self.inner
            .state()
            .sms
            .iter()
            .map(|m| (m.recipient.clone(), m.message_id.clone(), m.message.clone()))
            .collect()
    }

    /// One store's WooCommerce site root, `{base}/shop/{store}`; the REST API is
    /// under `/wp-json/wc/v3`.
    pub fn shop_url(&self, store: &str) -> String {
        format!("{}/shop/{store}", self.inner.base_url)
    }

    /// ERPNext site root, `{base}/erp`.
    pub fn erp_url(&self) -> String {
        format!("{}/erp", self.inner.base_url)
    }

    /// mNotify API host, `{base}/mnotify`; quick SMS is `/api/sms/quick`.
    pub fn sms_url(&self) -> String {
        format!("{}/mnotify", self.inner.base_url)
    }

    /// The config the simulator was started with.
    pub fn config(&self) -> &SimConfig {
        &self.inner.config
    }

    /// Replaces the random fault knobs of `service`.
    pub fn set_knobs(&self, service: Service, knobs: Knobs) {
        self.inner.faults.set_knobs(service, knobs);
    }

    /// The random fault knobs now in force for `service`.
    pub fn knobs(&self, service: Service) -> Knobs {
        self.inner.faults.knobs(service)
    }

    /// The next `count` requests to `service` get `status` (queued after any
    /// earlier `fail_next`), before and instead of random faults, in that
    /// service's error shape: ERP 417 is TimestampMismatchError, 429 carries
    /// `Retry-After` (`retry_after_secs`, else the knobs' value). A status
    /// outside 100..=999 counts as 500.
    pub fn fail_next(
        &self,
        service: Service,
        count: u32,
        status: u16,
        retry_after_secs: Option<u64>,
    ) {
        self.inner
            .faults
            .fail_next(service, count, status, retry_after_secs);
    }

    /// Makes `key` (any service's credential, or a shop consumer secret) answer
    /// that service's 401.
    pub fn revoke_key(&self, key: &str) {
        self.inner.revoke(key);
    }

    /// Undoes [`SimHandle::revoke_key`].
    pub fn restore_key(&self, key: &str) {
        self.inner.restore(key);
    }

    /// Invoices created with this `po_no` (duplicates included).
    pub fn invoice_count(&self, po_no: &str) -> usize {
        self.inner.state().invoices.with_po(po_no).count()
    }

    /// Every invoice document, in creation order.
    pub fn invoices(&self) -> Vec<Value> {
        self.inner.state().invoices.all().to_vec()
    }

    /// Every Payment Entry document, in creation order.
    pub fn payment_entries(&self) -> Vec<Value> {
        self.inner.state().invoices.payments().to_vec()
    }

    /// The ERP's lifecycle counts (submitted, cancelled, paid, stock moves)
    /// and any rule broken (an invoice submitted, cancelled or paid twice,
    /// two live invoices for one order).
    pub fn erp_counts(&self) -> ErpCounts {
        self.inner.state().invoices.counts()
    }

    /// Texts accepted for `phone` (as written in the request), oldest first.
    pub fn sms_messages_to(&self, phone: &str) -> Vec<String> {
        self.inner
            .state()
            .sms
            .iter()
            .filter(|m| m.recipient == phone)
            .map(|m| m.message.clone())
            .collect()
    }

    /// Accepted texts, one per recipient.
    pub fn sms_total(&self) -> usize {
        self.inner.state().sms.len()
    }

    /// The most requests one credential made to `service` within one
    /// wall-clock second, faulted ones included.
    pub fn peak_requests_per_second(&self, service: Service) -> u64 {
        self.inner.rates.peak(service)
    }

    /// Requests that reached `service`'s routes, faulted ones included.
    pub fn request_count(&self, service: Service) -> u64 {
        self.inner.faults.requests(service)
    }

    /// Pins the courier order with this reference at `status` (any code, known
    /// or not), stopping its time advance; false if no such order.
    pub fn set_courier_status(&self, external_order_id: &str, status: i64) -> bool {
        self.inner.state().pin_courier_status(
            external_order_id,
            status,
            self.inner.config.status_step,
        )
    }

    /// Sets a shop order's status and moves its `date_modified` forward (at
    /// least one second); false if the store, the order or the status is
    /// missing.
    pub fn set_shop_order_status(&self, store: &str, order_id: i64, status: &str) -> bool {
        self.inner
            .set_shop_order_status(store, order_id, status)
            .is_some()
    }

    /// Adds an order dated now and returns its WooCommerce JSON (`Null` if the
    /// store is unknown). With `at_courier` the courier also gets it, at
    /// status 4, advancing with `status_step`.
    pub fn add_shop_order(
        &self,
        store: &str,
        payment_method: &str,
        status: &str,
        at_courier: bool,
    ) -> Value {
        self.inner
            .state()
            .add_shop_order(store, payment_method, status, at_courier)
            .unwrap_or(Value::Null)
    }

    /// Sets (or adds) a `meta_data` entry of a shop order, as a delivery-slot
    /// plugin would; false if the store or the order is missing.
    pub fn set_shop_order_meta(&self, store: &str, order_id: i64, key: &str, value: Value) -> bool {
        let mut st = self.inner.state();
        match st
            .shops
            .get_mut(store)
            .and_then(|s| s.orders.get_mut(&order_id))
        {
            Some(order) => {
                order.upsert_meta(key, value);
                true
            }
            None => false,
        }
    }

    /// Status writes made through the shop's REST API (`PUT /orders/{id}`
    /// with a `status`) to `store`'s orders: (order id, status), in order.
    pub fn shop_status_writes(&self, store: &str) -> Vec<(i64, String)> {
        self.inner
            .state()
            .shop_status_writes
            .iter()
            .filter(|(s, _, _)| s == store)
            .map(|(_, id, status)| (*id, status.clone()))
            .collect()
    }

    /// A store's orders as WooCommerce JSON, by ascending id (empty if unknown).
    pub fn shop_orders(&self, store: &str) -> Vec<Value> {
        self.inner.shop_orders(store).unwrap_or_default()
    }

    /// The courier's JSON for the order with this reference, status as of now.
    pub fn courier_order_by_ref(&self, external_order_id: &str) -> Option<Value> {
        self.inner.courier_order_json(external_order_id)
    }

    /// Stops serving: open requests (hangs included) end at once, and the server
    /// is dropped after a short grace period. Other clones become inert.
    pub async fn shutdown(self) {
        if let Some(mut server) = self.inner.begin_shutdown() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
            {
                server.abort();
            }
        }
        tracing::info!(base_url = %self.inner.base_url, "simulator stopped");
    }
}

#[cfg(test)]
mod tests;
