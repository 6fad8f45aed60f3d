//! Maystro orders and their status timelines: each order walks a path of
//! status codes, one step per `status_step` after the simulator starts, unless
//! pinned.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use super::shop::Place;
use super::time::drf_time;

// The timelines a courier order can follow, as Maystro status codes, named by
// how they end; seeding picks among them.
pub(super) const DELIVERED: &[i64] = &[4, 5, 6, 8, 9, 15, 22, 31, 41];
pub(super) const POSTPONED: &[i64] = &[4, 5, 6, 8, 9, 15, 22, 31, 42, 31, 41];
pub(super) const ABORTED: &[i64] = &[4, 5, 6, 50];
pub(super) const OUT_OF_STOCK: &[i64] = &[4, 5, 12, 50];
pub(super) const RETURNED: &[i64] = &[4, 5, 6, 8, 9, 15, 22, 31, 32, 51, 10, 52];
pub(super) const NOT_RECEIVED: &[i64] = &[4, 5, 6, 8, 9, 15, 22, 31, 53];
pub(super) const PENDING_FIRST: &[i64] = &[4, 11, 5, 6, 8, 9, 15, 22, 31, 41];
pub(super) const STUCK: &[i64] = &[4, 5, 6, 8, 9];

/// One Maystro order and where it is on its timeline.
#[derive(Clone, Debug)]
pub(crate) struct CourierOrder {
    pub(super) id: i64,
    pub(super) instance_uuid: uuid::Uuid,
    pub(crate) display_id: String,
    pub(super) external_order_id: String,
    pub(crate) account: String,
    pub(super) path: &'static [i64],
    pub(super) offset: usize,
    /// Time advance counts from here.
    pub(super) anchor: Instant,
    /// Wall-clock time of `anchor`.
    pub(super) anchor_utc: DateTime<Utc>,
    /// When the order reached `path[offset]`.
    pub(super) reached_offset_at: DateTime<Utc>,
    /// Seeded spacing of the steps before `anchor`.
    pub(super) step_gap: TimeDelta,
    pub(super) created_at: DateTime<Utc>,
    pub(super) pinned: Option<(i64, DateTime<Utc>)>,
    pub(super) customer_name: String,
    pub(super) customer_phone: String,
    pub(super) product_name: String,
    pub(super) product_price: i64,
    pub(super) place: Place,
}

impl CourierOrder {
    /// Position on the path at `now`, before any pin.
    fn index(&self, now: Instant, step: Duration) -> usize {
        let advanced = if step.is_zero() {
            0
        } else {
            let steps = now.saturating_duration_since(self.anchor).as_nanos() / step.as_nanos();
            usize::try_from(steps).unwrap_or(usize::MAX)
        };
        self.offset
            .saturating_add(advanced)
            .min(self.path.len() - 1)
    }

    /// When the order reached path position `i`.
    fn reached_at(&self, i: usize, step: Duration) -> DateTime<Utc> {
        if i <= self.offset {
            let back = self.step_gap * i32::try_from(self.offset - i).unwrap_or(i32::MAX);
            (self.reached_offset_at - back).max(self.created_at)
        } else {
            let ahead = step
                .checked_mul(u32::try_from(i - self.offset).unwrap_or(u32::MAX))
                .and_then(|d| TimeDelta::from_std(d).ok())
                .unwrap_or(TimeDelta::zero());
            self.anchor_utc + ahead
        }
    }

    /// Places a seeded order at `offset`, reached before the simulator started.
    pub(super) fn set_seeded_position(&mut self, offset: usize, start_utc: DateTime<Utc>) {
        self.offset = offset;
        let reached = self.created_at + self.step_gap * i32::try_from(offset).unwrap_or(0);
        self.reached_offset_at = reached
            .min(start_utc - TimeDelta::seconds(30))
            .max(self.created_at);
    }

    /// Current status code and the time it last changed.
    pub(super) fn current(&self, now: Instant, step: Duration) -> (i64, DateTime<Utc>) {
        if let Some(pin) = self.pinned {
            return pin;
        }
        let i = self.index(now, step);
        (self.path[i], self.reached_at(i, step))
    }

    /// Freezes the order at `status`; time no longer moves it.
    pub(super) fn pin(&mut self, status: i64, now: Instant, step: Duration) {
        let (current, since) = self.current(now, step);
        let at = if current == status { since } else { Utc::now() };
        self.pinned = Some((status, at));
    }

    /// Status changes so far, oldest first.
    pub(crate) fn history(&self, now: Instant, step: Duration) -> Vec<Value> {
        let last = self.index(now, step);
        let mut out: Vec<Value> = (0..=last)
            .map(|i| json!({"status": self.path[i], "created_at": drf_time(self.reached_at(i, step)), "comment": ""}))
            .collect();
        if let Some((status, at)) = self.pinned {
            if self.path[last] != status {
                out.push(json!({"status": status, "created_at": drf_time(at), "comment": ""}));
            }
        }
        out
    }

    /// The shop's reference the order was created with.
    pub(crate) fn reference(&self) -> &str {
        &self.external_order_id
    }

    /// The customer's name and phone.
    pub(crate) fn customer(&self) -> (&str, &str) {
        (&self.customer_name, &self.customer_phone)
    }

    /// Current status code and when it was reached, for other couriers'
    /// views of the same timeline.
    pub(crate) fn status_at(&self, now: Instant, step: Duration) -> (i64, DateTime<Utc>) {
        self.current(now, step)
    }

    /// Every status reached so far with its time, oldest first.
    pub(crate) fn status_changes(&self, now: Instant, step: Duration) -> Vec<(i64, DateTime<Utc>)> {
        let last = self.index(now, step);
        let mut out: Vec<_> = (0..=last)
            .map(|i| (self.path[i], self.reached_at(i, step)))
            .collect();
        if let Some((status, at)) = self.pinned {
            if self.path[last] != status {
                out.push((status, at));
            }
        }
        out
    }

    /// The Maystro JSON of this order at `now`.
    pub(crate) fn to_json(&self, now: Instant, step: Duration) -> Value {
        let (status, last_update) = self.current(now, step);
        let at = |code: i64| (status == code).then(|| drf_time(last_update));
        json!({
            "id": self.id,
            "instance_uuid": self.instance_uuid,
            "display_id": self.display_id,
            "external_order_id": self.external_order_id,
            "status": status,
            "created_at": drf_time(self.created_at),
            "ordered_at": drf_time(self.created_at),
            "last_update": drf_time(last_update),
            "delivered_at": at(41),
            "postponed_at": at(42),
            "postponed_to": null,
            "aborted_at": at(50),
            "alerted_at": at(32),
            "alert_reason": null,
            "abort_reason": null,
            "customer_name": self.customer_name,
            "customer_phone": self.customer_phone,
            "destination_text": format!("{}, {}, {}", self.place.street, self.place.commune_name, self.place.wilaya_name),
            "product_name": self.product_name,
            "product_price": self.product_price,
            "commune": self.place.commune,
            "commune_name": self.place.commune_name,
            "wilaya": self.place.wilaya,
        })
    }
}

/// Maystro orders of all accounts, ordered by id.
#[derive(Debug, Default)]
pub(crate) struct CourierBook {
    orders: Vec<CourierOrder>,
    by_ref: HashMap<String, usize>,
    by_id: HashMap<i64, usize>,
    by_account: HashMap<String, Vec<usize>>,
}

impl CourierBook {
    /// Adds an order; ids must keep ascending.
    pub(super) fn push(&mut self, order: CourierOrder) {
        let i = self.orders.len();
        self.by_ref.insert(order.external_order_id.clone(), i);
        self.by_id.insert(order.id, i);
        self.by_account
            .entry(order.account.clone())
            .or_default()
            .push(i);
        self.orders.push(order);
    }

    /// Orders of one account, by ascending id.
    pub(crate) fn of_account<'a>(
        &'a self,
        account: &str,
    ) -> impl Iterator<Item = &'a CourierOrder> {
        self.by_account
            .get(account)
            .into_iter()
            .flatten()
            .map(|&i| &self.orders[i])
    }

    /// The order with this courier id, whatever the account.
    pub(crate) fn by_id(&self, id: i64) -> Option<&CourierOrder> {
        self.by_id.get(&id).map(|&i| &self.orders[i])
    }

    /// The order carrying this shop reference.
    pub(crate) fn by_ref(&self, reference: &str) -> Option<&CourierOrder> {
        self.by_ref.get(reference).map(|&i| &self.orders[i])
    }

    /// The order carrying this shop reference, to change it.
    pub(super) fn by_ref_mut(&mut self, reference: &str) -> Option<&mut CourierOrder> {
        self.by_ref.get(reference).map(|&i| &mut self.orders[i])
    }
}

/// Every Maystro status code the simulator can produce.
#[cfg(test)]
pub(crate) const ALL_STATUS_CODES: [i64; 18] = [
    4, 5, 6, 8, 9, 10, 11, 12, 15, 22, 31, 32, 41, 42, 50, 51, 52, 53,
];

#[cfg(test)]
impl CourierBook {
    /// All orders, by ascending id.
    pub(super) fn all(&self) -> &[CourierOrder] {
        &self.orders
    }
}
