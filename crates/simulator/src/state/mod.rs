//! Seeded data of the simulated services, behind one lock: the shops' orders,
//! the courier's orders and timelines, the ERP's invoices and the SMS log.
//!
//! Everything random here comes from one `StdRng` seeded from `SimConfig::seed`, so
//! the same seed gives the same orders, phones, tracking numbers and timelines.
//! This module owns data only: no HTTP, no auth.

mod courier;
mod invoices;
mod seed;
mod shop;
mod sms;
mod time;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::Value;

pub(crate) use self::courier::{CourierBook, CourierOrder};
pub use self::invoices::ErpCounts;
pub(crate) use self::invoices::Invoices;
pub(crate) use self::shop::{ShopOrder, ShopStore};
pub(crate) use self::sms::SmsRecord;
pub(crate) use self::time::site_offset;

use self::time::now_secs;

/// All mutable data of the simulator, behind one lock.
#[derive(Debug)]
pub(crate) struct SimState {
    rng: StdRng,
    pub(crate) shops: BTreeMap<String, ShopStore>,
    pub(crate) courier: CourierBook,
    /// store code -> courier account
    store_accounts: HashMap<String, String>,
    pub(crate) invoices: Invoices,
    invoice_seq: u64,
    /// Status writes through the shop's REST API: (store, order id, status),
    /// in order, so tests can count write-backs.
    pub(crate) shop_status_writes: Vec<(String, i64, String)>,
    pub(crate) sms: Vec<SmsRecord>,
    pub(crate) sms_credit: i64,
    used_phones: HashSet<String>,
    used_display_ids: HashSet<u32>,
    next_courier_id: i64,
    next_line_item_id: i64,
}

impl SimState {
    /// Adds a live order to `store` (None if the store is unknown); with
    /// `at_courier` the courier order starts at status 4 and follows a seeded path.
    pub(crate) fn add_shop_order(
        &mut self,
        store: &str,
        method: &str,
        status: &str,
        at_courier: bool,
    ) -> Option<Value> {
        let id = self.shops.get(store)?.next_id;
        let now = now_secs();
        let order = self.new_shop_order(id, method, status, now);
        if at_courier {
            let path = self.seeded_path();
            let c = self.new_courier_order(store, &order, now, path, Instant::now());
            self.courier.push(c);
        }
        let json = order.to_json();
        let shop = self.shops.get_mut(store)?;
        shop.orders.insert(id, order);
        shop.next_id += 1;
        Some(json)
    }

    /// Pins a courier order at `status`; false if no order has this reference.
    pub(crate) fn pin_courier_status(
        &mut self,
        reference: &str,
        status: i64,
        step: Duration,
    ) -> bool {
        match self.courier.by_ref_mut(reference) {
            Some(c) => {
                c.pin(status, Instant::now(), step);
                true
            }
            None => false,
        }
    }

    /// Next ERPNext-style invoice name, e.g. `ACC-SINV-2026-00001`.
    pub(crate) fn next_invoice_name(&mut self) -> String {
        self.invoice_seq += 1;
        format!(
            "ACC-SINV-{}-{:05}",
            Utc::now().format("%Y"),
            self.invoice_seq
        )
    }

    /// A fresh id for a created remote object (SMS batch, message), from the
    /// seeded generator.
    pub(crate) fn random_id(&mut self) -> String {
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .simple()
            .to_string()
    }
}

#[cfg(test)]
pub(crate) use self::courier::ALL_STATUS_CODES;
