//! WooCommerce REST v3, the shop: page through orders by modification time
//! and read one order, keeping the whole order JSON.

use crate::domain::Provider;
use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::transport::{class_for_status, de, excerpt, strip_html, Account, Failure};
use super::{ErrorClass, ProviderError};

const PROVIDER: Provider = Provider::Woocommerce;
/// WooCommerce refuses `per_page` above this (400 `rest_invalid_param`).
pub const MAX_PER_PAGE: u32 = 100;

// ---------------------------------------------------------------------------
// UNCONFIRMED (WooCommerce itself is documented; these are our readings):
// - `modified_after` is sent without an offset ("2024-05-01T08:00:00") and
//   `dates_are_gmt=true` makes WooCommerce read it as GMT;
// - 429 comes from hosts and WAFs, not WooCommerce, so its body is anything;
// - the `?consumer_key=&consumer_secret=` fallback for hosts that drop the
//   Authorization header is not implemented: Basic auth only.
// ---------------------------------------------------------------------------
const MODIFIED_AFTER_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// One page of orders, oldest modification first.
#[derive(Debug, Clone, PartialEq)]
pub struct WooPage {
    /// The orders on this page.
    pub orders: Vec<WooOrder>,
    /// Entries of this page that are not readable orders (a missing field, a
    /// wrong type), as JSON: one bad order never fails the whole page, it is
    /// reported on its own (see `crate::intake`).
    pub unreadable: Vec<serde_json::Value>,
    /// Orders matching the query over all pages (`X-WP-Total`). When a proxy
    /// strips the header: the orders seen up to and including this page.
    pub total: u64,
    /// Pages for the query (`X-WP-TotalPages`). When a proxy strips the
    /// header: this page if it was not full, else one more.
    pub total_pages: u32,
}

/// A WooCommerce order: the fields ordersync reads, plus the whole JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct WooOrder {
    /// The order id (used in `/orders/<id>`).
    pub id: i64,
    /// The order number shown to the customer (may differ from `id`).
    pub number: String,
    /// `pending`, `processing`, `on-hold`, `completed`, `cancelled`,
    /// `refunded`, `failed` or `trash`.
    pub status: String,
    /// Payment method id, e.g. `cod`.
    pub payment_method: String,
    /// Payment method as shown to the customer.
    pub payment_method_title: Option<String>,
    /// Order total, a decimal string with two places.
    pub total: String,
    /// Billing contact.
    pub billing: WooBilling,
    /// Last modification, GMT, as sent (`2024-05-01T08:00:00`).
    pub date_modified_gmt: Option<String>,
    /// Last modification, shop time zone, as sent.
    pub date_modified: Option<String>,
    /// The whole order object exactly as received.
    pub raw: serde_json::Value,
}

/// Billing contact of an order. WooCommerce's empty strings become `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct WooBilling {
    /// First name.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub last_name: Option<String>,
    /// Company.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub company: Option<String>,
    /// Address line 1.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub address_1: Option<String>,
    /// Address line 2.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub address_2: Option<String>,
    /// City.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub city: Option<String>,
    /// State or region code.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub state: Option<String>,
    /// Postal code.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub postcode: Option<String>,
    /// ISO country code.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub country: Option<String>,
    /// Email address.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub email: Option<String>,
    /// Phone number, as typed by the customer.
    #[serde(default, deserialize_with = "de::non_empty")]
    pub phone: Option<String>,
}

impl WooOrder {
    /// `date_modified_gmt` as a UTC instant, if present and readable.
    pub fn modified_at(&self) -> Option<DateTime<Utc>> {
        let text = self.date_modified_gmt.as_deref()?;
        NaiveDateTime::parse_from_str(text.trim_end_matches('Z'), MODIFIED_AFTER_FORMAT)
            .ok()
            .map(|naive| naive.and_utc())
    }
}

impl<'de> Deserialize<'de> for WooOrder {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            id: i64,
            #[serde(deserialize_with = "de::string_or_number")]
            number: String,
            status: String,
            #[serde(default)]
            payment_method: String,
            #[serde(default, deserialize_with = "de::non_empty")]
            payment_method_title: Option<String>,
            #[serde(deserialize_with = "de::string_or_number")]
            total: String,
            #[serde(default)]
            billing: WooBilling,
            #[serde(default)]
            date_modified_gmt: Option<String>,
            #[serde(default)]
            date_modified: Option<String>,
        }
        let raw = serde_json::Value::deserialize(deserializer)?;
        let f = Fields::deserialize(&raw).map_err(serde::de::Error::custom)?;
        Ok(Self {
            id: f.id,
            number: f.number,
            status: f.status,
            payment_method: f.payment_method,
            payment_method_title: f.payment_method_title,
            total: f.total,
            billing: f.billing,
            date_modified_gmt: f.date_modified_gmt,
            date_modified: f.date_modified,
            raw,
        })
    }
}

/// Serializes as the original order JSON ([`WooOrder::raw`]).
impl Serialize for WooOrder {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

/// A client for one WooCommerce store (one consumer key and secret).
#[derive(Debug, Clone)]
pub struct WooClient {
    account: Account,
    api_url: String,
    consumer_key: SecretString,
    consumer_secret: SecretString,
    http: reqwest::Client,
}

impl WooClient {
    /// A client for `store` at `site_url` (the WordPress site root, e.g.
    /// `https://shop.example.com`), authenticating with HTTP Basic.
    pub fn new(
        store: &str,
        site_url: &str,
        consumer_key: SecretString,
        consumer_secret: SecretString,
        http: reqwest::Client,
    ) -> Self {
        Self {
            account: Account::new(
                PROVIDER,
                store,
                vec![consumer_key.clone(), consumer_secret.clone()],
            ),
            api_url: format!("{}/wp-json/wc/v3", site_url.trim_end_matches('/')),
            consumer_key,
            consumer_secret,
            http,
        }
    }

    /// The configured store name.
    pub fn store(&self) -> &str {
        self.account.name()
    }

    /// Reads page `page` (from 1) of orders modified after `modified_after`
    /// (all orders if `None`), oldest modification first:
    /// `GET /wp-json/wc/v3/orders?page&per_page&orderby=modified&order=asc&dates_are_gmt=true[&modified_after]`.
    /// `per_page` is clamped to 1..=[`MAX_PER_PAGE`].
    ///
    /// # Errors
    ///
    /// Transient: [`ErrorClass::Timeout`], [`ErrorClass::Connection`],
    /// [`ErrorClass::ServerError`] (5xx), [`ErrorClass::RateLimited`] (429
    /// from a host or WAF, with `retry_after`). Permanent:
    /// [`ErrorClass::BadRequest`] (400, or 404 `rest_no_route`: the REST API
    /// is not there), [`ErrorClass::Unauthorized`] (401/403),
    /// [`ErrorClass::Decode`]. Messages carry WooCommerce's `code` and `message`.
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), store = %self.store(), page = page), err(Display, level = "debug"))]
    pub async fn list_orders(
        &self,
        page: u32,
        per_page: u32,
        modified_after: Option<DateTime<Utc>>,
    ) -> Result<WooPage, ProviderError> {
        let per_page = per_page.clamp(1, MAX_PER_PAGE);
        let mut query = vec![
            ("page", page.to_string()),
            ("per_page", per_page.to_string()),
            ("orderby", "modified".to_owned()),
            ("order", "asc".to_owned()),
            ("dates_are_gmt", "true".to_owned()),
        ];
        if let Some(after) = modified_after {
            let after = after.format(MODIFIED_AFTER_FORMAT).to_string();
            query.push(("modified_after", after));
        }
        let request = self
            .http
            .get(format!("{}/orders", self.api_url))
            .query(&query);
        let (headers, entries) = self
            .send::<Vec<serde_json::Value>>(request, &format!("orders page {page}"))
            .await?;
        let listed = entries.len();
        let mut orders = Vec::with_capacity(listed);
        let mut unreadable = Vec::new();
        for entry in entries {
            match WooOrder::deserialize(&entry) {
                Ok(order) => orders.push(order),
                Err(_) => unreadable.push(entry),
            }
        }
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        let seen = u64::from(page.saturating_sub(1)) * u64::from(per_page) + listed as u64;
        let full = listed as u64 >= u64::from(per_page);
        let total = header("x-wp-total").unwrap_or(seen);
        let total_pages = header("x-wp-totalpages")
            .map(|p| u32::try_from(p).unwrap_or(u32::MAX))
            .unwrap_or(if full { page.saturating_add(1) } else { page });
        Ok(WooPage {
            orders,
            unreadable,
            total,
            total_pages,
        })
    }

    /// Reads one order: `GET /wp-json/wc/v3/orders/<id>`.
    ///
    /// # Errors
    ///
    /// [`ErrorClass::NotFound`] (404 `woocommerce_rest_shop_order_invalid_id`)
    /// for an unknown order; the other classes as for [`WooClient::list_orders`].
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), store = %self.store(), order_id = id), err(Display, level = "debug"))]
    pub async fn get_order(&self, id: i64) -> Result<WooOrder, ProviderError> {
        let request = self.http.get(format!("{}/orders/{id}", self.api_url));
        Ok(self.send(request, &format!("order {id}")).await?.1)
    }

    /// Sets one order's status: `PUT /wp-json/wc/v3/orders/<id>` with
    /// `{"status": ...}`; returns the order as saved (its `date_modified`
    /// moved). WooCommerce has no conditional update: callers read the
    /// order's modification time first.
    ///
    /// # Errors
    ///
    /// An unknown order is a 400 `woocommerce_rest_shop_order_invalid_id`
    /// ([`ErrorClass::BadRequest`]); an unknown status a 400
    /// `rest_invalid_param`; the other classes as for [`WooClient::list_orders`].
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), store = %self.store(), order_id = id, status = %status), err(Display, level = "debug"))]
    pub async fn set_order_status(&self, id: i64, status: &str) -> Result<WooOrder, ProviderError> {
        let request = self
            .http
            .put(format!("{}/orders/{id}", self.api_url))
            .json(&serde_json::json!({ "status": status }));
        Ok(self
            .send(request, &format!("status {status} of order {id}"))
            .await?
            .1)
    }

    /// Checks the URL and keys by listing one order; returns the store's
    /// order count.
    ///
    /// # Errors
    ///
    /// As for [`WooClient::list_orders`]; [`ErrorClass::Unauthorized`] means
    /// the keys are wrong.
    pub async fn check(&self) -> Result<u64, ProviderError> {
        Ok(self.list_orders(1, 1, None).await?.total)
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(HeaderMap, T), ProviderError> {
        let request = request.basic_auth(
            self.consumer_key.expose_secret(),
            Some(self.consumer_secret.expose_secret()),
        );
        self.account.fetch_json(request, classify, what).await
    }
}

/// Classifies a WooCommerce response: `None` for a success (2xx), otherwise
/// the failure, with `"<code>: <message>"` from the `{"code","message",
/// "data":{"status"}}` body. 400 BadRequest, 401/403 Unauthorized, 404
/// NotFound (but `rest_no_route` is BadRequest: the API itself is missing,
/// no order is), 429 RateLimited, 5xx ServerError.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
    #[derive(Deserialize)]
    struct WpError {
        code: String,
        #[serde(default)]
        message: String,
    }
    if status.is_success() {
        return None;
    }
    let error = serde_json::from_slice::<WpError>(body).ok();
    let class = match &error {
        Some(e) if e.code == "rest_no_route" => ErrorClass::BadRequest,
        _ => class_for_status(status),
    };
    let message = match error {
        Some(e) => format!("{}: {}", e.code, strip_html(&e.message)),
        None => excerpt(body),
    };
    Some(Failure::http(status, headers, class, message))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::extract::{Path, Query};
    use axum::http::HeaderMap as AxHeaders;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::{Json, Router};
    use base64::Engine;
    use serde_json::json;

    use super::*;
    use crate::providers::testing;

    fn wp_error(code: u16, wc_code: &str, message: &str) -> Failure {
        let body = json!({"code": wc_code, "message": message, "data": {"status": code}});
        classify(
            StatusCode::from_u16(code).unwrap(),
            &HeaderMap::new(),
            body.to_string().as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn error_table() {
        let rows = [
            (
                400,
                "woocommerce_rest_shop_order_invalid_id",
                ErrorClass::BadRequest,
            ),
            (400, "rest_invalid_param", ErrorClass::BadRequest),
            (
                401,
                "woocommerce_rest_cannot_view",
                ErrorClass::Unauthorized,
            ),
            (
                403,
                "woocommerce_rest_authentication_error",
                ErrorClass::Unauthorized,
            ),
            (
                404,
                "woocommerce_rest_shop_order_invalid_id",
                ErrorClass::NotFound,
            ),
            (404, "rest_no_route", ErrorClass::BadRequest),
            (429, "too_many_requests", ErrorClass::RateLimited),
            (500, "internal_server_error", ErrorClass::ServerError),
            (503, "service_unavailable", ErrorClass::ServerError),
        ];
        for (status, code, class) in rows {
            let f = wp_error(status, code, "Invalid <b>ID</b>.");
            assert_eq!(f.class, class, "{status} {code}");
            assert_eq!(f.http_status, Some(status));
            assert_eq!(f.message, format!("{code}: Invalid ID."));
            assert_eq!(f.class.is_transient(), status == 429 || status >= 500);
        }
        assert_eq!(classify(StatusCode::OK, &HeaderMap::new(), b"[]"), None);
    }

    #[test]
    fn a_waf_429_page_is_rate_limited_with_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "60".parse().unwrap());
        let f = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &headers,
            b"<h1>Slow down</h1>",
        )
        .unwrap();
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert_eq!(f.retry_after, Some(Duration::from_secs(60)));
        assert_eq!(f.message, "Slow down");
    }

    fn order_json(id: i64) -> serde_json::Value {
        json!({
            "id": id, "number": format!("{}", 1000 + id), "status": "processing",
            "currency": "DZD", "total": "2500.00",
            "date_modified": "2024-05-01T09:00:00", "date_modified_gmt": "2024-05-01T08:00:00",
            "payment_method": "cod", "payment_method_title": "Cash on delivery",
            "billing": {"first_name": "Amina", "last_name": "", "phone": "0555123456", "email": ""},
            "line_items": [{"id": 1, "sku": "TSHIRT", "quantity": 2, "total": "2500.00"}],
            "meta_data": [{"id": 9, "key": "_maystro", "value": "771234"}]
        })
    }

    #[test]
    fn order_keeps_the_whole_json_and_normalises_empty_fields() {
        let order: WooOrder = serde_json::from_value(order_json(42)).unwrap();
        assert_eq!(order.number, "1042");
        assert_eq!(order.payment_method, "cod");
        assert_eq!(order.billing.phone.as_deref(), Some("0555123456"));
        assert_eq!(order.billing.last_name, None);
        assert_eq!(order.raw, order_json(42));
        assert_eq!(serde_json::to_value(&order).unwrap(), order_json(42));
        assert_eq!(
            order.modified_at().unwrap().to_rfc3339(),
            "2024-05-01T08:00:00+00:00"
        );
    }

    const CK: &str = "ck_0123456789";
    const CS: &str = "cs_abcdefghij";

    fn authorized(headers: &AxHeaders) -> bool {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{CK}:{CS}"))
        );
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
    }

    fn denied() -> axum::response::Response {
        let body = json!({"code": "woocommerce_rest_cannot_view",
            "message": "Sorry, you cannot list resources.", "data": {"status": 401}});
        (StatusCode::UNAUTHORIZED, Json(body)).into_response()
    }

    async fn shop() -> String {
        let app = Router::new()
            .route(
                "/shop/ALPH/wp-json/wc/v3/orders",
                get(
                    |headers: AxHeaders, Query(q): Query<HashMap<String, String>>| async move {
                        if !authorized(&headers) {
                            return denied();
                        }
                        let expected = [
                            ("page", "2"),
                            ("per_page", "100"),
                            ("orderby", "modified"),
                            ("order", "asc"),
                            ("dates_are_gmt", "true"),
                            ("modified_after", "2024-05-01T08:00:00"),
                        ];
                        let expected: HashMap<String, String> = expected
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect();
                        if q != expected && q.get("per_page").map(String::as_str) != Some("1") {
                            return (StatusCode::BAD_REQUEST, format!("unexpected query {q:?}"))
                                .into_response();
                        }
                        let headers = [("X-WP-Total", "102"), ("X-WP-TotalPages", "2")];
                        (headers, Json(json!([order_json(1), order_json(2)]))).into_response()
                    },
                ),
            )
            .route(
                "/shop/ALPH/wp-json/wc/v3/orders/{id}",
                get(|headers: AxHeaders, Path(id): Path<i64>| async move {
                    if !authorized(&headers) {
                        return denied();
                    }
                    if id == 42 {
                        return Json(order_json(42)).into_response();
                    }
                    let body = json!({"code": "woocommerce_rest_shop_order_invalid_id",
                        "message": "Invalid ID.", "data": {"status": 404}});
                    (StatusCode::NOT_FOUND, Json(body)).into_response()
                }),
            );
        format!("{}/shop/ALPH", testing::serve(app).await)
    }

    fn woo(site: &str, secret: &str) -> WooClient {
        WooClient::new("ALPH", site, CK.into(), secret.into(), testing::client())
    }

    #[tokio::test]
    async fn lists_a_page_with_basic_auth_and_pagination_headers() {
        let client = woo(&shop().await, CS);
        let after = "2024-05-01T08:00:00Z".parse::<DateTime<Utc>>().unwrap();
        let page = client.list_orders(2, 500, Some(after)).await.unwrap();
        assert_eq!((page.total, page.total_pages), (102, 2));
        assert_eq!(page.orders.len(), 2);
        assert_eq!(page.orders[1].raw["line_items"][0]["sku"], "TSHIRT");
        assert_eq!(client.check().await.unwrap(), 102);
    }

    #[tokio::test]
    async fn gets_an_order_or_a_permanent_not_found_with_the_code() {
        let client = woo(&shop().await, CS);
        assert_eq!(client.get_order(42).await.unwrap().id, 42);
        let err = client.get_order(7).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::NotFound);
        assert!(!err.is_transient());
        assert_eq!(
            err.message,
            "order 7: woocommerce_rest_shop_order_invalid_id: Invalid ID."
        );
    }

    #[tokio::test]
    async fn wrong_keys_are_unauthorized() {
        let client = woo(&shop().await, "cs_wrong");
        let err = client.check().await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Unauthorized);
        assert!(err.message.contains("woocommerce_rest_cannot_view"));
    }

    #[tokio::test]
    async fn missing_pagination_headers_fall_back_to_the_page_size() {
        let app = Router::new().route(
            "/wp-json/wc/v3/orders",
            get(|| async { Json(json!([order_json(1), order_json(2)])) }),
        );
        let client = woo(&testing::serve(app).await, CS);
        let full = client.list_orders(3, 2, None).await.unwrap();
        assert_eq!((full.total, full.total_pages), (6, 4));
        let partial = client.list_orders(3, 5, None).await.unwrap();
        assert_eq!((partial.total, partial.total_pages), (12, 3));
    }

    #[tokio::test]
    async fn outage_rate_limit_and_hang_are_transient() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = Router::new().route(
            "/wp-json/wc/v3/orders/{id}",
            get(move || {
                let call = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    match call {
                        0 => (StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
                        1 => {
                            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "3")]).into_response()
                        }
                        2 => Json(order_json(5)).into_response(),
                        _ => {
                            tokio::time::sleep(testing::HANG).await;
                            Json(order_json(5)).into_response()
                        }
                    }
                }
            }),
        );
        let client = woo(&testing::serve(app).await, CS);
        let err = client.get_order(5).await.unwrap_err();
        assert_eq!(
            (err.class, err.http_status),
            (ErrorClass::ServerError, Some(503))
        );
        let err = client.get_order(5).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::RateLimited);
        assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(client.get_order(5).await.unwrap().number, "1005");
        let err = client.get_order(5).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Timeout);
        assert!(err.is_transient());
    }
}
