//! Everything drawn from the seeded generator: the initial data set of a
//! config, and the details of each order added later (customer, items, phone,
//! tracking number, courier timeline).
//!
//! Timestamps are offsets before the moment the simulator starts, so "last N
//! days" windows behave as they would against a live shop.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::courier::{
    CourierOrder, ABORTED, DELIVERED, NOT_RECEIVED, OUT_OF_STOCK, PENDING_FIRST, POSTPONED,
    RETURNED, STUCK,
};
use super::shop::{Customer, LineItem, Place, ShopOrder, ShopStore};
use super::sms::SMS_STARTING_CREDIT;
use super::time::now_secs;
use super::{CourierBook, Invoices, SimState};
use crate::config::SimConfig;

/// Timelines with their weight (out of 100) among seeded courier orders.
const PATHS: [(&[i64], u32); 8] = [
    (DELIVERED, 40),
    (POSTPONED, 8),
    (ABORTED, 8),
    (OUT_OF_STOCK, 5),
    (RETURNED, 10),
    (NOT_RECEIVED, 5),
    (PENDING_FIRST, 12),
    (STUCK, 12),
];

/// One (timeline, position) per status code, planted so small data sets still
/// show all 18 codes.
const COVERING: [(&[i64], usize); 18] = [
    (DELIVERED, 0),
    (DELIVERED, 1),
    (DELIVERED, 2),
    (DELIVERED, 3),
    (DELIVERED, 4),
    (RETURNED, 10),
    (PENDING_FIRST, 1),
    (OUT_OF_STOCK, 2),
    (DELIVERED, 5),
    (DELIVERED, 6),
    (DELIVERED, 7),
    (RETURNED, 8),
    (DELIVERED, 8),
    (POSTPONED, 8),
    (ABORTED, 3),
    (RETURNED, 9),
    (RETURNED, 11),
    (NOT_RECEIVED, 8),
];

/// Seeded orders are spread over this many days before start.
const HISTORY_DAYS: i64 = 30;

const FIRST_NAMES: [&str; 20] = [
    "Amine", "Yacine", "Sara", "Lina", "Karim", "Nour", "Meriem", "Walid", "Sofiane", "Imane",
    "Rania", "Mehdi", "Ines", "Bilal", "Khadidja", "Youcef", "Amel", "Riad", "Samira", "Hamza",
];
const LAST_NAMES: [&str; 16] = [
    "Benali",
    "Haddad",
    "Boudiaf",
    "Mansouri",
    "Belkacem",
    "Cherif",
    "Saadi",
    "Zeroual",
    "Khelifi",
    "Rahmani",
    "Bouzid",
    "Meziane",
    "Ait Ahmed",
    "Larbi",
    "Ferhat",
    "Hamidi",
];
const MOBILE_PREFIXES: [&str; 10] = [
    "055", "056", "066", "069", "077", "079", "054", "065", "067", "078",
];

const PLACES: [Place; 12] = [
    place(16, "Alger", 1601, "Alger Centre", "12 rue Didouche Mourad"),
    place(16, "Alger", 1628, "Bab Ezzouar", "Cité 5 juillet, bt 14"),
    place(31, "Oran", 3101, "Oran", "8 boulevard de la Soummam"),
    place(
        25,
        "Constantine",
        2501,
        "Constantine",
        "3 rue Larbi Ben M'hidi",
    ),
    place(9, "Blida", 901, "Blida", "27 avenue Kritli Mokhtar"),
    place(19, "Sétif", 1901, "Sétif", "Cité 1014 logements"),
    place(23, "Annaba", 2301, "Annaba", "5 cours de la Révolution"),
    place(
        15,
        "Tizi Ouzou",
        1501,
        "Tizi Ouzou",
        "Nouvelle ville, bloc B",
    ),
    place(6, "Béjaïa", 601, "Béjaïa", "Rue de la Liberté"),
    place(13, "Tlemcen", 1301, "Tlemcen", "Boulevard Imama"),
    place(30, "Ouargla", 3001, "Ouargla", "Cité Ennasr"),
    place(5, "Batna", 501, "Batna", "Allées Ben Boulaid"),
];

const fn place(
    wilaya: i64,
    wilaya_name: &'static str,
    commune: i64,
    commune_name: &'static str,
    street: &'static str,
) -> Place {
    Place {
        wilaya,
        wilaya_name,
        commune,
        commune_name,
        street,
    }
}

/// (product id, sku, name, price in DZD)
const PRODUCTS: [(i64, &str, &str, i64); 8] = [
    (201, "TSH-001", "T-shirt coton", 1800),
    (202, "SNK-204", "Baskets running", 6500),
    (203, "BAG-310", "Sac à dos", 3200),
    (204, "WAT-115", "Montre classique", 4900),
    (205, "PER-050", "Parfum 50ml", 3900),
    (206, "HDP-777", "Casque Bluetooth", 5400),
    (207, "CAS-012", "Coque téléphone", 900),
    (208, "JKT-420", "Veste imperméable", 8200),
];

impl SimState {
    /// Builds the seeded data set of `config`, dated before `started`.
    pub(crate) fn seed(config: &SimConfig, started: Instant) -> SimState {
        let start_utc = now_secs();
        let mut st = SimState {
            rng: StdRng::seed_from_u64(config.seed),
            shops: BTreeMap::new(),
            courier: CourierBook::default(),
            store_accounts: HashMap::new(),
            invoices: Invoices::default(),
            invoice_seq: 0,
            shop_status_writes: Vec::new(),
            sms: Vec::new(),
            sms_credit: SMS_STARTING_CREDIT,
            used_phones: HashSet::new(),
            used_display_ids: HashSet::new(),
            next_courier_id: 104_000,
            next_line_item_id: 1,
        };
        let latest = start_utc - TimeDelta::minutes(1);
        let mut pending_courier = Vec::new();
        for store in &config.stores {
            st.store_accounts
                .insert(store.code.clone(), store.courier_account.clone());
            let mut created: Vec<i64> = (0..store.orders)
                .map(|_| st.rng.random_range(120..HISTORY_DAYS * 86_400))
                .collect();
            created.sort_unstable_by(|a, b| b.cmp(a));
            let mut shop = ShopStore {
                orders: BTreeMap::new(),
                next_id: 1001,
            };
            for secs_ago in created {
                let created = start_utc - TimeDelta::seconds(secs_ago);
                let status = st.seeded_status();
                let method = st.seeded_payment_method(config.unknown_payment_rate);
                let mut order = st.new_shop_order(shop.next_id, &method, &status, created);
                let age = (latest - created).num_seconds().max(0);
                let edit = if matches!(status.as_str(), "completed" | "cancelled") {
                    st.rng.random_range(0..=age.min(7 * 86_400))
                } else {
                    st.rng.random_range(0..=age.min(3_600))
                };
                order.modified = created + TimeDelta::seconds(edit);
                if status == "completed" {
                    order.completed = Some(order.modified);
                    order.paid = Some(order.paid.unwrap_or(order.modified));
                }
                if st.rng.random::<f64>() < config.courier_coverage {
                    let lag = st.rng.random_range(300..7_200);
                    let at = (created + TimeDelta::seconds(lag)).min(latest);
                    pending_courier.push((store.code.clone(), order.clone(), at));
                }
                shop.orders.insert(order.id, order);
                shop.next_id += 1;
            }
            st.shops.insert(store.code.clone(), shop);
        }
        // Courier ids follow creation time across all accounts, with gaps left by
        // other merchants' orders.
        pending_courier.sort_by_key(|(_, o, at)| (*at, o.id));
        let mut courier_orders: Vec<CourierOrder> = pending_courier
            .into_iter()
            .map(|(store, order, at)| {
                let path = st.seeded_path();
                let offset = st.rng.random_range(0..path.len());
                let mut c = st.new_courier_order(&store, &order, at, path, started);
                c.anchor_utc = start_utc;
                c.step_gap = TimeDelta::minutes(st.rng.random_range(60..720));
                c.set_seeded_position(offset, start_utc);
                c
            })
            .collect();
        let n = courier_orders.len();
        if n >= COVERING.len() {
            for (k, (path, offset)) in COVERING.iter().enumerate() {
                let c = &mut courier_orders[k * n / COVERING.len()];
                c.path = path;
                c.set_seeded_position(*offset, start_utc);
            }
        }
        for c in courier_orders {
            st.courier.push(c);
        }
        st
    }

    fn seeded_status(&mut self) -> String {
        let roll = self.rng.random_range(0..100);
        match roll {
            0..60 => "processing",
            60..85 => "completed",
            85..90 => "pending",
            90..95 => "on-hold",
            _ => "cancelled",
        }
        .to_string()
    }

    fn seeded_payment_method(&mut self, unknown_rate: f64) -> String {
        if self.rng.random::<f64>() < unknown_rate {
            return "paypal".into();
        }
        match self.rng.random_range(0..100) {
            0..50 => "cod",
            50..70 => "instapay",
            70..85 => "kashier_card",
            _ => "kashier_wallet",
        }
        .to_string()
    }

    /// A timeline, drawn by the weights of `PATHS`.
    pub(super) fn seeded_path(&mut self) -> &'static [i64] {
        let mut roll = self.rng.random_range(0..100);
        for (path, weight) in PATHS {
            if roll < weight {
                return path;
            }
            roll -= weight;
        }
        DELIVERED
    }

    fn unique_phone(&mut self) -> String {
        loop {
            let prefix = MOBILE_PREFIXES[self.rng.random_range(0..MOBILE_PREFIXES.len())];
            let phone = format!("{prefix}{:07}", self.rng.random_range(0..10_000_000));
            if self.used_phones.insert(phone.clone()) {
                return phone;
            }
        }
    }

    fn unique_display_id(&mut self) -> String {
        loop {
            let id = self.rng.random_range(1_000_000..100_000_000u32);
            if self.used_display_ids.insert(id) {
                return id.to_string();
            }
        }
    }

    /// A shop order with a drawn customer, place and line items.
    pub(super) fn new_shop_order(
        &mut self,
        id: i64,
        method: &str,
        status: &str,
        created: DateTime<Utc>,
    ) -> ShopOrder {
        let first = FIRST_NAMES[self.rng.random_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[self.rng.random_range(0..LAST_NAMES.len())];
        let phone = self.unique_phone();
        let email = format!(
            "{}.{}{}@example.dz",
            first.to_lowercase(),
            last.to_lowercase().replace(' ', ""),
            &phone[phone.len() - 4..]
        );
        let place = PLACES[self.rng.random_range(0..PLACES.len())];
        let mut items = Vec::new();
        for _ in 0..self.rng.random_range(1..=3) {
            let (product_id, sku, name, price) = PRODUCTS[self.rng.random_range(0..PRODUCTS.len())];
            items.push(LineItem {
                id: self.next_line_item_id,
                product_id,
                name,
                sku,
                quantity: self.rng.random_range(1..=2),
                price,
            });
            self.next_line_item_id += 1;
        }
        let key: String = (0..13)
            .map(|_| char::from(self.rng.sample(rand::distr::Alphanumeric)))
            .collect();
        let paid =
            (method != "cod" && matches!(status, "processing" | "completed")).then_some(created);
        ShopOrder {
            id,
            status: status.to_string(),
            payment_method: method.to_string(),
            order_key: format!("wc_order_{key}"),
            customer: Customer {
                first_name: first.into(),
                last_name: last.into(),
                phone,
                email,
                place,
            },
            items,
            created,
            modified: created,
            paid,
            completed: None,
            meta_data: Vec::new(),
            next_meta_id: 0,
        }
    }

    /// The courier's copy of `order`, at the start of `path`, advancing from
    /// `anchor`.
    pub(super) fn new_courier_order(
        &mut self,
        store: &str,
        order: &ShopOrder,
        at: DateTime<Utc>,
        path: &'static [i64],
        anchor: Instant,
    ) -> CourierOrder {
        self.next_courier_id += self.rng.random_range(1..=3);
        let mut bytes = [0u8; 16];
        self.rng.fill(&mut bytes);
        let product_name = order
            .items
            .iter()
            .map(|i| {
                if i.quantity > 1 {
                    format!("{} x{}", i.name, i.quantity)
                } else {
                    i.name.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        CourierOrder {
            id: self.next_courier_id,
            instance_uuid: uuid::Builder::from_random_bytes(bytes).into_uuid(),
            display_id: self.unique_display_id(),
            external_order_id: format!("{store}-{}", order.id),
            account: self.store_accounts.get(store).cloned().unwrap_or_default(),
            path,
            offset: 0,
            anchor,
            anchor_utc: at,
            reached_offset_at: at,
            step_gap: TimeDelta::hours(1),
            created_at: at,
            pinned: None,
            customer_name: format!("{} {}", order.customer.first_name, order.customer.last_name),
            customer_phone: order.customer.phone.clone(),
            product_name,
            product_price: order.total(),
            place: order.customer.place,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::state::ALL_STATUS_CODES;

    #[test]
    fn demo_seed_shows_all_eighteen_status_codes() {
        let config = SimConfig::demo(600);
        let st = SimState::seed(&config, Instant::now());
        let now = Instant::now();
        let seen: HashSet<i64> = st
            .courier
            .all()
            .iter()
            .map(|c| c.current(now, Duration::ZERO).0)
            .collect();
        for code in ALL_STATUS_CODES {
            assert!(seen.contains(&code), "status {code} missing from seed");
        }
        // Coverage near the configured 0.9.
        let ratio = st.courier.all().len() as f64 / 600.0;
        assert!((0.8..=0.97).contains(&ratio), "coverage {ratio}");
    }

    #[test]
    fn same_seed_gives_same_data() {
        let config = SimConfig::demo(120);
        let a = SimState::seed(&config, Instant::now());
        let b = SimState::seed(&config, Instant::now());
        let key = |st: &SimState| {
            st.courier
                .all()
                .iter()
                .map(|c| {
                    (
                        c.id,
                        c.display_id.clone(),
                        c.external_order_id.clone(),
                        c.path,
                        c.offset,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(key(&a), key(&b));
        let phones = |st: &SimState| {
            st.shops["ALPH"]
                .orders
                .values()
                .map(|o| (o.customer.phone.clone(), o.status.clone(), o.total()))
                .collect::<Vec<_>>()
        };
        assert_eq!(phones(&a), phones(&b));
        let mut other = config.clone();
        other.seed += 1;
        let c = SimState::seed(&other, Instant::now());
        assert_ne!(phones(&a), phones(&c));
    }

    #[test]
    fn phones_and_tracking_numbers_are_unique() {
        let st = SimState::seed(&SimConfig::demo(900), Instant::now());
        let phones: HashSet<_> = st
            .shops
            .values()
            .flat_map(|s| s.orders.values().map(|o| o.customer.phone.clone()))
            .collect();
        assert_eq!(phones.len(), 900);
        let tracking: HashSet<_> = st
            .courier
            .all()
            .iter()
            .map(|c| c.display_id.clone())
            .collect();
        assert_eq!(tracking.len(), st.courier.all().len());
        assert!(st.courier.all().windows(2).all(|w| w[0].id < w[1].id));
    }

    #[test]
    fn timeline_advances_one_step_per_period_and_stops_at_the_end() {
        let st = SimState::seed(&SimConfig::demo(60), Instant::now());
        let c = st
            .courier
            .all()
            .iter()
            .find(|c| c.offset + 2 < c.path.len())
            .unwrap()
            .clone();
        let step = Duration::from_secs(10);
        let t0 = c.anchor;
        assert_eq!(c.current(t0, step).0, c.path[c.offset]);
        assert_eq!(c.current(t0 + step * 2, step).0, c.path[c.offset + 2]);
        let end = c.current(t0 + step * 100, step);
        assert_eq!(end.0, *c.path.last().unwrap());
        assert!(
            end.1 > c.current(t0, step).1,
            "last_update moves with the status"
        );
    }
}
