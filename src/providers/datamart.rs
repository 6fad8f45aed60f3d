//! Datamart, a data-bundle reseller used as a status source: one order's
//! status by the shop's reference. It has no webhooks and no listing, so
//! its orders are polled one by one (domain.md section 3).

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::transport::{class_for_status, de, excerpt, Account, Failure};
use super::{ErrorClass, ProviderError};
use crate::domain::{NormalizedStatus, Provider};

const PROVIDER: Provider = Provider::Datamart;

// ---------------------------------------------------------------------------
// UNCONFIRMED (third-party sources, low confidence; providers.md section 7).
// Correct these here if the real API differs:
// - error bodies are `{"message": "..."}` (seen for 404 only);
// - `createdAt` / `updatedAt` are ISO 8601 with an offset or `Z`.
// ---------------------------------------------------------------------------

/// The human text of a Datamart error body.
fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Body {
        message: String,
    }
    serde_json::from_slice::<Body>(body).ok().map(|b| b.message)
}

// ---------------------------------------------------------------------------

/// Datamart's order statuses, in the order an order goes through them, with
/// the normalized status each maps to. A bundle that failed or was refunded
/// never reaches the customer: both end the order as cancelled. A status's
/// position (from 1) is the numeric code the ledger keeps beside it.
pub const STATUSES: [(&str, NormalizedStatus); 6] = [
    ("pending", NormalizedStatus::Pending),
    ("waiting", NormalizedStatus::Pending),
    ("processing", NormalizedStatus::Processing),
    ("completed", NormalizedStatus::Delivered),
    ("failed", NormalizedStatus::Cancelled),
    ("refunded", NormalizedStatus::Cancelled),
];

/// The (code, normalized status) of a Datamart `orderStatus`; an unknown
/// one is (0, `unknown`) and keeps being polled.
pub fn map_status(status: &str) -> (i32, NormalizedStatus) {
    let status = status.trim().to_lowercase();
    STATUSES
        .iter()
        .zip(1..)
        .find(|((known, _), _)| *known == status)
        .map_or((0, NormalizedStatus::Unknown), |((_, s), code)| (code, *s))
}

/// A Datamart order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatamartOrder {
    /// Datamart's id of the order.
    #[serde(deserialize_with = "de::string_or_number")]
    pub order_id: String,
    /// The shop's reference.
    pub reference: String,
    /// The number the bundle is for.
    #[serde(default, deserialize_with = "de::opt_string_or_number")]
    pub phone_number: Option<String>,
    /// `pending`, `waiting`, `processing`, `completed`, `failed`, `refunded`.
    pub order_status: String,
    /// When the status last changed, as sent.
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl DatamartOrder {
    /// `updatedAt` as an instant, when readable.
    pub fn updated(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(self.updated_at.as_deref()?.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// A client for one Datamart developer key.
#[derive(Debug, Clone)]
pub struct DatamartClient {
    account: Account,
    base_url: String,
    key: SecretString,
    http: reqwest::Client,
}

impl DatamartClient {
    /// A client for `account` calling `base_url` (e.g.
    /// `https://api.datamartgh.shop/api/developer`) with its `X-API-Key`.
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

    /// The order with the shop's `reference`: `GET {base}/order-status/{reference}`.
    ///
    /// # Errors
    ///
    /// [`ErrorClass::NotFound`] for a reference Datamart does not know (also
    /// what another account's key sees); [`ErrorClass::Unauthorized`] for a
    /// refused key; transient for 429, 5xx, timeouts and connection errors;
    /// [`ErrorClass::Decode`] for an unexpected body.
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), reference = reference), err(Display, level = "debug"))]
    pub async fn order_status(&self, reference: &str) -> Result<DatamartOrder, ProviderError> {
        #[derive(Deserialize)]
        struct Envelope {
            data: DatamartOrder,
        }
        let mut url = url::Url::parse(&format!("{}/", self.base_url)).map_err(|_| {
            self.account.error(Failure::local(
                ErrorClass::BadRequest,
                "the configured base_url is not a URL",
            ))
        })?;
        // One path segment, escaped: a reference cannot reach another route.
        url.path_segments_mut()
            .map_err(|()| {
                self.account.error(Failure::local(
                    ErrorClass::BadRequest,
                    "the configured base_url cannot take a path",
                ))
            })?
            .pop_if_empty()
            .extend(["order-status", reference]);
        let key = self.account.auth_header(self.key.expose_secret())?;
        let request = self.http.get(url).header("X-API-Key", key);
        let (_, envelope): (_, Envelope) = self
            .account
            .fetch_json(request, classify, &format!("order {reference}"))
            .await?;
        Ok(envelope.data)
    }

    /// Checks the key with an order that cannot exist: "not found" means
    /// the key was accepted.
    ///
    /// # Errors
    ///
    /// As for [`DatamartClient::order_status`], except not found.
    pub async fn check(&self) -> Result<(), ProviderError> {
        match self.order_status("ordersync-key-check").await {
            Ok(_) => Ok(()),
            Err(e) if e.class == ErrorClass::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Classifies a Datamart response: `None` for 2xx; 401/403 Unauthorized,
/// 404 NotFound, 429 RateLimited, 5xx ServerError, other 4xx BadRequest.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
    if status.is_success() {
        return None;
    }
    let class = class_for_status(status);
    let detail = error_message(body).unwrap_or_else(|| excerpt(body));
    let message = match class {
        ErrorClass::Unauthorized => format!("the API key was refused: {detail}"),
        _ => detail,
    };
    Some(Failure::http(status, headers, class, message))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::extract::Path;
    use axum::http::HeaderMap as AxHeaders;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;

    use super::*;
    use crate::providers::testing;

    const KEY: &str = "dm-secret-key";

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    #[test]
    fn each_status_maps_and_only_the_ends_are_final() {
        let mapped: Vec<(&str, i32, &str, bool)> = STATUSES
            .iter()
            .map(|(s, _)| {
                let (code, n) = map_status(s);
                (*s, code, n.as_str(), n.is_final())
            })
            .collect();
        assert_eq!(
            mapped,
            [
                ("pending", 1, "pending", false),
                ("waiting", 2, "pending", false),
                ("processing", 3, "processing", false),
                ("completed", 4, "delivered", true),
                ("failed", 5, "cancelled", true),
                ("refunded", 6, "cancelled", true),
            ]
        );
        assert_eq!(map_status("Completed "), (4, NormalizedStatus::Delivered));
        assert_eq!(map_status("on_hold"), (0, NormalizedStatus::Unknown));
    }

    #[test]
    fn classification() {
        let f = classify(
            status(404),
            &HeaderMap::new(),
            br#"{"message":"Order not found"}"#,
        )
        .unwrap();
        assert_eq!(
            (f.class, f.message.as_str()),
            (ErrorClass::NotFound, "Order not found")
        );
        let f = classify(
            status(401),
            &HeaderMap::new(),
            br#"{"message":"Invalid API key"}"#,
        )
        .unwrap();
        assert_eq!(f.class, ErrorClass::Unauthorized);
        assert!(f.message.contains("Invalid API key"));
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "5".parse().unwrap());
        let f = classify(status(429), &headers, b"").unwrap();
        assert_eq!(
            (f.class, f.retry_after),
            (ErrorClass::RateLimited, Some(Duration::from_secs(5)))
        );
        assert!(classify(status(502), &HeaderMap::new(), b"")
            .unwrap()
            .class
            .is_transient());
        assert_eq!(classify(status(200), &HeaderMap::new(), b"{}"), None);
    }

    async fn datamart() -> String {
        let app = Router::new().route(
            "/api/developer/order-status/{reference}",
            get(
                |headers: AxHeaders, Path(reference): Path<String>| async move {
                    if headers.get("x-api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
                        return (
                            StatusCode::UNAUTHORIZED,
                            Json(json!({"message": "Invalid API key"})),
                        )
                            .into_response();
                    }
                    if reference != "DATA-7/1" {
                        return (
                            StatusCode::NOT_FOUND,
                            Json(json!({"message": "Order not found"})),
                        )
                            .into_response();
                    }
                    Json(json!({"status": "success", "data": {
                    "orderId": 9001, "reference": reference, "phoneNumber": "0241234567",
                    "network": "MTN", "capacity": "5", "price": 23.5, "orderStatus": "processing",
                    "createdAt": "2026-12-01T10:00:00.000Z", "updatedAt": "2026-12-01T10:05:00.000Z"
                }}))
                .into_response()
                },
            ),
        );
        format!("{}/api/developer", testing::serve(app).await)
    }

    #[tokio::test]
    async fn reads_an_order_by_its_escaped_reference_or_says_not_found() {
        let base = datamart().await;
        let client = DatamartClient::new("dm", &base, KEY.into(), testing::client());
        let order = client.order_status("DATA-7/1").await.unwrap();
        assert_eq!(order.order_id, "9001");
        assert_eq!(order.order_status, "processing");
        assert_eq!(
            order.updated().unwrap().to_rfc3339(),
            "2026-12-01T10:05:00+00:00"
        );
        let err = client.order_status("DATA-8").await.unwrap_err();
        assert_eq!(err.class, ErrorClass::NotFound);
        assert!(
            err.to_string()
                .starts_with("datamart/dm not_found (HTTP 404): order DATA-8: Order not found"),
            "{err}"
        );
        client.check().await.unwrap();

        let wrong = DatamartClient::new("dm", &base, "wrong-key".into(), testing::client());
        let err = wrong.check().await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Unauthorized);
        assert!(!format!("{err} {err:?} {wrong:?}").contains("wrong-key"));
    }
}
