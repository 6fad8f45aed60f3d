//! The ERP's Sales Invoices and Payment Entries, as the JSON documents it
//! stores, and the counts of every lifecycle move (submit, cancel, payment,
//! stock movement) that tests compare with the ledger.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

/// ERP invoices, indexed by name and `po_no` because clients look up before
/// every create; Payment Entries by name; docstatus moves counted per
/// invoice.
#[derive(Debug, Default)]
pub(crate) struct Invoices {
    docs: Vec<Value>,
    by_name: HashMap<String, usize>,
    by_po: HashMap<String, Vec<usize>>,
    /// Invoice name -> times it went to docstatus 1 (created submitted, or 0->1).
    submits: HashMap<String, u32>,
    /// Invoice name -> times it went 1->2.
    cancels: HashMap<String, u32>,
    /// Invoices submitted with `update_stock: 1` (each moved stock once).
    stock_moves: u64,
    payments: Vec<Value>,
    payment_by_name: HashMap<String, usize>,
    payment_seq: u64,
    payments_cancelled: u64,
}

/// What the ERP saw of the invoice lifecycle, for tests and the demo to
/// compare with the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErpCounts {
    /// Sales Invoices created (duplicates included).
    pub invoices: u64,
    /// Moves to docstatus 1 (created submitted, or a draft submitted).
    pub submitted: u64,
    /// Moves from docstatus 1 to 2.
    pub cancelled: u64,
    /// Payment Entries submitted.
    pub payments: u64,
    /// Payment Entries cancelled.
    pub payments_cancelled: u64,
    /// Submitted invoices that moved stock (`update_stock: 1`).
    pub stock_moves: u64,
    /// Lifecycle rules broken, one line each: an invoice submitted or
    /// cancelled twice, paid twice or beyond its total, two live invoices for
    /// one `po_no`. Empty when all is well.
    pub violations: Vec<String>,
}

impl Invoices {
    fn po_of(doc: &Value) -> Option<String> {
        doc.get("po_no").and_then(Value::as_str).map(str::to_string)
    }

    /// Every invoice, in creation order.
    pub(crate) fn all(&self) -> &[Value] {
        &self.docs
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<&Value> {
        self.by_name.get(name).map(|&i| &self.docs[i])
    }

    /// Invoices carrying this `po_no`, in creation order.
    pub(crate) fn with_po<'a>(&'a self, po_no: &str) -> impl Iterator<Item = &'a Value> {
        self.by_po
            .get(po_no)
            .into_iter()
            .flatten()
            .map(|&i| &self.docs[i])
    }

    pub(crate) fn push(&mut self, doc: Value) {
        let i = self.docs.len();
        if let Some(name) = doc.get("name").and_then(Value::as_str) {
            self.by_name.insert(name.to_string(), i);
        }
        if let Some(po) = Self::po_of(&doc) {
            self.by_po.entry(po).or_default().push(i);
        }
        self.docs.push(doc);
    }

    /// Replaces the invoice `name` (a draft may change its `po_no`).
    pub(crate) fn replace(&mut self, name: &str, doc: Value) {
        let Some(&i) = self.by_name.get(name) else {
            return;
        };
        if let Some(old) = Self::po_of(&self.docs[i]) {
            if let Some(list) = self.by_po.get_mut(&old) {
                list.retain(|&j| j != i);
            }
        }
        if let Some(po) = Self::po_of(&doc) {
            let list = self.by_po.entry(po).or_default();
            list.push(i);
            list.sort_unstable();
        }
        self.docs[i] = doc;
    }
}

impl Invoices {
    /// Counts a docstatus move of invoice `name` (`from` is `None` at creation).
    pub(crate) fn note_docstatus(
        &mut self,
        name: &str,
        from: Option<i64>,
        to: i64,
        moves_stock: bool,
    ) {
        if to == 1 && from != Some(1) {
            *self.submits.entry(name.to_string()).or_default() += 1;
            if moves_stock {
                self.stock_moves += 1;
            }
        }
        if from == Some(1) && to == 2 {
            *self.cancels.entry(name.to_string()).or_default() += 1;
        }
    }

    /// Next Payment Entry name, e.g. `ACC-PAY-2026-00001`.
    pub(crate) fn next_payment_name(&mut self, year: &str) -> String {
        self.payment_seq += 1;
        format!("ACC-PAY-{year}-{:05}", self.payment_seq)
    }

    /// Every Payment Entry, in creation order.
    pub(crate) fn payments(&self) -> &[Value] {
        &self.payments
    }

    pub(crate) fn payment_by_name(&self, name: &str) -> Option<&Value> {
        self.payment_by_name.get(name).map(|&i| &self.payments[i])
    }

    pub(crate) fn push_payment(&mut self, doc: Value) {
        if let Some(name) = doc.get("name").and_then(Value::as_str) {
            self.payment_by_name
                .insert(name.to_string(), self.payments.len());
        }
        self.payments.push(doc);
    }

    /// Replaces Payment Entry `name`, counting a cancellation.
    pub(crate) fn replace_payment(&mut self, name: &str, doc: Value) {
        let Some(&i) = self.payment_by_name.get(name) else {
            return;
        };
        if self.payments[i]["docstatus"] == 1 && doc["docstatus"] == 2 {
            self.payments_cancelled += 1;
        }
        self.payments[i] = doc;
    }

    /// Submitted Payment Entries allocating to invoice `name`, with the
    /// amount allocated to it.
    pub(crate) fn active_payments_for(&self, invoice: &str) -> Vec<(String, f64)> {
        self.payments
            .iter()
            .filter(|p| p["docstatus"] == 1)
            .filter_map(|p| {
                let allocated: f64 = p["references"]
                    .as_array()?
                    .iter()
                    .filter(|r| r["reference_name"] == invoice)
                    .map(|r| r["allocated_amount"].as_f64().unwrap_or(0.0))
                    .sum();
                (allocated > 0.0).then(|| {
                    (
                        p["name"].as_str().unwrap_or_default().to_string(),
                        allocated,
                    )
                })
            })
            .collect()
    }

    /// The lifecycle counts and any broken rule.
    pub(crate) fn counts(&self) -> ErpCounts {
        let mut violations = Vec::new();
        for (name, n) in &self.submits {
            if *n > 1 {
                violations.push(format!("invoice {name} submitted {n} times"));
            }
        }
        for (name, n) in &self.cancels {
            if *n > 1 {
                violations.push(format!("invoice {name} cancelled {n} times"));
            }
        }
        let mut live_per_po: BTreeMap<&str, u32> = BTreeMap::new();
        for doc in &self.docs {
            let name = doc["name"].as_str().unwrap_or_default();
            let payments = self.active_payments_for(name);
            let total = doc["grand_total"].as_f64().unwrap_or(0.0);
            let paid: f64 = payments.iter().map(|(_, a)| a).sum();
            if payments.len() > 1 || paid > total + 0.005 {
                violations.push(format!(
                    "invoice {name} paid {} times ({paid} of {total})",
                    payments.len()
                ));
            }
            if doc["docstatus"] == 2 && !payments.is_empty() {
                violations.push(format!("cancelled invoice {name} still has payments"));
            }
            if doc["docstatus"] != 2 {
                if let Some(po) = doc["po_no"].as_str() {
                    *live_per_po.entry(po).or_default() += 1;
                }
            }
        }
        for (po, n) in live_per_po {
            if n > 1 {
                violations.push(format!("{n} invoices not cancelled for po_no {po}"));
            }
        }
        violations.sort();
        ErpCounts {
            invoices: self.docs.len() as u64,
            submitted: self.submits.values().map(|n| u64::from(*n)).sum(),
            cancelled: self.cancels.values().map(|n| u64::from(*n)).sum(),
            payments: self.payments.iter().filter(|p| p["docstatus"] != 0).count() as u64,
            payments_cancelled: self.payments_cancelled,
            stock_moves: self.stock_moves,
            violations,
        }
    }
}
