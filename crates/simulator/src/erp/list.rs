//! `GET /api/resource/{doctype}`: Frappe's list API, with its `filters`
//! (list or object form), `fields`, paging and order.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::{
    authenticate, modes_of_payment, not_found, validation, MODE_OF_PAYMENT, PAYMENT_ENTRY,
    SALES_INVOICE,
};
use crate::http::{query_get, query_pairs};
use crate::sim::Sim;

/// Frappe's `limit_page_length` when none is given.
const DEFAULT_PAGE_LENGTH: usize = 20;

/// Scalar equality across JSON types, as SQL would compare them.
fn loosely_equal(a: &Value, b: &Value) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let (x, y) = (text(a), text(b));
    match (x.parse::<f64>(), y.parse::<f64>()) {
        (Ok(p), Ok(q)) => p == q,
        _ => x == y,
    }
}

/// One `[field, op, value]` condition.
struct Filter {
    field: String,
    op: String,
    value: Value,
}

impl Filter {
    fn keeps(&self, doc: &Value) -> bool {
        let actual = doc.get(&self.field).unwrap_or(&Value::Null);
        let listed = || match &self.value {
            Value::Array(items) => items.iter().any(|v| loosely_equal(actual, v)),
            Value::String(s) => s
                .split(',')
                .any(|v| loosely_equal(actual, &json!(v.trim()))),
            v => loosely_equal(actual, v),
        };
        match self.op.as_str() {
            "=" => loosely_equal(actual, &self.value),
            "!=" => !loosely_equal(actual, &self.value),
            "in" => listed(),
            "not in" => !listed(),
            "like" => {
                let pattern = self.value.as_str().unwrap_or_default().to_lowercase();
                let hay = actual.as_str().unwrap_or_default().to_lowercase();
                let parts: Vec<&str> = pattern.split('%').collect();
                parts.iter().all(|p| hay.contains(p))
            }
            _ => false,
        }
    }
}

/// `filters` as a list of `[field, op, value]` / `[doctype, field, op, value]`,
/// or a `{field: value}` / `{field: [op, value]}` object.
fn parse_filters(raw: Option<&str>) -> Result<Vec<Filter>, Response> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(Vec::new());
    };
    let bad = |why: &str| validation("ValidationError", why, why);
    let value: Value = serde_json::from_str(raw).map_err(|_| bad("Invalid filters: not JSON"))?;
    let mut out = Vec::new();
    let mut push = |field: &str, op: &str, value: Value| -> Result<(), Response> {
        let op = op.trim().to_lowercase();
        if !["=", "!=", "in", "not in", "like"].contains(&op.as_str()) {
            return Err(bad(&format!(
                "Operator must be one of =, !=, in, not in, like; got {op}"
            )));
        }
        out.push(Filter {
            field: field.to_string(),
            op,
            value,
        });
        Ok(())
    };
    match value {
        Value::Array(conds) => {
            for cond in conds {
                let parts = cond.as_array().cloned().unwrap_or_default();
                let strs = |i: usize| {
                    parts
                        .get(i)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                match parts.len() {
                    3 => push(&strs(0), &strs(1), parts[2].clone())?,
                    4 => push(&strs(1), &strs(2), parts[3].clone())?,
                    _ => {
                        return Err(bad(
                            "Invalid filters: each condition is [field, operator, value]",
                        ))
                    }
                }
            }
        }
        Value::Object(map) => {
            for (field, v) in map {
                match v {
                    Value::Array(pair) if pair.len() == 2 && pair[0].is_string() => {
                        push(&field, pair[0].as_str().unwrap_or("="), pair[1].clone())?;
                    }
                    other => push(&field, "=", other)?,
                }
            }
        }
        _ => return Err(bad("Invalid filters")),
    }
    Ok(out)
}

/// An `=` filter on an indexed field (`name`, `po_no`), to skip the scan.
fn indexed_filter(filters: &[Filter]) -> Option<(&'static str, &str)> {
    filters.iter().find_map(|f| {
        let value = f.value.as_str()?;
        match (f.field.as_str(), f.op.as_str()) {
            ("name", "=") => Some(("name", value)),
            ("po_no", "=") => Some(("po_no", value)),
            _ => None,
        }
    })
}

/// `GET /api/resource/{doctype}?filters=&fields=&limit_page_length=&limit_start=`,
/// newest first (Frappe's `modified desc`) unless `order_by` says `asc`.
pub(super) async fn list(
    State(sim): State<Arc<Sim>>,
    Path(doctype): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if let Err(res) = authenticate(&sim, &headers) {
        return res;
    }
    let pairs = query_pairs(uri.query());
    let filters = match parse_filters(query_get(&pairs, "filters")) {
        Ok(f) => f,
        Err(res) => return res,
    };
    let fields: Vec<String> = match query_get(&pairs, "fields") {
        None => vec!["name".into()],
        Some(raw) => match serde_json::from_str(raw) {
            Ok(f) => f,
            Err(_) => {
                return validation(
                    "ValidationError",
                    "Invalid fields",
                    "Invalid fields: expected a JSON list of names",
                )
            }
        },
    };
    let limit = query_get(&pairs, "limit_page_length")
        .or_else(|| query_get(&pairs, "limit"))
        .map_or(Ok(DEFAULT_PAGE_LENGTH), str::parse::<usize>);
    let start = query_get(&pairs, "limit_start").map_or(Ok(0), str::parse::<usize>);
    let (Ok(limit), Ok(start)) = (limit, start) else {
        return validation(
            "ValidationError",
            "Invalid limit",
            "limit_page_length and limit_start must be integers",
        );
    };
    let ascending = query_get(&pairs, "order_by").is_some_and(|o| o.to_lowercase().contains("asc"));
    let modes = modes_of_payment();
    let st = sim.state();
    let candidates: Vec<&Value> = match doctype.as_str() {
        SALES_INVOICE => match indexed_filter(&filters) {
            Some(("name", v)) => st.invoices.by_name(v).into_iter().collect(),
            Some((_, v)) => st.invoices.with_po(v).collect(),
            None => st.invoices.all().iter().collect(),
        },
        PAYMENT_ENTRY => st.invoices.payments().iter().collect(),
        MODE_OF_PAYMENT => modes.iter().collect(),
        other => return not_found(&format!("DocType {other} not found")),
    };
    let mut hits: Vec<&Value> = candidates
        .into_iter()
        .filter(|d| filters.iter().all(|f| f.keeps(d)))
        .collect();
    if !ascending {
        hits.reverse();
    }
    let take = if limit == 0 { usize::MAX } else { limit };
    let data: Vec<Value> = hits
        .into_iter()
        .skip(start)
        .take(take)
        .map(|d| {
            if fields.iter().any(|f| f == "*") {
                return d.clone();
            }
            let mut row = Map::new();
            for f in &fields {
                row.insert(f.clone(), d.get(f).cloned().unwrap_or(Value::Null));
            }
            Value::Object(row)
        })
        .collect();
    drop(st);
    axum::Json(json!({ "data": data })).into_response()
}
