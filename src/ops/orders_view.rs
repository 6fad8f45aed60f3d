//! The orders view's requests: filters as the API and the CLI take them
//! (text), checked and named when wrong; the opaque page cursor; one page.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::domain::status::NormalizedStatus;
use crate::ledger::orders_view::{self, OrderFilter, OrderSummary, INVOICE_STATES};

/// Orders per page unless `limit` says otherwise.
pub const DEFAULT_LIMIT: i64 = 50;
/// The most orders one page may hold.
pub const MAX_LIMIT: i64 = 500;
/// The shortest search: a trigram index needs three characters to narrow.
pub const MIN_SEARCH_CHARS: usize = 3;
/// The longest search.
pub const MAX_SEARCH_CHARS: usize = 100;

/// The list's parameters as given (query string or command line).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Store code.
    pub store: Option<String>,
    /// Shop status.
    pub shop_status: Option<String>,
    /// Normalized courier status, or `none`.
    pub courier_status: Option<String>,
    /// Invoice state.
    pub invoice_state: Option<String>,
    /// Text in the reference, customer name or phone.
    pub q: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Orders per page.
    pub limit: Option<String>,
}

/// A checked list request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest {
    /// The filters.
    pub filter: OrderFilter,
    /// Orders below this id (from the cursor).
    pub before: Option<i64>,
    /// Orders per page.
    pub limit: i64,
}

/// One page of the list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPage {
    /// The orders, newest first.
    pub orders: Vec<OrderSummary>,
    /// Give it as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Empty values count as not given (a form's blank field).
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl ListParams {
    /// Check every parameter; `stores` are the store codes that exist.
    ///
    /// # Errors
    /// The first bad parameter, named with its value and what it may be.
    pub fn check(&self, stores: &[String]) -> Result<ListRequest, String> {
        for (name, value) in [
            ("store", &self.store),
            ("shop_status", &self.shop_status),
            ("courier_status", &self.courier_status),
            ("invoice_state", &self.invoice_state),
            ("q", &self.q),
            ("cursor", &self.cursor),
            ("limit", &self.limit),
        ] {
            if let Some(value) = value {
                crate::input::plain_text(name, value)?;
            }
        }
        let store = given(&self.store)
            .map(|s| {
                if stores.iter().any(|known| known == s) {
                    Ok(s.to_owned())
                } else {
                    Err(format!(
                        "store '{s}' is not a known store (known: {})",
                        if stores.is_empty() {
                            "none yet".to_owned()
                        } else {
                            stores.join(", ")
                        }
                    ))
                }
            })
            .transpose()?;
        let shop_status = given(&self.shop_status)
            .map(|s| {
                let plausible = s.len() <= 40
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
                if plausible {
                    Ok(s.to_owned())
                } else {
                    Err(format!(
                        "shop_status '{s}' is not a shop status (lower-case letters, digits, '-' and '_', as processing or on-hold)"
                    ))
                }
            })
            .transpose()?;
        let courier_status = given(&self.courier_status)
            .map(|s| {
                if s == orders_view::NO_COURIER_STATUS || NormalizedStatus::parse(s).is_some() {
                    Ok(s.to_owned())
                } else {
                    let known: Vec<&str> =
                        NormalizedStatus::ALL.iter().map(|s| s.as_str()).collect();
                    Err(format!(
                        "courier_status '{s}' is not a courier status (one of {}, or none)",
                        known.join(", ")
                    ))
                }
            })
            .transpose()?;
        let invoice_state = given(&self.invoice_state)
            .map(|s| {
                if INVOICE_STATES.contains(&s) {
                    Ok(s.to_owned())
                } else {
                    Err(format!(
                        "invoice_state '{s}' is not an invoice state (one of {})",
                        INVOICE_STATES.join(", ")
                    ))
                }
            })
            .transpose()?;
        let search = given(&self.q)
            .map(|q| match q.chars().count() {
                n if n < MIN_SEARCH_CHARS => Err(format!(
                    "q '{q}' is too short: search with at least {MIN_SEARCH_CHARS} characters"
                )),
                n if n > MAX_SEARCH_CHARS => Err(format!(
                    "q is too long: search with at most {MAX_SEARCH_CHARS} characters"
                )),
                _ => Ok(q.to_owned()),
            })
            .transpose()?;
        let before = given(&self.cursor).map(decode_cursor).transpose()?;
        let limit = match given(&self.limit) {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<i64>()
                .ok()
                .filter(|l| (1..=MAX_LIMIT).contains(l))
                .ok_or_else(|| format!("limit '{l}' is not a number from 1 to {MAX_LIMIT}"))?,
        };
        Ok(ListRequest {
            filter: OrderFilter {
                store,
                shop_status,
                courier_status,
                invoice_state,
                search,
            },
            before,
            limit,
        })
    }
}

/// Prefix of every cursor: a later format can tell its own from this one.
const CURSOR_VERSION: &str = "v1:";

/// The opaque cursor of the page after the order `id`.
pub fn encode_cursor(id: i64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{CURSOR_VERSION}{id}"))
}

/// The order id a cursor continues after.
///
/// # Errors
/// Not a cursor this API gave.
pub fn decode_cursor(cursor: &str) -> Result<i64, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|s| s.strip_prefix(CURSOR_VERSION)?.parse::<i64>().ok())
        .ok_or_else(|| {
            format!(
                "cursor '{cursor}' is not a cursor this API gave (pass next_cursor back as it is)"
            )
        })
}

/// One page: the orders of `request`, and the cursor of the next page when
/// there are more.
///
/// # Errors
/// Postgres failed.
pub async fn page(db: &PgPool, request: &ListRequest) -> sqlx::Result<OrderPage> {
    // One more than asked tells whether a next page exists.
    let mut orders =
        orders_view::list(db, &request.filter, request.before, request.limit + 1).await?;
    let more = orders.len() as i64 > request.limit;
    orders.truncate(request.limit as usize);
    let next_cursor = more
        .then(|| orders.last().map(|o| encode_cursor(o.id)))
        .flatten();
    Ok(OrderPage {
        orders,
        next_cursor,
    })
}

/// The store codes the ledger has orders of.
///
/// # Errors
/// Postgres failed.
pub async fn stores_with_orders(db: &PgPool) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "SELECT DISTINCT store FROM (SELECT store FROM order_counts
                                     UNION ALL SELECT store FROM order_count_deltas) s
         ORDER BY store",
    )
    .fetch_all(db)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(f: impl FnOnce(&mut ListParams)) -> ListParams {
        let mut p = ListParams::default();
        f(&mut p);
        p
    }

    #[test]
    fn a_cursor_round_trips_and_a_forged_one_is_named() {
        assert_eq!(decode_cursor(&encode_cursor(1234)), Ok(1234));
        let err = decode_cursor("1234").unwrap_err();
        assert!(err.contains("cursor '1234'"), "{err}");
    }

    #[test]
    fn each_bad_filter_is_named_with_its_value() {
        let stores = vec!["ALPH".to_owned()];
        for (p, named) in [
            (params(|p| p.store = Some("NOPE".into())), "store 'NOPE'"),
            (
                params(|p| p.shop_status = Some("Drop table".into())),
                "shop_status 'Drop table'",
            ),
            (
                params(|p| p.courier_status = Some("lost".into())),
                "courier_status 'lost'",
            ),
            (
                params(|p| p.invoice_state = Some("maybe".into())),
                "invoice_state 'maybe'",
            ),
            (params(|p| p.q = Some("ab".into())), "q 'ab'"),
            (params(|p| p.limit = Some("0".into())), "limit '0'"),
        ] {
            let err = p.check(&stores).unwrap_err();
            assert!(err.contains(named), "{err} should name {named}");
        }
    }

    #[test]
    fn blank_filters_are_not_given_and_good_ones_pass() {
        let request = params(|p| {
            p.store = Some("ALPH".into());
            p.shop_status = Some("on-hold".into());
            p.courier_status = Some("none".into());
            p.invoice_state = Some("".into());
            p.q = Some(" 0555 ".into());
        })
        .check(&["ALPH".to_owned()])
        .unwrap();
        assert_eq!(request.filter.invoice_state, None);
        assert_eq!(request.filter.search.as_deref(), Some("0555"));
        assert_eq!(request.limit, DEFAULT_LIMIT);
    }
}
