//! Shop orders coming in, from an import page or a webhook: sanitized where
//! that loses nothing, checked against what the ledger can hold, and stored
//! so that one bad order never stops the others.
//!
//! - Text is stripped of U+0000 everywhere (the order's fields and every
//!   string and key of its raw JSON): Postgres `text` and `jsonb` cannot hold
//!   it, and it carries no meaning.
//! - A value the ledger cannot hold is refused for that order alone, naming
//!   the field: a total that is not a finite amount below 10^12 (`numeric(14,
//!   2)`), an unreadable modification time, an empty number, an order number
//!   another shop order already uses (a reference collision), an entry that
//!   is not an order at all. Refusals are recorded in `rejected_orders`
//!   (`ordersync orders rejected`, `GET /admin/api/orders/rejected`).
//! - Latest wins: an order older (by the shop's `date_modified_gmt`) than the
//!   ledger's copy changes nothing and is counted as stale.
//! - The valid orders go to Postgres in one statement; if Postgres refuses it
//!   anyway (a collision that raced in), each order is retried on its own and
//!   only the ones it refuses are recorded as rejected.
//!
//! Imports and webhooks both come through [`store_orders`]; this module
//! knows nothing of jobs or HTTP.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize as _, Serialize};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ledger::orders::{self, ImportedOrder};
use crate::ledger::rejected::{self, NewRejection, RejectionSource};
use crate::providers::woocommerce::WooOrder;

/// The largest total `numeric(14, 2)` holds: 12 digits before the point.
/// Totals are rounded to cents on the way in, so anything from
/// 999999999999.995 up would round to 10^12 and overflow.
pub const MAX_TOTAL: f64 = 999_999_999_999.99;

/// Longest reason quoted from a database refusal.
const REASON_CHARS: usize = 300;

/// `text` without U+0000.
pub fn strip_nul(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "")
    } else {
        text.to_owned()
    }
}

/// Strip U+0000 from every string and object key of `value`, in place.
pub fn strip_nul_json(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', ""),
        Value::Array(items) => items.iter_mut().for_each(strip_nul_json),
        Value::Object(map) => {
            if map.keys().any(|k| k.contains('\0')) {
                let entries = std::mem::take(map);
                for (key, v) in entries {
                    map.insert(key.replace('\0', ""), v);
                }
            }
            map.values_mut().for_each(strip_nul_json);
        }
        _ => {}
    }
}

/// One order refused: which, the field at fault, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The shop's order id (`None` when even that was unreadable).
    pub shop_order_id: Option<i64>,
    /// `{STORE}-{number}`, when the number was readable.
    pub reference: Option<String>,
    /// The field at fault (`total`, `number`, `date_modified_gmt`, ...).
    pub field: String,
    /// Why, for an operator.
    pub reason: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.reference, self.shop_order_id) {
            (Some(reference), Some(id)) => write!(f, "order {reference} (shop id {id})")?,
            (None, Some(id)) => write!(f, "shop order id {id}")?,
            (Some(reference), None) => write!(f, "order {reference}")?,
            (None, None) => f.write_str("an order without a readable id")?,
        }
        write!(f, ": {}: {}", self.field, self.reason)
    }
}

fn reject(order: &WooOrder, reference: Option<&str>, field: &str, reason: String) -> Rejection {
    Rejection {
        shop_order_id: Some(order.id),
        reference: reference.map(str::to_owned),
        field: field.to_owned(),
        reason,
    }
}

/// Our row for a shop order of `store`, sanitized.
///
/// # Errors
/// The order cannot be stored as it is; the [`Rejection`] names the field.
pub fn check(store: &str, order: &WooOrder) -> Result<ImportedOrder, Rejection> {
    let number = strip_nul(order.number.trim());
    if number.is_empty() {
        return Err(reject(
            order,
            None,
            "number",
            "the order number is empty".into(),
        ));
    }
    let reference = format!("{store}-{number}");
    let total_text = strip_nul(order.total.trim());
    let total = check_total(&total_text)
        .map_err(|reason| reject(order, Some(&reference), "total", reason))?;
    let shop_modified_at = match order.date_modified_gmt.as_deref() {
        None => None,
        Some(text) => Some(parse_woo_date(&strip_nul(text)).ok_or_else(|| {
            reject(
                order,
                Some(&reference),
                "date_modified_gmt",
                format!("'{}' is not a date and time", excerpt(text)),
            )
        })?),
    };
    let name = [
        order.billing.first_name.as_deref(),
        order.billing.last_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .map(strip_nul)
    .filter(|part| !part.trim().is_empty())
    .collect::<Vec<_>>()
    .join(" ");
    let mut raw = order.raw.clone();
    strip_nul_json(&mut raw);
    Ok(ImportedOrder {
        shop_order_id: order.id,
        reference,
        shop_status: strip_nul(&order.status),
        payment_method: strip_nul(&order.payment_method),
        total,
        currency: order
            .raw
            .get("currency")
            .and_then(|c| c.as_str())
            .map(strip_nul),
        phone: order
            .billing
            .phone
            .as_deref()
            .map(strip_nul)
            .filter(|p| !p.is_empty()),
        customer_name: Some(name).filter(|n| !n.trim().is_empty()),
        raw,
        shop_modified_at,
    })
}

/// The total as the ledger stores it, or why it cannot be.
fn check_total(text: &str) -> Result<String, String> {
    let amount: f64 = text
        .parse()
        .map_err(|_| format!("'{}' is not a number", excerpt(text)))?;
    if !amount.is_finite() {
        return Err(format!("'{}' is not a finite amount", excerpt(text)));
    }
    if amount.abs() > MAX_TOTAL {
        return Err(format!(
            "'{}' is out of range: the ledger holds amounts up to {MAX_TOTAL:.2}",
            excerpt(text)
        ));
    }
    Ok(text.to_owned())
}

/// The start of a value quoted in a reason.
fn excerpt(text: &str) -> String {
    let clean = strip_nul(text);
    match clean.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &clean[..cut]),
        None => clean,
    }
}

/// WooCommerce writes GMT dates without an offset (`2026-11-20T10:15:00`);
/// an offset, when present, is honoured.
pub fn parse_woo_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|n| n.and_utc())
        })
}

/// Why a page entry is not an order: the first field that is missing or of
/// the wrong type.
pub fn unreadable(store: &str, entry: &Value) -> Rejection {
    let id = entry.get("id").and_then(Value::as_i64);
    let number = entry.get("number").and_then(|n| match n {
        Value::String(s) => Some(strip_nul(s)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    });
    let is_text = |v: &Value| v.is_string() || v.is_number();
    let (field, reason) = if !entry.is_object() {
        ("order", "the entry is not a JSON object".to_owned())
    } else if id.is_none() {
        ("id", "missing, or not an integer".to_owned())
    } else if !entry.get("number").is_some_and(is_text) {
        ("number", "missing, or not a string or number".to_owned())
    } else if !entry.get("status").is_some_and(Value::is_string) {
        ("status", "missing, or not a string".to_owned())
    } else if !entry.get("total").is_some_and(is_text) {
        ("total", "missing, or not a string or number".to_owned())
    } else if entry
        .get("billing")
        .is_some_and(|b| !b.is_object() && !b.is_null())
    {
        ("billing", "not an object".to_owned())
    } else {
        let error = WooOrder::deserialize(entry)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        (
            "order",
            format!("not a readable order: {}", excerpt(&error)),
        )
    };
    Rejection {
        shop_order_id: id,
        reference: number.map(|n| format!("{store}-{n}")),
        field: field.to_owned(),
        reason,
    }
}

/// What [`store_orders`] did with a batch.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Intake {
    /// New orders.
    pub inserted: u64,
    /// Orders updated.
    pub updated: u64,
    /// References of the orders written (inserted or updated).
    pub applied: Vec<String>,
    /// Shop ids of orders older than the ledger's copy (nothing changed).
    pub stale: Vec<i64>,
    /// Orders refused, each with its field and reason (also recorded in
    /// `rejected_orders` when they have a shop id).
    pub rejected: Vec<Rejection>,
}

/// Check and store `orders` of `store` (valid ones as [`orders::upsert`]
/// does, latest wins), record the refused ones with `unreadable` page
/// entries in `rejected_orders`, and mark earlier refusals of the stored
/// ones resolved.
///
/// # Errors
/// Postgres failed for a reason other than the data (it is unreachable):
/// nothing of the batch is known to be stored, and trying again is safe.
pub async fn store_orders(
    db: &PgPool,
    store: &str,
    incoming: &[WooOrder],
    unreadable_entries: &[Value],
    source: RejectionSource,
    job_id: Option<Uuid>,
) -> sqlx::Result<Intake> {
    let mut intake = Intake::default();
    intake
        .rejected
        .extend(unreadable_entries.iter().map(|e| unreadable(store, e)));
    // One version per order: the newest on the page (an order modified while
    // the import pages through appears twice; Postgres cannot update one row
    // twice in a statement).
    let mut newest: Vec<ImportedOrder> = Vec::with_capacity(incoming.len());
    let mut position: HashMap<i64, usize> = HashMap::new();
    for order in incoming {
        let checked = match check(store, order) {
            Ok(checked) => checked,
            Err(rejection) => {
                intake.rejected.push(rejection);
                continue;
            }
        };
        match position.get(&checked.shop_order_id) {
            Some(&i) if newest[i].shop_modified_at > checked.shop_modified_at => {
                intake.stale.push(checked.shop_order_id);
            }
            Some(&i) => {
                intake.stale.push(checked.shop_order_id);
                newest[i] = checked;
            }
            None => {
                position.insert(checked.shop_order_id, newest.len());
                newest.push(checked);
            }
        }
    }
    let valid = refuse_collisions(db, store, newest, &mut intake.rejected).await?;
    let written = match orders::upsert(db, store, &valid).await {
        Ok(written) => written,
        Err(e) if is_data_error(&e) => {
            tracing::warn!(store, error = %e, "the batch was refused; storing its orders one by one");
            one_by_one(db, store, &valid, &mut intake.rejected).await?
        }
        Err(e) => return Err(e),
    };
    intake.inserted = written.inserted;
    intake.updated = written.updated;
    for order in &valid {
        if written.applied.contains(&order.shop_order_id) {
            intake.applied.push(order.reference.clone());
        } else if !intake
            .rejected
            .iter()
            .any(|r| r.shop_order_id == Some(order.shop_order_id))
        {
            intake.stale.push(order.shop_order_id);
        }
    }
    let recorded: Vec<NewRejection<'_>> = intake
        .rejected
        .iter()
        .filter_map(|r| {
            Some(NewRejection {
                shop_order_id: r.shop_order_id?,
                reference: r.reference.as_deref(),
                field: &r.field,
                reason: &r.reason,
            })
        })
        .collect();
    rejected::record(db, store, source, job_id, &recorded).await?;
    rejected::resolve(db, store, &written.applied).await?;
    for r in &intake.rejected {
        tracing::warn!(store, source = source.as_str(), rejected = %r, "order refused");
    }
    Ok(intake)
}

/// `orders` without those whose reference another shop order holds, in the
/// ledger or earlier in the batch; those are added to `rejected`.
async fn refuse_collisions(
    db: &PgPool,
    store: &str,
    candidates: Vec<ImportedOrder>,
    rejected: &mut Vec<Rejection>,
) -> sqlx::Result<Vec<ImportedOrder>> {
    let references: Vec<&str> = candidates.iter().map(|o| o.reference.as_str()).collect();
    let mut holders: HashMap<String, (String, i64)> = orders::reference_holders(db, &references)
        .await?
        .into_iter()
        .map(|(reference, holder_store, id)| (reference, (holder_store, id)))
        .collect();
    let mut valid = Vec::with_capacity(candidates.len());
    for order in candidates {
        match holders.get(&order.reference) {
            Some((holder_store, holder))
                if holder_store != store || *holder != order.shop_order_id =>
            {
                rejected.push(Rejection {
                    shop_order_id: Some(order.shop_order_id),
                    reference: Some(order.reference.clone()),
                    field: "number".into(),
                    reason: if holder_store == store {
                        format!(
                            "reference collision: order number {} is already used by shop order id {holder}; \
                             order numbers must be unique in a store",
                            order.reference.trim_start_matches(&format!("{store}-"))
                        )
                    } else {
                        format!(
                            "reference collision: {} is already an order of store {holder_store}",
                            order.reference
                        )
                    },
                });
            }
            _ => {
                holders.insert(
                    order.reference.clone(),
                    (store.to_owned(), order.shop_order_id),
                );
                valid.push(order);
            }
        }
    }
    Ok(valid)
}

/// Store each order on its own; the ones Postgres refuses go to `rejected`.
async fn one_by_one(
    db: &PgPool,
    store: &str,
    valid: &[ImportedOrder],
    rejected: &mut Vec<Rejection>,
) -> sqlx::Result<orders::Upserted> {
    let mut total = orders::Upserted::default();
    for order in valid {
        match orders::upsert(db, store, std::slice::from_ref(order)).await {
            Ok(one) => {
                total.inserted += one.inserted;
                total.updated += one.updated;
                total.applied.extend(one.applied);
            }
            Err(e) if is_data_error(&e) => rejected.push(Rejection {
                shop_order_id: Some(order.shop_order_id),
                reference: Some(order.reference.clone()),
                field: field_of_database_error(&e).into(),
                reason: database_reason(&e),
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(total)
}

/// A refusal caused by the data (SQLSTATE classes 21 cardinality, 22 data
/// exception, 23 integrity constraint), not by the database being unwell.
fn is_data_error(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| {
            code.starts_with("21") || code.starts_with("22") || code.starts_with("23")
        })
}

fn field_of_database_error(e: &sqlx::Error) -> &'static str {
    let Some(db) = e.as_database_error() else {
        return "order";
    };
    match (db.constraint(), db.code().as_deref()) {
        (Some("orders_reference_key"), _) => "number",
        (_, Some("22003")) => "total",
        (_, Some("22P02")) => "total",
        (_, Some("22P05" | "22021" | "22025")) => "raw",
        (_, Some("22007" | "22008")) => "date_modified_gmt",
        _ => "order",
    }
}

fn database_reason(e: &sqlx::Error) -> String {
    let message = e
        .as_database_error()
        .map(|d| d.message().to_owned())
        .unwrap_or_else(|| e.to_string());
    let message = strip_nul(&message);
    let message = match message.char_indices().nth(REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message,
    };
    format!("the ledger refused it: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order(patch: Value) -> WooOrder {
        let mut base = json!({
            "id": 7, "number": "1007", "status": "processing", "payment_method": "cod",
            "total": "1500.00", "currency": "DZD", "date_modified_gmt": "2026-11-20T10:15:00",
            "billing": {"first_name": "Amina", "last_name": "B", "phone": "0555"}
        });
        for (k, v) in patch.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn nul_is_stripped_everywhere_and_nothing_else_changes() {
        let checked = check(
            "BETA",
            &order(json!({
                "number": "10\u{0}07", "status": "proc\u{0}essing",
                "billing": {"first_name": "Am\u{0}ina", "phone": "05\u{0}55"},
                "meta_data": [{"key": "no\u{0}te", "value": "a\u{0}b"}],
                "we\u{0}ird": 1
            })),
        )
        .unwrap();
        assert_eq!(checked.reference, "BETA-1007");
        assert_eq!(checked.shop_status, "processing");
        assert_eq!(checked.customer_name.as_deref(), Some("Amina"));
        assert_eq!(checked.phone.as_deref(), Some("0555"));
        assert_eq!(checked.raw["meta_data"][0]["key"], "note");
        assert_eq!(checked.raw["meta_data"][0]["value"], "ab");
        assert_eq!(checked.raw["weird"], 1);
        assert!(!checked.raw.to_string().contains("\\u0000"));
    }

    #[test]
    fn totals_the_ledger_cannot_hold_are_refused_naming_the_field() {
        for (total, needle) in [
            ("inf", "not a finite amount"),
            ("NaN", "not a finite amount"),
            ("-infinity", "not a finite amount"),
            ("1000000000000", "out of range"),
            ("999999999999.999", "out of range"),
            ("1e15", "out of range"),
            ("12,50", "not a number"),
        ] {
            let err = check("BETA", &order(json!({ "total": total }))).unwrap_err();
            assert_eq!(err.field, "total", "{total}");
            assert!(err.reason.contains(needle), "{total}: {err}");
            assert!(
                err.to_string()
                    .starts_with("order BETA-1007 (shop id 7): total: "),
                "{err}"
            );
        }
        for total in ["999999999999.99", "0", "-12.5", " 1500.00 ", "1e3"] {
            assert!(
                check("BETA", &order(json!({ "total": total }))).is_ok(),
                "{total}"
            );
        }
    }

    #[test]
    fn an_unreadable_modification_time_is_refused() {
        let err = check("BETA", &order(json!({"date_modified_gmt": "yesterday"}))).unwrap_err();
        assert_eq!(err.field, "date_modified_gmt");
        assert!(err.reason.contains("'yesterday'"), "{err}");
    }

    #[test]
    fn dates_parse_with_or_without_an_offset() {
        let a = parse_woo_date("2026-11-20T10:15:00").unwrap();
        let b = parse_woo_date("2026-11-20T10:15:00Z").unwrap();
        let c = parse_woo_date("2026-11-20T11:15:00+01:00").unwrap();
        assert_eq!((a, a), (b, c));
        assert!(parse_woo_date("yesterday").is_none());
    }

    #[test]
    fn unreadable_entries_name_their_first_bad_field() {
        let cases = [
            (json!([1]), "order"),
            (json!({"number": "5"}), "id"),
            (json!({"id": 5, "number": "5"}), "status"),
            (json!({"id": 5, "number": "5", "status": "x"}), "total"),
            (
                json!({"id": 5, "number": {}, "status": "x", "total": "1"}),
                "number",
            ),
            (
                json!({"id": 5, "number": "5", "status": "x", "total": "1", "billing": 3}),
                "billing",
            ),
        ];
        for (entry, field) in cases {
            let r = unreadable("BETA", &entry);
            assert_eq!(r.field, field, "{entry}: {r}");
        }
        assert_eq!(
            unreadable("BETA", &json!({"id": 5, "number": "5"}))
                .reference
                .as_deref(),
            Some("BETA-5")
        );
    }
}
