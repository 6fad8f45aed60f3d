//! The shared state of one running simulator, as every handler sees it: the
//! config, the seeded data behind one lock, the fault plan, revoked keys and
//! the shutdown signal.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{CourierApi, SimConfig};
use crate::fault_plan::FaultPlan;
use crate::lock::lock;
use crate::state::SimState;

/// Shared state of one running simulator.
pub(crate) struct Sim {
    /// The config it was started with.
    pub(crate) config: SimConfig,
    /// `http://IP:PORT` of the bound address.
    pub(crate) base_url: String,
    /// Fault knobs, queues and request counters per service.
    pub(crate) faults: FaultPlan,
    /// Requests per credential per second, per service.
    pub(crate) rates: crate::rates::RateCounter,
    /// Yalidine's metering per account.
    pub(crate) quotas: crate::rates::QuotaBook,
    /// How long Twilio waits, after recording a text, before answering.
    twilio_reply_delay: Mutex<Duration>,
    state: Mutex<SimState>,
    revoked: Mutex<HashSet<String>>,
    /// courier key -> account
    courier_accounts: HashMap<String, String>,
    /// courier account -> the API it answers on
    courier_apis: HashMap<String, CourierApi>,
    shutdown: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Sim {
    /// Seeds the data of `config`, dated before `started`; nothing served yet.
    pub(crate) fn new(config: SimConfig, base_url: String, started: Instant) -> Sim {
        let state = SimState::seed(&config, started);
        let courier_accounts = config
            .stores
            .iter()
            .map(|s| (s.courier_key.clone(), s.courier_account.clone()))
            .collect();
        let courier_apis = config
            .stores
            .iter()
            .map(|s| (s.courier_account.clone(), s.courier_api))
            .collect();
        let (shutdown, _) = watch::channel(false);
        Sim {
            base_url,
            faults: FaultPlan::new(config.seed),
            rates: crate::rates::RateCounter::default(),
            quotas: crate::rates::QuotaBook::default(),
            twilio_reply_delay: Mutex::new(Duration::ZERO),
            config,
            state: Mutex::new(state),
            revoked: Mutex::new(HashSet::new()),
            courier_accounts,
            courier_apis,
            shutdown,
            server: Mutex::new(None),
        }
    }

    /// The seeded data, locked; hold the guard briefly.
    pub(crate) fn state(&self) -> MutexGuard<'_, SimState> {
        lock(&self.state)
    }

    pub(crate) fn is_revoked(&self, key: &str) -> bool {
        lock(&self.revoked).contains(key)
    }

    pub(crate) fn revoke(&self, key: &str) {
        lock(&self.revoked).insert(key.to_string());
    }

    pub(crate) fn restore(&self, key: &str) {
        lock(&self.revoked).remove(key);
    }

    /// The courier account a courier API key belongs to, if that account
    /// answers on `api` (a Yalidine token is no Maystro key, and back).
    pub(crate) fn courier_account(&self, key: &str, api: CourierApi) -> Option<&str> {
        self.courier_accounts
            .get(key)
            .filter(|account| self.courier_apis.get(*account) == Some(&api))
            .map(String::as_str)
    }

    /// How long Twilio waits, after recording a text, before answering.
    pub(crate) fn twilio_reply_delay(&self) -> Duration {
        *lock(&self.twilio_reply_delay)
    }

    /// Sets [`Sim::twilio_reply_delay`].
    pub(crate) fn set_twilio_reply_delay(&self, delay: Duration) {
        *lock(&self.twilio_reply_delay) = delay;
    }

    /// Keeps the serving task, so shutdown can wait for it.
    pub(crate) fn set_server(&self, server: JoinHandle<()>) {
        *lock(&self.server) = Some(server);
    }

    /// Signals shutdown (hangs and latency end at once) and hands back the
    /// serving task, unless an earlier call took it.
    pub(crate) fn begin_shutdown(&self) -> Option<JoinHandle<()>> {
        self.shutdown.send_replace(true);
        lock(&self.server).take()
    }

    /// Resolves once shutdown starts; hangs and latency give way to it.
    pub(crate) async fn shutting_down(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|stopping| *stopping).await;
    }

    /// Sleeps, unless the simulator is shutting down.
    pub(crate) async fn pause(&self, d: Duration) {
        if d.is_zero() {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(d) => {}
            () = self.shutting_down() => {}
        }
    }

    /// The courier's JSON for the order with this reference, status as of now.
    pub(crate) fn courier_order_json(&self, reference: &str) -> Option<Value> {
        let st = self.state();
        st.courier
            .by_ref(reference)
            .map(|c| c.to_json(Instant::now(), self.config.status_step))
    }

    /// A store's orders as WooCommerce JSON; None if the store is unknown.
    pub(crate) fn shop_orders(&self, store: &str) -> Option<Vec<Value>> {
        let st = self.state();
        st.shops
            .get(store)
            .map(|s| s.orders.values().map(|o| o.to_json()).collect())
    }

    /// Sets a shop order's status; None if the store, the order or the status
    /// is missing.
    pub(crate) fn set_shop_order_status(
        &self,
        store: &str,
        id: i64,
        status: &str,
    ) -> Option<Value> {
        if status.is_empty() {
            return None;
        }
        let mut st = self.state();
        let order = st.shops.get_mut(store)?.orders.get_mut(&id)?;
        order.set_status(status);
        Some(order.to_json())
    }
}
