//! WooCommerce orders: customers, line items, statuses and meta, and their
//! REST v3 JSON.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

use super::time::{now_secs, woo_gmt, woo_local};

/// A delivery place: wilaya and commune, with Maystro-style numeric ids.
#[derive(Clone, Copy, Debug)]
pub(super) struct Place {
    pub(super) wilaya: i64,
    pub(super) wilaya_name: &'static str,
    pub(super) commune: i64,
    pub(super) commune_name: &'static str,
    pub(super) street: &'static str,
}

/// Known payment gateways and the titles WooCommerce shows for them.
fn payment_method_title(method: &str) -> String {
    match method {
        "cod" => "Cash on delivery".into(),
        "instapay" => "InstaPay".into(),
        "kashier_card" => "Kashier Card".into(),
        "kashier_wallet" => "Kashier Wallet".into(),
        "paypal" => "PayPal".into(),
        other => other.into(),
    }
}

/// A WooCommerce customer as it appears in `billing`.
#[derive(Clone, Debug)]
pub(super) struct Customer {
    pub(super) first_name: String,
    pub(super) last_name: String,
    pub(super) phone: String,
    pub(super) email: String,
    pub(super) place: Place,
}

/// One WooCommerce line item.
#[derive(Clone, Debug)]
pub(super) struct LineItem {
    pub(super) id: i64,
    pub(super) product_id: i64,
    pub(super) name: &'static str,
    pub(super) sku: &'static str,
    pub(super) quantity: i64,
    pub(super) price: i64,
}

/// One WooCommerce order.
#[derive(Clone, Debug)]
pub(crate) struct ShopOrder {
    pub(crate) id: i64,
    pub(crate) status: String,
    pub(super) payment_method: String,
    pub(super) order_key: String,
    pub(super) customer: Customer,
    pub(super) items: Vec<LineItem>,
    pub(crate) created: DateTime<Utc>,
    pub(crate) modified: DateTime<Utc>,
    pub(super) paid: Option<DateTime<Utc>>,
    pub(super) completed: Option<DateTime<Utc>>,
    pub(super) meta_data: Vec<Value>,
    pub(super) next_meta_id: i64,
}

impl ShopOrder {
    /// Sum of the line items, in whole DZD.
    pub(super) fn total(&self) -> i64 {
        self.items.iter().map(|i| i.price * i.quantity).sum()
    }

    /// Sets the status and moves `date_modified` strictly forward, so a change is
    /// always visible to `modified_after` and to (id, date_modified) dedupe.
    pub(crate) fn set_status(&mut self, status: &str) {
        self.status = status.to_string();
        let now = self.touch();
        if matches!(status, "processing" | "completed")
            && self.payment_method != "cod"
            && self.paid.is_none()
        {
            self.paid = Some(now);
        }
        if status == "completed" {
            self.paid.get_or_insert(now);
            self.completed.get_or_insert(now);
        }
    }

    /// Bumps `date_modified` to now, at least one second past its old value.
    pub(crate) fn touch(&mut self) -> DateTime<Utc> {
        let next = now_secs().max(self.modified + TimeDelta::seconds(1));
        self.modified = next;
        next
    }

    /// Inserts or replaces a meta entry by key, as WooCommerce does on update.
    pub(crate) fn upsert_meta(&mut self, key: &str, value: Value) {
        if let Some(existing) = self
            .meta_data
            .iter_mut()
            .find(|m| m.get("key").and_then(Value::as_str) == Some(key))
        {
            existing["value"] = value;
            return;
        }
        self.next_meta_id += 1;
        self.meta_data
            .push(json!({"id": self.next_meta_id, "key": key, "value": value}));
    }

    /// True when the search term appears in the customer's name, email or phone.
    pub(crate) fn matches_search(&self, term: &str) -> bool {
        let term = term.to_lowercase();
        let c = &self.customer;
        [&c.first_name, &c.last_name, &c.email, &c.phone]
            .iter()
            .any(|f| f.to_lowercase().contains(&term))
    }

    /// The REST v3 JSON of this order.
    pub(crate) fn to_json(&self) -> Value {
        let c = &self.customer;
        let total = money(self.total());
        let address = json!({
            "first_name": c.first_name, "last_name": c.last_name, "company": "",
            "address_1": c.place.street, "address_2": "", "city": c.place.commune_name,
            "state": format!("DZ-{:02}", c.place.wilaya), "postcode": "", "country": "DZ",
        });
        let mut billing = address.clone();
        billing["email"] = json!(c.email);
        billing["phone"] = json!(c.phone);
        let mut shipping = address;
        shipping["phone"] = json!(c.phone);
        let opt_local = |t: Option<DateTime<Utc>>| t.map(woo_local);
        let opt_gmt = |t: Option<DateTime<Utc>>| t.map(woo_gmt);
        let line_items: Vec<Value> = self
            .items
            .iter()
            .map(|i| {
                json!({
                    "id": i.id,
                    "name": i.name,
                    "product_id": i.product_id,
                    "variation_id": 0,
                    "quantity": i.quantity,
                    "tax_class": "",
                    "subtotal": money(i.price * i.quantity),
                    "subtotal_tax": "0.00",
                    "total": money(i.price * i.quantity),
                    "total_tax": "0.00",
                    "taxes": [],
                    "meta_data": [],
                    "sku": i.sku,
                    "price": i.price,
                })
            })
            .collect();
        json!({
            "id": self.id,
            "parent_id": 0,
            "number": self.id.to_string(),
            "order_key": self.order_key,
            "created_via": "checkout",
            "version": "9.4.2",
            "status": self.status,
            "currency": "DZD",
            "date_created": woo_local(self.created),
            "date_created_gmt": woo_gmt(self.created),
            "date_modified": woo_local(self.modified),
            "date_modified_gmt": woo_gmt(self.modified),
            "discount_total": "0.00",
            "discount_tax": "0.00",
            "shipping_total": "0.00",
            "shipping_tax": "0.00",
            "cart_tax": "0.00",
            "total": total,
            "total_tax": "0.00",
            "prices_include_tax": false,
            "customer_id": 0,
            "customer_note": "",
            "billing": billing,
            "shipping": shipping,
            "payment_method": self.payment_method,
            "payment_method_title": payment_method_title(&self.payment_method),
            "transaction_id": "",
            "date_paid": opt_local(self.paid),
            "date_paid_gmt": opt_gmt(self.paid),
            "date_completed": opt_local(self.completed),
            "date_completed_gmt": opt_gmt(self.completed),
            "meta_data": self.meta_data,
            "line_items": line_items,
            "tax_lines": [],
            "shipping_lines": [],
            "fee_lines": [],
            "coupon_lines": [],
            "refunds": [],
        })
    }
}

fn money(dzd: i64) -> String {
    format!("{dzd}.00")
}

/// One store's WooCommerce orders.
#[derive(Debug)]
pub(crate) struct ShopStore {
    pub(crate) orders: BTreeMap<i64, ShopOrder>,
    /// Id of the next order added.
    pub(super) next_id: i64,
}
