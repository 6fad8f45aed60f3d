//! The orders view: cached orders listed newest first with filters and a
//! text search (keyset pages), and their counts from `order_counts`
//! (migration 0011 keeps both the invoice state on the order and the counts).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The invoice states an order can be in (`orders.invoice_state`; see
/// migration 0011 for what each means).
pub const INVOICE_STATES: [&str; 8] = [
    "none",
    "creating",
    "voided",
    "draft",
    "submitted",
    "paid",
    "cancelled",
    "existing",
];

/// The courier status filter's value for orders the courier never reported.
pub const NO_COURIER_STATUS: &str = "none";

/// Shop statuses not counted in revenue: the money never came or went back.
pub const NOT_REVENUE: [&str; 3] = ["cancelled", "refunded", "failed"];

/// Which orders to list. Every field narrows; `None` leaves it open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Store code.
    pub store: Option<String>,
    /// The shop's status (`processing`, `completed`, ...).
    pub shop_status: Option<String>,
    /// Normalized courier status, or [`NO_COURIER_STATUS`].
    pub courier_status: Option<String>,
    /// One of [`INVOICE_STATES`].
    pub invoice_state: Option<String>,
    /// Text in the reference, customer name or phone (case-insensitive).
    pub search: Option<String>,
}

/// One order of the list.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct OrderSummary {
    /// Our id (the keyset: newest first).
    pub id: i64,
    /// `{STORE}-{number}`: the trace's key.
    pub reference: String,
    /// Store code.
    pub store: String,
    /// Shop status.
    pub shop_status: String,
    /// Normalized courier status; `None` until the courier reports it.
    pub courier_status: Option<String>,
    /// The courier's own label of it.
    pub courier_label: Option<String>,
    /// Tracking number.
    pub tracking_number: Option<String>,
    /// Invoice state (see [`INVOICE_STATES`]).
    pub invoice_state: String,
    /// Payment method code.
    pub payment_method: String,
    /// Total, with two decimals.
    pub total: String,
    /// Currency.
    pub currency: Option<String>,
    /// Customer name.
    pub customer_name: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// When we imported it.
    pub imported_at: DateTime<Utc>,
    /// When its courier status last changed.
    pub status_changed_at: Option<DateTime<Utc>>,
}

/// The columns of [`OrderSummary`], from `orders`.
const SUMMARY_COLUMNS: &str =
    "id, reference, store, shop_status, status AS courier_status, courier_label,
     tracking_number, invoice_state, payment_method, total::text AS total, currency,
     customer_name, phone, imported_at, status_changed_at";

/// Up to `limit` orders matching `filter` with ids below `before` (the
/// previous page's last id; `None`: from the newest), newest first. Keyset
/// pagination: a page never repeats or skips an order when new ones arrive
/// meanwhile (they have higher ids).
///
/// Without a search, a filter is answered group by group: the groups of
/// orders with one (store, shop status, courier status, invoice state) are
/// the keys of `order_counts` (and of the deltas not folded into it yet),
/// and each matching group's newest orders come from one range of
/// `orders_list_groups_idx` (migration 0012). A page costs a short index
/// range per group however rare the combination is. Walking the primary key
/// backwards and filtering, which is what the planner picks from its
/// estimates, read the whole table for combinations that match nothing
/// (500 ms over a million orders, `ordersync-dev bench`).
///
/// The search is a substring match over `order_search_text(...)`, which
/// must stay word for word the indexed expression of migration 0011; with
/// a search the trigram index drives the query.
///
/// # Errors
/// Postgres failed.
pub async fn list(
    pool: &PgPool,
    filter: &OrderFilter,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<OrderSummary>> {
    let narrowed = filter.store.is_some()
        || filter.shop_status.is_some()
        || filter.courier_status.is_some()
        || filter.invoice_state.is_some();
    let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new("");
    if narrowed && filter.search.is_none() {
        query.push("SELECT o.* FROM (");
        for (i, table) in ["order_counts", "order_count_deltas"]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                query.push(" UNION ");
            }
            query.push(format_args!(
                "SELECT store, shop_status, status, invoice_state FROM {table} WHERE true"
            ));
            push_group_filter(&mut query, filter);
        }
        query.push(format_args!(
            ") g CROSS JOIN LATERAL (
                 SELECT {SUMMARY_COLUMNS} FROM orders o
                 WHERE o.store = g.store AND o.shop_status = g.shop_status
                   AND COALESCE(o.status, '') = g.status AND o.invoice_state = g.invoice_state"
        ));
        if let Some(before) = before {
            query.push(" AND o.id < ").push_bind(before);
        }
        query.push(" ORDER BY o.id DESC LIMIT ").push_bind(limit);
        query.push(") o ORDER BY o.id DESC LIMIT ").push_bind(limit);
    } else {
        query.push(format_args!(
            "SELECT {SUMMARY_COLUMNS} FROM orders WHERE true"
        ));
        if let Some(before) = before {
            query.push(" AND id < ").push_bind(before);
        }
        if let Some(store) = &filter.store {
            query.push(" AND store = ").push_bind(store);
        }
        if let Some(shop_status) = &filter.shop_status {
            query.push(" AND shop_status = ").push_bind(shop_status);
        }
        match filter.courier_status.as_deref() {
            None => {}
            Some(NO_COURIER_STATUS) => {
                query.push(" AND status IS NULL");
            }
            Some(status) => {
                query.push(" AND status = ").push_bind(status);
            }
        }
        if let Some(invoice_state) = &filter.invoice_state {
            query.push(" AND invoice_state = ").push_bind(invoice_state);
        }
        if let Some(search) = &filter.search {
            let pattern = format!("%{}%", escape_like(&search.to_lowercase()));
            query
                .push(" AND order_search_text(reference, customer_name, phone) LIKE ")
                .push_bind(pattern);
        }
        query.push(" ORDER BY id DESC LIMIT ").push_bind(limit);
    }
    // Not prepared: each call is planned with its own values (a generic
    // plan cannot tell a rare filter value from a common one).
    query
        .build_query_as()
        .persistent(false)
        .fetch_all(pool)
        .await
}

/// `filter`'s equality filters over a table keyed like `order_counts`
/// (where an order the courier never reported has status `''`).
fn push_group_filter(query: &mut sqlx::QueryBuilder<'_, sqlx::Postgres>, filter: &OrderFilter) {
    if let Some(store) = &filter.store {
        query.push(" AND store = ").push_bind(store.clone());
    }
    if let Some(shop_status) = &filter.shop_status {
        query
            .push(" AND shop_status = ")
            .push_bind(shop_status.clone());
    }
    if let Some(status) = &filter.courier_status {
        let status = if status == NO_COURIER_STATUS {
            ""
        } else {
            status.as_str()
        };
        query.push(" AND status = ").push_bind(status.to_owned());
    }
    if let Some(invoice_state) = &filter.invoice_state {
        query
            .push(" AND invoice_state = ")
            .push_bind(invoice_state.clone());
    }
}

/// `s` with LIKE's wildcards (and its escape) taken literally.
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Counts of a set of orders.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderCounts {
    /// Orders.
    pub orders: i64,
    /// Sum of the totals of orders not cancelled, refunded or failed in the
    /// shop ([`NOT_REVENUE`]), with two decimals. Currencies are not told
    /// apart: a store sells in one.
    pub revenue: String,
    /// Orders by shop status.
    pub by_shop_status: BTreeMap<String, i64>,
    /// Orders by normalized courier status (`none`: not reported yet).
    pub by_courier_status: BTreeMap<String, i64>,
    /// Orders by invoice state.
    pub by_invoice_state: BTreeMap<String, i64>,
}

/// One store's counts and last syncs.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoreOrderStats {
    /// Store code.
    pub store: String,
    /// Its orders' counts.
    #[serde(flatten)]
    pub counts: OrderCounts,
    /// Its last successful order import.
    pub last_import_at: Option<DateTime<Utc>>,
    /// Its last successful tracking fetch.
    pub last_tracking_at: Option<DateTime<Utc>>,
}

/// Every order's counts, and each store's.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrderStats {
    /// All stores together.
    #[serde(flatten)]
    pub total: OrderCounts,
    /// Per store, by code.
    pub stores: Vec<StoreOrderStats>,
}

/// One row of the folded counts plus pending deltas.
type CountRow = (String, String, String, String, i64, i64);

/// The counts of every order, in total and per store, with each store's
/// last import and tracking fetch. Reads `order_counts` plus the deltas not
/// folded yet (a few hundred rows whatever the number of orders); folds
/// them first when no other reader is folding.
///
/// # Errors
/// Postgres failed.
pub async fn stats(pool: &PgPool) -> sqlx::Result<OrderStats> {
    fold_counts(pool).await?;
    let rows: Vec<CountRow> = sqlx::query_as(
        "SELECT store, shop_status, status, invoice_state, sum(orders)::bigint,
                COALESCE(sum(revenue * 100) FILTER (WHERE NOT (shop_status = ANY($1))), 0)::bigint
         FROM (SELECT * FROM order_counts UNION ALL SELECT * FROM order_count_deltas) c
         GROUP BY 1, 2, 3, 4
         HAVING sum(orders) <> 0",
    )
    .bind(NOT_REVENUE.as_slice())
    .fetch_all(pool)
    .await?;
    let syncs: Vec<(String, String, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT store, kind, last_success_at FROM store_sync_state
         WHERE kind IN ('import_orders', 'fetch_tracking')",
    )
    .fetch_all(pool)
    .await?;
    let mut total = Tally::default();
    let mut stores: BTreeMap<String, (Tally, StoreOrderStats)> = BTreeMap::new();
    for (store, shop_status, status, invoice_state, orders, cents) in rows {
        let status = if status.is_empty() {
            NO_COURIER_STATUS.to_owned()
        } else {
            status
        };
        let cents = i128::from(cents);
        for tally in [&mut total, &mut stores.entry(store.clone()).or_default().0] {
            tally.add(&shop_status, &status, &invoice_state, orders, cents);
        }
    }
    for (store, kind, at) in syncs {
        let entry = &mut stores.entry(store).or_default().1;
        if kind == "import_orders" {
            entry.last_import_at = at;
        } else {
            entry.last_tracking_at = at;
        }
    }
    Ok(OrderStats {
        total: total.into_counts(),
        stores: stores
            .into_iter()
            .map(|(store, (tally, stats))| StoreOrderStats {
                store,
                counts: tally.into_counts(),
                ..stats
            })
            .collect(),
    })
}

/// Counts being summed; revenue in cents, so sums are exact.
#[derive(Debug, Default)]
struct Tally {
    counts: OrderCounts,
    cents: i128,
}

impl Tally {
    fn add(&mut self, shop: &str, courier: &str, invoice: &str, orders: i64, cents: i128) {
        let c = &mut self.counts;
        c.orders += orders;
        *c.by_shop_status.entry(shop.to_owned()).or_default() += orders;
        *c.by_courier_status.entry(courier.to_owned()).or_default() += orders;
        *c.by_invoice_state.entry(invoice.to_owned()).or_default() += orders;
        self.cents += cents;
    }

    fn into_counts(self) -> OrderCounts {
        let sign = if self.cents < 0 { "-" } else { "" };
        let abs = self.cents.unsigned_abs();
        OrderCounts {
            revenue: format!("{sign}{}.{:02}", abs / 100, abs % 100),
            ..self.counts
        }
    }
}

/// Fold the pending count deltas into `order_counts` (skipped while another
/// session folds); returns how many delta rows were folded.
///
/// # Errors
/// Postgres failed.
pub async fn fold_counts(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT fold_order_count_deltas()")
        .fetch_one(pool)
        .await
}

/// Count `order_counts` again from the orders, dropping pending deltas:
/// for a bulk load that ran with the tables' triggers disabled (the
/// benchmark), having set `invoice_state` itself.
///
/// # Errors
/// Postgres failed.
pub async fn recount(pool: &PgPool) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM order_count_deltas")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM order_counts")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO order_counts
         SELECT store, shop_status, COALESCE(status, ''), invoice_state, count(*), sum(total)
         FROM orders GROUP BY 1, 2, 3, 4",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_in_a_search_are_taken_literally() {
        assert_eq!(escape_like("50%_a\\b"), "50\\%\\_a\\\\b");
    }

    #[test]
    fn revenue_is_written_with_two_decimals_and_its_sign() {
        let mut t = Tally::default();
        t.add("completed", "delivered", "paid", 2, 123_405);
        assert_eq!(t.into_counts().revenue, "1234.05");
        let mut t = Tally::default();
        t.add("completed", "none", "none", -1, -5);
        assert_eq!(t.into_counts().revenue, "-0.05");
    }
}
