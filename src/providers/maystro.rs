//! Maystro Delivery, the courier: page through a store's orders and read one.
//!
//! Every store has its own key, and an order created under one store is
//! invisible with another store's key: a burst of [`ErrorClass::NotFound`]
//! from [`MaystroClient::get_order`] is the symptom of a wrong key.

use crate::domain::Provider;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::transport::{class_for_status, de, excerpt, Account, Failure};
use super::{ErrorClass, ProviderError};

const PROVIDER: Provider = Provider::Maystro;

// ---------------------------------------------------------------------------
// UNCONFIRMED (Maystro publishes no docs; shapes come from public clients).
// Correct these here if the real API differs:
// - error bodies are Django REST Framework's `{"detail": "..."}`;
// - `previous`, page size (about 20) and `?limit=` are not relied on: paging
//   follows `page=N` until `next` is null;
// - the `?external_order_id=` / `?display_id=` filters and the history
//   endpoint are not used.
// ---------------------------------------------------------------------------

/// The human text of a Maystro error body, assumed to be DRF's `{"detail"}`.
fn error_detail(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct DrfError {
        detail: String,
    }
    serde_json::from_slice::<DrfError>(body)
        .ok()
        .map(|e| e.detail)
}

// ---------------------------------------------------------------------------

/// Maystro status codes with their French label (as shown in Maystro's
/// dashboard) and English name, from `providers.md`.
pub const STATUSES: [(i64, &str, &str); 18] = [
    (4, "CRÉÉ", "CREATED"),
    (5, "DEMANDE DE RAMASSAGE", "PICK_UP_REQUESTED"),
    (6, "EN COURS", "IN_PROCESS"),
    (8, "EN ATTENTE DE TRANSIT", "WAITING_TRANSIT"),
    (9, "EN TRANSIT POUR EXPÉDITION", "IN_TRANSIT_TO_BE_SHIPPED"),
    (10, "EN TRANSIT POUR RETOUR", "IN_TRANSIT_TO_BE_RETURNED"),
    (11, "EN ATTENTE", "PENDING"),
    (12, "EN RUPTURE DE STOCK", "OUT_OF_STOCK"),
    (15, "PRÊT À EXPÉDIER", "READY_TO_SHIP"),
    (22, "ASSIGNÉ", "ASSIGNED"),
    (31, "EXPÉDIÉ", "SHIPPED"),
    (32, "ALERTÉ", "ALERTED"),
    (41, "LIVRÉ", "DELIVERED"),
    (42, "REPORTÉ", "POSTPONED"),
    (50, "ANNULÉ", "ABORTED"),
    (51, "PRÊT À RETOURNER", "READY_TO_RETURN"),
    (52, "PRIS PAR LE MAGASIN", "TAKEN_BY_STORE"),
    (53, "NON REÇU", "NOT_RECEIVED"),
];

/// Statuses after which an order never changes: delivered, aborted, taken by store.
pub const FINAL_STATUSES: [i64; 3] = [41, 50, 52];

/// The (French, English) labels of a Maystro status code, or `None` for a
/// code not in [`STATUSES`].
pub fn status_label(code: i64) -> Option<(&'static str, &'static str)> {
    STATUSES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, fr, en)| (*fr, *en))
}

/// True for a status after which the order no longer needs polling.
pub fn is_final_status(code: i64) -> bool {
    FINAL_STATUSES.contains(&code)
}

/// One page of a store's orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaystroPage {
    /// Total number of orders for the store, over all pages.
    pub count: u64,
    /// URL of the next page; `None` on the last page.
    #[serde(default)]
    pub next: Option<String>,
    /// The orders on this page. An entry that is not a readable order (a
    /// status that is not a number, no id) is left out and logged, naming
    /// it: one bad record never fails the whole page (per-record isolation).
    #[serde(deserialize_with = "readable_orders")]
    pub results: Vec<MaystroOrder>,
}

/// The readable orders of a page's `results`; the others are logged.
fn readable_orders<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<MaystroOrder>, D::Error> {
    let entries = Vec::<serde_json::Value>::deserialize(deserializer)?;
    let mut orders = Vec::with_capacity(entries.len());
    for entry in entries {
        let id = entry.get("id").cloned();
        match serde_json::from_value::<MaystroOrder>(entry) {
            Ok(order) => orders.push(order),
            Err(e) => tracing::warn!(
                courier_order_id = %id.unwrap_or_default(),
                error = %e,
                "courier order left out: not a readable order"
            ),
        }
    }
    Ok(orders)
}

/// A Maystro order. Fields we do not name are kept in [`MaystroOrder::extra`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaystroOrder {
    /// Maystro's internal order id (used by `GET /stores/orders/{id}/`).
    pub id: i64,
    /// The human-facing tracking number; sent as a number or a string.
    #[serde(default, deserialize_with = "de::opt_string_or_number")]
    pub display_id: Option<String>,
    /// The shop's order reference.
    #[serde(default, deserialize_with = "de::opt_string_or_number")]
    pub external_order_id: Option<String>,
    /// Status code; see [`status_label`].
    pub status: i64,
    /// When Maystro last changed the order, as sent (ISO 8601).
    #[serde(default)]
    pub last_update: Option<String>,
    /// The customer's phone number, as sent.
    #[serde(default, deserialize_with = "de::opt_string_or_number")]
    pub customer_phone: Option<String>,
    /// Every other field of the order, unchanged.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl MaystroOrder {
    /// The (French, English) labels of this order's status, if known.
    pub fn status_label(&self) -> Option<(&'static str, &'static str)> {
        status_label(self.status)
    }

    /// `last_update` as an instant, when it is a readable ISO 8601 time
    /// (Django REST Framework writes an offset, e.g. `+01:00`; one without
    /// is read as UTC).
    pub fn updated_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let text = self.last_update.as_deref()?.trim();
        chrono::DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok()
            .or_else(|| {
                chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                    .ok()
                    .map(|t| t.and_utc())
            })
    }
}

/// A client for one Maystro store account (one key).
#[derive(Debug, Clone)]
pub struct MaystroClient {
    account: Account,
    base_url: String,
    key: SecretString,
    http: reqwest::Client,
}

impl MaystroClient {
    /// A client for `account`, calling `base_url` (the API root, e.g.
    /// `https://backend.maystro-delivery.com/api`) with the store's `key`.
    pub fn new(account: &str, base_url: &str, key: SecretString, http: reqwest::Client) -> Self {
        Self {
            account: Account::new(PROVIDER, account, vec![key.clone()]),
            base_url: base_url.trim_end_matches('/').to_owned(),
            key,
            http,
        }
    }

    /// The configured account name.
    pub fn account(&self) -> &str {
        self.account.name()
    }

    /// Reads page `page` (from 1) of the store's orders:
    /// `GET {base}/stores/orders/?page=N`.
    ///
    /// # Errors
    ///
    /// Transient: [`ErrorClass::Timeout`], [`ErrorClass::Connection`],
    /// [`ErrorClass::ServerError`] (5xx), [`ErrorClass::RateLimited`] (429,
    /// with `retry_after`). Permanent: [`ErrorClass::Unauthorized`] (401/403,
    /// bad key), [`ErrorClass::NotFound`] (404, e.g. a page past the end),
    /// [`ErrorClass::BadRequest`], [`ErrorClass::Decode`] (unexpected body).
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), page = page), err(Display, level = "debug"))]
    pub async fn list_orders_page(&self, page: u32) -> Result<MaystroPage, ProviderError> {
        #[derive(Deserialize)]
        struct Envelope {
            list: MaystroPage,
        }
        let url = format!("{}/stores/orders/?page={page}", self.base_url);
        let envelope: Envelope = self.get(url, &format!("orders page {page}")).await?;
        Ok(envelope.list)
    }

    /// Reads one order: `GET {base}/stores/orders/{id}/`.
    ///
    /// # Errors
    ///
    /// [`ErrorClass::NotFound`] when the order does not exist for this store's
    /// key (which is also what a wrong key for the store looks like); the
    /// other classes as for [`MaystroClient::list_orders_page`].
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), order_id = id), err(Display, level = "debug"))]
    pub async fn get_order(&self, id: i64) -> Result<MaystroOrder, ProviderError> {
        let url = format!("{}/stores/orders/{id}/", self.base_url);
        self.get(url, &format!("order {id}")).await
    }

    /// Checks the key by reading page 1, and returns the store's order count.
    ///
    /// # Errors
    ///
    /// As for [`MaystroClient::list_orders_page`]; [`ErrorClass::Unauthorized`]
    /// means the key is wrong.
    pub async fn check(&self) -> Result<u64, ProviderError> {
        Ok(self.list_orders_page(1).await?.count)
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        url: String,
        what: &str,
    ) -> Result<T, ProviderError> {
        let auth = self
            .account
            .auth_header(&format!("Token {}", self.key.expose_secret()))?;
        let request = self.http.get(url).header(AUTHORIZATION, auth);
        let (_, value) = self.account.fetch_json(request, classify, what).await?;
        Ok(value)
    }
}

/// Classifies a Maystro response: `None` for a success (2xx), otherwise the
/// failure. 401/403 Unauthorized, 404 NotFound, 429 RateLimited (with
/// `Retry-After`), 5xx ServerError, other 4xx BadRequest.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
    if status.is_success() {
        return None;
    }
    let class = class_for_status(status);
    let detail = error_detail(body).unwrap_or_else(|| excerpt(body));
    let message = match class {
        ErrorClass::Unauthorized => format!("the store key was refused: {detail}"),
        ErrorClass::NotFound => format!(
            "not found with this store's key (a wrong key for the store looks the same): {detail}"
        ),
        _ => detail,
    };
    Some(Failure::http(status, headers, class, message))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use axum::extract::{Path, Query};
    use axum::http::HeaderMap as AxHeaders;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;

    use super::*;
    use crate::providers::testing;

    const KEY: &str = "alph-secret-key";

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    fn classify_json(code: u16, body: serde_json::Value) -> Failure {
        classify(status(code), &HeaderMap::new(), body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn success_is_not_a_failure() {
        assert_eq!(classify(status(200), &HeaderMap::new(), b"{}"), None);
    }

    #[test]
    fn bad_token_is_permanent_unauthorized_with_the_detail() {
        for code in [401, 403] {
            let f = classify_json(code, json!({"detail": "Invalid token."}));
            assert_eq!(f.class, ErrorClass::Unauthorized);
            assert!(!f.class.is_transient());
            assert_eq!(f.http_status, Some(code));
            assert!(f.message.contains("Invalid token."), "{}", f.message);
        }
    }

    #[test]
    fn missing_order_is_not_found_and_hints_at_the_key() {
        let f = classify_json(404, json!({"detail": "Not found."}));
        assert_eq!(f.class, ErrorClass::NotFound);
        assert!(f.message.contains("wrong key"));
    }

    #[test]
    fn rate_limit_is_transient_with_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "30".parse().unwrap());
        let f = classify(status(429), &headers, b"").unwrap();
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert_eq!(f.retry_after, Some(Duration::from_secs(30)));
    }

    #[test]
    fn server_errors_are_transient_and_quote_the_page() {
        for code in [500, 502, 503, 504] {
            let f = classify(
                status(code),
                &HeaderMap::new(),
                b"<html><title>502 Bad Gateway</title></html>",
            )
            .unwrap();
            assert_eq!(f.class, ErrorClass::ServerError);
            assert!(f.class.is_transient());
            assert_eq!(f.message, "502 Bad Gateway");
        }
        assert_eq!(
            classify_json(400, json!({"detail": "bad"})).class,
            ErrorClass::BadRequest
        );
    }

    #[test]
    fn status_table_has_all_eighteen_codes() {
        assert_eq!(STATUSES.len(), 18);
        assert_eq!(
            status_label(9),
            Some(("EN TRANSIT POUR EXPÉDITION", "IN_TRANSIT_TO_BE_SHIPPED"))
        );
        assert_eq!(status_label(41), Some(("LIVRÉ", "DELIVERED")));
        assert_eq!(status_label(53), Some(("NON REÇU", "NOT_RECEIVED")));
        assert_eq!(status_label(7), None);
        let finals: Vec<_> = STATUSES
            .iter()
            .filter(|(c, _, _)| is_final_status(*c))
            .map(|(_, _, en)| *en)
            .collect();
        assert_eq!(finals, ["DELIVERED", "ABORTED", "TAKEN_BY_STORE"]);
    }

    fn order_json() -> serde_json::Value {
        json!({
            "id": 5501, "instance_uuid": "0b6d", "display_id": 771234,
            "external_order_id": "WC-1042", "status": 9,
            "last_update": "2024-05-02T10:11:12Z", "customer_phone": "0555123456",
            "customer_name": "Amina", "wilaya": 16, "product_price": "2500.00"
        })
    }

    #[test]
    fn order_accepts_a_numeric_display_id_and_keeps_unknown_fields() {
        let order: MaystroOrder = serde_json::from_value(order_json()).unwrap();
        assert_eq!(order.display_id.as_deref(), Some("771234"));
        assert_eq!(order.external_order_id.as_deref(), Some("WC-1042"));
        assert_eq!(order.status_label().unwrap().1, "IN_TRANSIT_TO_BE_SHIPPED");
        assert_eq!(order.extra["wilaya"], json!(16));
        assert_eq!(order.extra["customer_name"], json!("Amina"));
        assert!(!order.extra.contains_key("id"));

        let sparse: MaystroOrder =
            serde_json::from_value(json!({"id": 1, "status": 4, "display_id": "A-1"})).unwrap();
        assert_eq!(sparse.display_id.as_deref(), Some("A-1"));
        assert_eq!(sparse.external_order_id, None);
    }

    fn authorized(headers: &AxHeaders) -> bool {
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Token alph-secret-key")
    }

    async fn maystro() -> MaystroClient {
        let app = Router::new()
            .route(
                "/maystro/api/stores/orders/",
                get(
                    |headers: AxHeaders,
                     Query(q): Query<std::collections::HashMap<String, String>>| async move {
                        if !authorized(&headers) {
                            let body = Json(json!({"detail": "Invalid token."}));
                            return (StatusCode::UNAUTHORIZED, body).into_response();
                        }
                        let page = q.get("page").cloned().unwrap_or_default();
                        Json(json!({"list": {
                            "count": 21,
                            "next": if page == "1" { json!("http://x/api/stores/orders/?page=2") } else { json!(null) },
                            "previous": null,
                            "results": [order_json()]
                        }}))
                        .into_response()
                    },
                ),
            )
            .route(
                "/maystro/api/stores/orders/{id}/",
                get(|headers: AxHeaders, Path(id): Path<i64>| async move {
                    match id {
                        _ if !authorized(&headers) => StatusCode::UNAUTHORIZED.into_response(),
                        5501 => Json(order_json()).into_response(),
                        13 => "<html>not json</html>".into_response(),
                        _ => (StatusCode::NOT_FOUND, Json(json!({"detail": "Not found."})))
                            .into_response(),
                    }
                }),
            );
        let base = testing::serve(app).await;
        MaystroClient::new(
            "ALPH",
            &format!("{base}/maystro/api/"),
            KEY.into(),
            testing::client(),
        )
    }

    #[tokio::test]
    async fn lists_a_page_with_the_store_token() {
        let client = maystro().await;
        let first = client.list_orders_page(1).await.unwrap();
        assert_eq!(first.count, 21);
        assert!(first.next.is_some());
        assert_eq!(first.results[0].id, 5501);
        let second = client.list_orders_page(2).await.unwrap();
        assert_eq!(second.next, None);
        assert_eq!(client.check().await.unwrap(), 21);
    }

    #[tokio::test]
    async fn gets_one_order_or_not_found() {
        let client = maystro().await;
        let order = client.get_order(5501).await.unwrap();
        assert_eq!(order.display_id.as_deref(), Some("771234"));

        let err = client.get_order(42).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::NotFound);
        assert_eq!(err.http_status, Some(404));
        assert_eq!(err.account, "ALPH");
        assert!(err
            .to_string()
            .starts_with("maystro/ALPH not_found (HTTP 404): order 42:"));

        let err = client.get_order(13).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Decode);
        assert!(err.message.contains("not json"), "{}", err.message);
    }

    #[tokio::test]
    async fn a_wrong_key_is_unauthorized_and_never_quoted() {
        let base = maystro().await.base_url;
        let client = MaystroClient::new("ALPH", &base, "wrong-key".into(), testing::client());
        let err = client.check().await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Unauthorized);
        assert!(!err.is_transient());
        assert!(!format!("{err:?} {client:?}").contains("wrong-key"));
    }

    #[tokio::test]
    async fn unavailable_is_transient_then_recovers_and_429_carries_retry_after() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let app = Router::new().route(
            "/api/stores/orders/",
            get(move || {
                let call = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    match call {
                        0 => StatusCode::SERVICE_UNAVAILABLE.into_response(),
                        1 => {
                            (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "12")]).into_response()
                        }
                        _ => Json(json!({"list": {"count": 0, "next": null, "results": []}}))
                            .into_response(),
                    }
                }
            }),
        );
        let base = testing::serve(app).await;
        let client = MaystroClient::new("A", &format!("{base}/api"), KEY.into(), testing::client());

        let err = client.list_orders_page(1).await.unwrap_err();
        assert_eq!(
            (err.class, err.http_status),
            (ErrorClass::ServerError, Some(503))
        );
        assert!(err.is_transient());

        let err = client.list_orders_page(1).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::RateLimited);
        assert_eq!(err.retry_after, Some(Duration::from_secs(12)));

        assert_eq!(client.list_orders_page(1).await.unwrap().count, 0);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_hung_server_times_out_and_a_closed_port_is_a_connection_error() {
        let app = Router::new().route(
            "/api/stores/orders/",
            get(|| async {
                tokio::time::sleep(testing::HANG).await;
                "late"
            }),
        );
        let base = testing::serve(app).await;
        let client = MaystroClient::new("A", &format!("{base}/api"), KEY.into(), testing::client());
        let err = client.list_orders_page(1).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Timeout, "{err}");
        assert!(err.is_transient());

        let closed = testing::closed_port().await;
        let client = MaystroClient::new("A", &closed, KEY.into(), testing::client());
        let err = client.get_order(1).await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Connection, "{err}");
        assert!(!err.message.contains("127.0.0.1"), "{}", err.message);
    }
}
