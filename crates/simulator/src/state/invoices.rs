//! The ERP's Sales Invoices, as the JSON documents it stores.

use std::collections::HashMap;

use serde_json::Value;

/// ERP invoices, indexed by name and `po_no` because clients look up before
/// every create.
#[derive(Debug, Default)]
pub(crate) struct Invoices {
    docs: Vec<Value>,
    by_name: HashMap<String, usize>,
    by_po: HashMap<String, Vec<usize>>,
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
