//! Simulator of the four external services ordersync talks to: the Maystro
//! courier, WooCommerce shops, ERPNext and the mNotify SMS gateway.
//!
//! It serves their real request and response shapes (see `shared/providers.md`)
//! over HTTP on loopback, so tests, the demo and benchmarks exercise the same
//! adapters and error classification as production, without reaching any
//! external service. Data is seeded from [`SimConfig::seed`]; faults (latency,
//! 5xx, 429, hangs, revoked keys) are injected per service through [`Knobs`] and
//! [`SimHandle::fail_next`], or over HTTP through the `/_sim/` admin routes.
//!
//! Layout: `state` owns the seeded data and courier timelines; `courier`, `shop`,
//! `erp` and `sms` each own one provider's routes, auth and error bodies;
//! `faults` is the middleware in front of every provider route; `admin` mirrors
//! [`SimHandle`] over HTTP for other processes.
//!
//! Admin routes (never subject to faults, never counted):
//!
//! | route | body / query | answer |
//! |---|---|---|
//! | `GET /_sim/stats` | | `{"requests":{"courier":n,"shop":n,"erp":n,"sms":n},"invoices":n,"sms":n}` |
//! | `GET /_sim/config` | | the [`SimConfig`] JSON |
//! | `GET /_sim/invoices` | `?po_no=X` optional | array of invoice docs |
//! | `GET /_sim/sms` | `?phone=X` optional | array of `{recipient,sender,message,message_id,sent_at}` |
//! | `GET`/`POST /_sim/knobs/{service}` | [`Knobs`] JSON (`latency_ms`, `hang_ms`) | the knobs now in force |
//! | `POST /_sim/fail_next/{service}` | `{"count":1,"status":503,"retry_after_secs":null}` | `204` |
//! | `POST /_sim/revoke`, `POST /_sim/restore` | `{"key":"..."}` | `204` |
//! | `POST /_sim/courier/status` | `{"external_order_id","status"}` | the courier order, or `404` |
//! | `GET /_sim/courier/orders/{reference}` | | the courier order, or `404` |
//! | `GET`/`POST /_sim/shop/{store}/orders` | `{"payment_method","status","at_courier"}` | orders / the new order |
//! | `POST /_sim/shop/{store}/orders/{id}/status` | `{"status"}` | the order, or `404` |
//!
//! Admin errors are `{"error": "..."}` with status 400 or 404.

#![allow(
    clippy::result_large_err,
    reason = "handlers bail out early with the provider's own error Response; boxing it buys nothing here"
)]

mod admin;
mod courier;
mod erp;
mod faults;
mod ordersync_config;
mod shop;
mod sms;
mod state;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::http::{header, HeaderMap};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use self::ordersync_config::ordersync_config;

use self::faults::Faults;
use self::state::SimState;

/// How long [`SimHandle::shutdown`] waits for in-flight requests before
/// dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Default length of an injected hang: longer than any sane client timeout.
pub const DEFAULT_HANG: Duration = Duration::from_secs(30);
/// Default share of shop orders that exist at the courier.
pub const DEFAULT_COURIER_COVERAGE: f64 = 0.9;
/// Default courier page size, as Maystro's list endpoint.
pub const DEFAULT_COURIER_PAGE_SIZE: usize = 20;

/// One of the simulated external services; faults and counters are per service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Maystro Delivery, under `/maystro/api`.
    Courier,
    /// WooCommerce REST v3, under `/shop/{store}/wp-json/wc/v3`.
    Shop,
    /// ERPNext / Frappe, under `/erp`.
    Erp,
    /// mNotify BMS v2, under `/mnotify`.
    Sms,
}

impl Service {
    /// Every service, in a fixed order.
    pub const ALL: [Service; 4] = [Service::Courier, Service::Shop, Service::Erp, Service::Sms];

    /// The lowercase name used in JSON and admin routes.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Courier => "courier",
            Service::Shop => "shop",
            Service::Erp => "erp",
            Service::Sms => "sms",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Service {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Service> {
        Service::ALL
            .into_iter()
            .find(|svc| svc.as_str() == s)
            .with_context(|| format!("unknown service {s:?}: expected courier, shop, erp or sms"))
    }
}

/// One simulated shop and its credentials at the shop and the courier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimStore {
    /// Store code, e.g. `ALPH`; prefixes order references (`ALPH-1001`).
    pub code: String,
    /// Courier account the store's orders live under; stores may share one.
    pub courier_account: String,
    /// The courier account's API token (`Authorization: Token <key>`).
    pub courier_key: String,
    /// WooCommerce consumer key (Basic auth user).
    pub shop_consumer_key: String,
    /// WooCommerce consumer secret (Basic auth password).
    pub shop_consumer_secret: String,
    /// Number of seeded orders.
    pub orders: usize,
}

/// Random fault injection for one service. `Default` injects nothing.
///
/// JSON form (all fields optional, unknown fields rejected so typos surface):
/// `{"latency_ms":0,"error_rate":0.0,"rate_limit_rate":0.0,"retry_after_secs":0,
/// "timeout_rate":0.0,"hang_ms":30000}`. One uniform draw per request decides:
/// below `error_rate` a 5xx, then up to `+rate_limit_rate` a 429, then up to
/// `+timeout_rate` a hang.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Added before every answer, faulted or not.
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Share of requests answered 503 or 500 (half each).
    pub error_rate: f64,
    /// Share of requests answered 429 with `Retry-After`.
    pub rate_limit_rate: f64,
    /// `Retry-After` seconds on injected 429s (0: retry at once).
    pub retry_after_secs: u64,
    /// Share of requests that hang for `hang` before answering normally.
    pub timeout_rate: f64,
    /// How long a hang lasts; longer than the client's timeout, so it sees one.
    #[serde(rename = "hang_ms", with = "millis")]
    pub hang: Duration,
}

impl Default for Knobs {
    fn default() -> Knobs {
        Knobs {
            latency: Duration::ZERO,
            error_rate: 0.0,
            rate_limit_rate: 0.0,
            retry_after_secs: 0,
            timeout_rate: 0.0,
            hang: DEFAULT_HANG,
        }
    }
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
    fn validate(&self) -> anyhow::Result<()> {
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
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Shared state of one running simulator.
struct Sim {
    config: SimConfig,
    base_url: String,
    state: Mutex<SimState>,
    faults: Faults,
    revoked: Mutex<HashSet<String>>,
    /// courier key -> account
    courier_accounts: HashMap<String, String>,
    shutdown: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Sim {
    fn state(&self) -> MutexGuard<'_, SimState> {
        lock(&self.state)
    }

    fn is_revoked(&self, key: &str) -> bool {
        lock(&self.revoked).contains(key)
    }

    /// Resolves once shutdown starts; hangs and latency give way to it.
    async fn shutting_down(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// Sleeps, unless the simulator is shutting down.
    async fn pause(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.shutting_down() => {}
        }
    }

    fn courier_order_json(&self, reference: &str) -> Option<Value> {
        let st = self.state();
        st.courier
            .by_ref(reference)
            .map(|c| c.to_json(Instant::now(), self.config.status_step))
    }

    fn shop_orders(&self, store: &str) -> Option<Vec<Value>> {
        let st = self.state();
        st.shops
            .get(store)
            .map(|s| s.orders.values().map(|o| o.to_json()).collect())
    }

    fn set_shop_order_status(&self, store: &str, id: i64, status: &str) -> Option<Value> {
        if status.is_empty() {
            return None;
        }
        let mut st = self.state();
        let order = st.shops.get_mut(store)?.orders.get_mut(&id)?;
        order.set_status(status);
        Some(order.to_json())
    }
}

/// `http://host[:port]` as the client addressed us (Host header), so absolute
/// links work behind port mappings; the bound address otherwise.
fn origin(sim: &Sim, headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map_or_else(|| sim.base_url.clone(), |h| format!("http://{h}"))
}

/// Decoded query pairs, in request order.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// First value of `key` in decoded query pairs.
fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `url` with the query `pairs`, `key` replaced by `value` (or removed when
/// `None`), keeping the other parameters in order.
fn url_with_param(url: &str, pairs: &[(String, String)], key: &str, value: Option<&str>) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    let mut placed = false;
    for (k, v) in pairs {
        if k == key {
            if let (Some(value), false) = (value, placed) {
                out.append_pair(k, value);
            }
            placed = true;
        } else {
            out.append_pair(k, v);
        }
    }
    if let (Some(value), false) = (value, placed) {
        out.append_pair(key, value);
    }
    let query = out.finish();
    if query.is_empty() {
        url.to_string()
    } else {
        format!("{url}?{query}")
    }
}

/// A poisoned lock only means a handler panicked; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

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

/// Seeds the data of `config` and serves the four services on `addr` (port 0
/// picks a free port) until [`SimHandle::shutdown`].
///
/// # Errors
/// The config is inconsistent (duplicate store code, one courier key on two
/// accounts, page size 0) or `addr` cannot be bound.
pub async fn start(config: SimConfig, addr: SocketAddr) -> anyhow::Result<SimHandle> {
    config.validate().context("invalid simulator config")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the simulator to {addr}"))?;
    let local = listener.local_addr()?;
    let host = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let started = Instant::now();
    let state = SimState::seed(&config, started);
    let courier_accounts = config
        .stores
        .iter()
        .map(|s| (s.courier_key.clone(), s.courier_account.clone()))
        .collect();
    let (shutdown, _) = watch::channel(false);
    let sim = Arc::new(Sim {
        base_url: format!("http://{}", SocketAddr::new(host, local.port())),
        faults: Faults::new(config.seed),
        config,
        state: Mutex::new(state),
        revoked: Mutex::new(HashSet::new()),
        courier_accounts,
        shutdown,
        server: Mutex::new(None),
    });
    let app = router(&sim);
    let stopping = Arc::clone(&sim);
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopping.shutting_down().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "simulator server stopped");
        }
    });
    *lock(&sim.server) = Some(server);
    tracing::info!(base_url = %sim.base_url, stores = sim.config.stores.len(), "simulator listening");
    Ok(SimHandle { inner: sim })
}

fn router(sim: &Arc<Sim>) -> Router {
    Router::new()
        .merge(courier::routes(sim))
        .merge(shop::routes(sim))
        .merge(erp::routes(sim))
        .merge(sms::routes(sim))
        .merge(admin::routes(sim))
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
        lock(&self.inner.revoked).insert(key.to_string());
    }

    /// Undoes [`SimHandle::revoke_key`].
    pub fn restore_key(&self, key: &str) {
        lock(&self.inner.revoked).remove(key);
    }

    /// Invoices created with this `po_no` (duplicates included).
    pub fn invoice_count(&self, po_no: &str) -> usize {
        self.inner.state().invoices.with_po(po_no).count()
    }

    /// Every invoice document, in creation order.
    pub fn invoices(&self) -> Vec<Value> {
        self.inner.state().invoices.all().to_vec()
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
        self.inner.shutdown.send_replace(true);
        let server = lock(&self.inner.server).take();
        if let Some(mut server) = server {
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
