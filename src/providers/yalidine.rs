//! Yalidine, the second courier: its parcels (listed page by page, or looked
//! up by tracking number or by the shop's order id), their histories, and
//! its status labels mapped to our normalized statuses.
//!
//! Yalidine meters every account per second, minute, hour and day and says
//! what is left in `x-{second,minute,hour,day}-quota-left` on each response.
//! Nothing here reads them: every request goes through the account's gate
//! (`super::transport`), which pauses the whole account, in every worker
//! process, when a window is spent (`super::gate::slow_down_for`), before
//! Yalidine starts answering 429 and, for repeat offenders, disabling access.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone as _, Utc};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::transport::{class_for_status, de, excerpt, Account, Failure};
use super::{ErrorClass, ProviderError};
use crate::domain::{NormalizedStatus, Provider};

const PROVIDER: Provider = Provider::Yalidine;

/// Parcels asked for per page. Yalidine allows 1 to 1000 (default 100);
/// 100 keeps one page's body small while 10,000 parcels stay 100 requests.
pub const PAGE_SIZE: u32 = 100;

// ---------------------------------------------------------------------------
// UNCONFIRMED (the official doc's shapes are confirmed; these are not).
// Correct these here if the real API differs:
// - error bodies are `{"error": {"code": N, "message": "..."}}`;
// - `?order_id=` filters parcels by the shop's order id as `?tracking=` does
//   by tracking number;
// - `date_last_status` and `date_status` are written `YYYY-MM-DD HH:MM:SS`
//   in Algerian time (UTC+1, no daylight saving) when they carry no offset.
// ---------------------------------------------------------------------------

/// The human text of a Yalidine error body.
fn error_message(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        message: String,
    }
    serde_json::from_slice::<Body>(body)
        .ok()
        .map(|b| b.error.message)
}

/// Algerian time (UTC+1 all year), in which Yalidine writes times without
/// an offset.
const ALGERIA_UTC_OFFSET_SECS: i32 = 3600;

fn algeria() -> FixedOffset {
    FixedOffset::east_opt(ALGERIA_UTC_OFFSET_SECS).expect("UTC+1 is a valid offset")
}

/// A Yalidine time as an instant: RFC 3339 when it has an offset, else
/// `YYYY-MM-DD HH:MM:SS` (or with a `T`) in Algerian time.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    algeria()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

// ---------------------------------------------------------------------------

/// Yalidine's status labels (from its API doc) with the normalized status
/// each maps to. A label's position (from 1) is the numeric code the ledger
/// keeps beside it: Yalidine itself has labels only.
pub const STATUSES: [(&str, NormalizedStatus); 9] = [
    ("Pas encore expédié", NormalizedStatus::Pending),
    ("En préparation", NormalizedStatus::Processing),
    ("Expédié", NormalizedStatus::InTransit),
    ("Centre", NormalizedStatus::InTransit),
    ("Sorti en livraison", NormalizedStatus::OutForDelivery),
    ("Tentative échouée", NormalizedStatus::DeliveryIssue),
    ("Livré", NormalizedStatus::Delivered),
    // Delivery given up: the parcel now travels back to the seller.
    ("Echèc livraison", NormalizedStatus::Returning),
    ("Retourné au vendeur", NormalizedStatus::Returned),
];

/// The code of a label we do not know; its status is `unknown`, which is
/// not final, so the order keeps being polled.
pub const UNKNOWN_CODE: i32 = 0;

/// The (code, normalized status) of a Yalidine label. Case and surrounding
/// spaces are ignored; an unknown label is ([`UNKNOWN_CODE`], `unknown`).
pub fn map_status(label: &str) -> (i32, NormalizedStatus) {
    let label = label.trim().to_lowercase();
    STATUSES
        .iter()
        .zip(1..)
        .find(|((known, _), _)| known.to_lowercase() == label)
        .map_or(
            (UNKNOWN_CODE, NormalizedStatus::Unknown),
            |((_, s), code)| (code, *s),
        )
}

/// One page of a Yalidine listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct YalidinePage<T> {
    /// More pages follow this one.
    pub has_more: bool,
    /// Entries over all pages.
    pub total_data: u64,
    /// This page's entries.
    pub data: Vec<T>,
}

/// A Yalidine parcel. Fields we do not name are kept in [`Parcel::extra`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    /// The tracking number (e.g. `yal-4A7B9C`).
    pub tracking: String,
    /// The shop's order reference, as given when the parcel was created.
    #[serde(default, deserialize_with = "de::opt_string_or_number")]
    pub order_id: Option<String>,
    /// The current status label; see [`map_status`].
    #[serde(default)]
    pub last_status: Option<String>,
    /// When the status last changed, as sent.
    #[serde(default)]
    pub date_last_status: Option<String>,
    /// Whether the seller has been paid for it (`not-ready`, `ready`, `receivable`, `payed`).
    #[serde(default)]
    pub payment_status: Option<String>,
    /// URL of the parcel's label (PDF).
    #[serde(default)]
    pub label: Option<String>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Parcel {
    /// The (code, normalized status) of the parcel's last status.
    pub fn status(&self) -> (i32, NormalizedStatus) {
        map_status(self.last_status.as_deref().unwrap_or_default())
    }

    /// `date_last_status` as an instant, when readable.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        parse_time(self.date_last_status.as_deref()?)
    }
}

/// One status change of a parcel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// The parcel.
    pub tracking: String,
    /// The status label reached.
    pub status: String,
    /// When, as sent.
    pub date_status: String,
    /// Why (a failed attempt's reason, e.g. "Client absent"), if given.
    #[serde(default)]
    pub reason: Option<String>,
    /// Every other field, unchanged.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A client for one Yalidine account (one API id and token).
#[derive(Debug, Clone)]
pub struct YalidineClient {
    account: Account,
    base_url: String,
    api_id: SecretString,
    token: SecretString,
    http: reqwest::Client,
}

impl YalidineClient {
    /// A client for `account`, calling `base_url` (the API root, e.g.
    /// `https://api.yalidine.app/v1`) with its API id and token.
    pub fn new(
        account: &str,
        base_url: &str,
        api_id: SecretString,
        token: SecretString,
        http: reqwest::Client,
    ) -> Self {
        Self {
            account: Account::new(PROVIDER, account, vec![api_id.clone(), token.clone()]),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_id,
            token,
            http,
        }
    }

    /// The configured account name.
    pub fn account(&self) -> &str {
        self.account.name()
    }

    /// Reads page `page` (from 1) of the account's parcels, [`PAGE_SIZE`]
    /// to a page: `GET {base}/parcels/?page=N&page_size=100`.
    ///
    /// # Errors
    ///
    /// Transient: [`ErrorClass::Timeout`], [`ErrorClass::Connection`],
    /// [`ErrorClass::ServerError`] (5xx), [`ErrorClass::RateLimited`] (429,
    /// with `retry_after`). Permanent: [`ErrorClass::Unauthorized`] (401/403,
    /// bad id or token), [`ErrorClass::BadRequest`], [`ErrorClass::Decode`].
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), page = page), err(Display, level = "debug"))]
    pub async fn list_parcels_page(
        &self,
        page: u32,
    ) -> Result<YalidinePage<Parcel>, ProviderError> {
        let query = [
            ("page", page.to_string()),
            ("page_size", PAGE_SIZE.to_string()),
        ];
        self.get("parcels/", &query, &format!("parcels page {page}"))
            .await
    }

    /// The parcel with this tracking number: `GET {base}/parcels/?tracking=T`.
    ///
    /// # Errors
    ///
    /// [`ErrorClass::NotFound`] when the account has no such parcel
    /// (Yalidine answers an empty page, `total_data: 0`); the other classes
    /// as for [`YalidineClient::list_parcels_page`].
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), tracking = tracking), err(Display, level = "debug"))]
    pub async fn parcel_by_tracking(&self, tracking: &str) -> Result<Parcel, ProviderError> {
        let what = format!("parcel {tracking}");
        let page: YalidinePage<Parcel> = self
            .get("parcels/", &[("tracking", tracking.to_owned())], &what)
            .await?;
        self.only(page, &what)
    }

    /// The parcel created for the shop's order `order_id`:
    /// `GET {base}/parcels/?order_id=R`.
    ///
    /// # Errors
    ///
    /// As for [`YalidineClient::parcel_by_tracking`].
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), order_id = order_id), err(Display, level = "debug"))]
    pub async fn parcel_by_order_id(&self, order_id: &str) -> Result<Parcel, ProviderError> {
        let what = format!("parcel of order {order_id}");
        let page: YalidinePage<Parcel> = self
            .get("parcels/", &[("order_id", order_id.to_owned())], &what)
            .await?;
        self.only(page, &what)
    }

    /// A parcel's status changes (the first page, up to [`PAGE_SIZE`]):
    /// `GET {base}/histories/?tracking=T`.
    ///
    /// # Errors
    ///
    /// As for [`YalidineClient::list_parcels_page`].
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account(), tracking = tracking), err(Display, level = "debug"))]
    pub async fn histories(&self, tracking: &str) -> Result<Vec<HistoryEntry>, ProviderError> {
        let query = [
            ("tracking", tracking.to_owned()),
            ("page_size", PAGE_SIZE.to_string()),
        ];
        let page: YalidinePage<HistoryEntry> = self
            .get("histories/", &query, &format!("history of {tracking}"))
            .await?;
        Ok(page.data)
    }

    /// Checks the id and token by reading page 1, and returns the number of
    /// parcels the account holds.
    ///
    /// # Errors
    ///
    /// As for [`YalidineClient::list_parcels_page`].
    pub async fn check(&self) -> Result<u64, ProviderError> {
        Ok(self.list_parcels_page(1).await?.total_data)
    }

    /// The one parcel of a filtered page, or [`ErrorClass::NotFound`].
    fn only(&self, page: YalidinePage<Parcel>, what: &str) -> Result<Parcel, ProviderError> {
        page.data.into_iter().next().ok_or_else(|| {
            self.account.error(Failure::local(
                ErrorClass::NotFound,
                format!("{what}: not found with this account's id and token (a wrong account for the store looks the same)"),
            ))
        })
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<T, ProviderError> {
        let api_id = self.account.auth_header(self.api_id.expose_secret())?;
        let token = self.account.auth_header(self.token.expose_secret())?;
        let request = self
            .http
            .get(format!("{}/{path}", self.base_url))
            .query(query)
            .header("X-API-ID", api_id)
            .header("X-API-TOKEN", token);
        let (_, value) = self.account.fetch_json(request, classify, what).await?;
        Ok(value)
    }
}

/// Classifies a Yalidine response: `None` for a success (2xx), otherwise
/// the failure. 401/403 Unauthorized, 404 NotFound, 429 RateLimited (with
/// `Retry-After`: Yalidine disables an account that keeps going), 5xx
/// ServerError, other 4xx BadRequest.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
    if status.is_success() {
        return None;
    }
    let class = class_for_status(status);
    let detail = error_message(body).unwrap_or_else(|| excerpt(body));
    let message = match class {
        ErrorClass::Unauthorized => format!("the API id or token was refused: {detail}"),
        ErrorClass::RateLimited => format!("over the account's quota: {detail}"),
        _ => detail,
    };
    Some(Failure::http(status, headers, class, message))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::extract::Query;
    use axum::http::HeaderMap as AxHeaders;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::{Json, Router};
    use serde_json::json;

    use super::*;
    use crate::providers::gate::{
        self, Admission, GateFuture, Permit, RequestGate, RequestOutcome,
    };
    use crate::providers::testing;

    const API_ID: &str = "yal-api-id-0042";
    const TOKEN: &str = "yal-secret-token";

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    fn error_body(code: u16, message: &str) -> Vec<u8> {
        json!({"error": {"code": code, "message": message}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn success_is_not_a_failure() {
        assert_eq!(classify(status(200), &HeaderMap::new(), b"{}"), None);
    }

    #[test]
    fn a_refused_id_or_token_is_permanent_and_quotes_yalidine() {
        for code in [401, 403] {
            let f = classify(
                status(code),
                &HeaderMap::new(),
                &error_body(code, "Invalid credentials"),
            )
            .unwrap();
            assert_eq!(f.class, ErrorClass::Unauthorized);
            assert!(!f.class.is_transient());
            assert!(f.message.contains("Invalid credentials"), "{}", f.message);
        }
    }

    #[test]
    fn over_quota_is_transient_with_its_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "42".parse().unwrap());
        let f = classify(status(429), &headers, &error_body(429, "Too many requests")).unwrap();
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert!(f.class.is_transient());
        assert_eq!(f.retry_after, Some(Duration::from_secs(42)));
        assert!(f.message.contains("quota"), "{}", f.message);
    }

    #[test]
    fn server_errors_are_transient_other_4xx_permanent() {
        for code in [500, 502, 503, 504] {
            let f = classify(status(code), &HeaderMap::new(), b"<h1>Bad Gateway</h1>").unwrap();
            assert_eq!(f.class, ErrorClass::ServerError);
            assert!(f.class.is_transient());
            assert_eq!(f.message, "Bad Gateway");
        }
        let f = classify(
            status(400),
            &HeaderMap::new(),
            &error_body(400, "page_size must be 1 to 1000"),
        )
        .unwrap();
        assert_eq!(f.class, ErrorClass::BadRequest);
        assert_eq!(f.message, "page_size must be 1 to 1000");
        assert_eq!(
            classify(status(404), &HeaderMap::new(), b"").unwrap().class,
            ErrorClass::NotFound
        );
    }

    #[test]
    fn each_label_maps_and_unknown_ones_keep_polling() {
        let mapped: Vec<(i32, &str)> = STATUSES
            .iter()
            .map(|(label, _)| {
                let (code, status) = map_status(label);
                (code, status.as_str())
            })
            .collect();
        assert_eq!(
            mapped,
            [
                (1, "pending"),
                (2, "processing"),
                (3, "in_transit"),
                (4, "in_transit"),
                (5, "out_for_delivery"),
                (6, "delivery_issue"),
                (7, "delivered"),
                (8, "returning"),
                (9, "returned"),
            ]
        );
        assert_eq!(map_status(" livré "), (7, NormalizedStatus::Delivered));
        let (code, unknown) = map_status("Vers Wilaya");
        assert_eq!((code, unknown), (UNKNOWN_CODE, NormalizedStatus::Unknown));
        assert!(!unknown.is_final());
        let finals: Vec<&str> = STATUSES
            .iter()
            .filter(|(_, s)| s.is_final())
            .map(|(l, _)| *l)
            .collect();
        assert_eq!(finals, ["Livré", "Retourné au vendeur"]);
    }

    #[test]
    fn times_without_an_offset_are_algerian() {
        assert_eq!(
            parse_time("2024-05-02 10:11:12").unwrap().to_rfc3339(),
            "2024-05-02T09:11:12+00:00"
        );
        assert_eq!(
            parse_time("2024-05-02T10:11:12Z").unwrap().to_rfc3339(),
            "2024-05-02T10:11:12+00:00"
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    fn parcel_json(tracking: &str, order_id: &str, status: &str) -> serde_json::Value {
        json!({
            "tracking": tracking, "order_id": order_id, "last_status": status,
            "date_last_status": "2024-05-02 10:11:12", "payment_status": "not-ready",
            "label": "https://yalidine.app/app/bordereau.php?tracking=x",
            "firstname": "Amina", "to_wilaya_name": "Alger"
        })
    }

    fn authorized(headers: &AxHeaders) -> bool {
        headers.get("x-api-id").and_then(|v| v.to_str().ok()) == Some(API_ID)
            && headers.get("x-api-token").and_then(|v| v.to_str().ok()) == Some(TOKEN)
    }

    fn refused() -> axum::response::Response {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": 401, "message": "Invalid credentials"}})),
        )
            .into_response()
    }

    /// Three parcels, two to a page, found by tracking or order id.
    async fn yalidine() -> String {
        let parcels = vec![
            parcel_json("yal-AAA111", "ALPH-1", "Centre"),
            parcel_json("yal-BBB222", "ALPH-2", "Livré"),
            parcel_json("yal-CCC333", "BETA-9", "Vers Wilaya"),
        ];
        let list = move |headers: AxHeaders, Query(q): Query<HashMap<String, String>>| {
            let parcels = parcels.clone();
            async move {
                if !authorized(&headers) {
                    return refused();
                }
                let matching: Vec<_> = parcels
                    .into_iter()
                    .filter(|p| q.get("tracking").is_none_or(|t| p["tracking"] == **t))
                    .filter(|p| q.get("order_id").is_none_or(|o| p["order_id"] == **o))
                    .collect();
                let page: usize = q.get("page").map_or(1, |p| p.parse().unwrap());
                let size = 2;
                let data: Vec<_> = matching
                    .iter()
                    .skip((page - 1) * size)
                    .take(size)
                    .cloned()
                    .collect();
                let headers = [("x-second-quota-left", "4"), ("x-day-quota-left", "9000")];
                let body = json!({
                    "has_more": page * size < matching.len(),
                    "total_data": matching.len(),
                    "data": data,
                    "links": {"self": "x", "before": null, "next": null}
                });
                (headers, Json(body)).into_response()
            }
        };
        let histories = |headers: AxHeaders, Query(q): Query<HashMap<String, String>>| async move {
            if !authorized(&headers) {
                return refused();
            }
            let tracking = q.get("tracking").cloned().unwrap_or_default();
            Json(json!({"has_more": false, "total_data": 2, "links": {}, "data": [
                {"tracking": tracking, "status": "Sorti en livraison", "date_status": "2024-05-02 09:00:00", "reason": ""},
                {"tracking": tracking, "status": "Tentative échouée", "date_status": "2024-05-02 10:11:12", "reason": "Client absent"}
            ]}))
            .into_response()
        };
        let app = Router::new()
            .route("/v1/parcels/", get(list))
            .route("/v1/histories/", get(histories));
        format!("{}/v1/", testing::serve(app).await)
    }

    fn client(base: &str, token: &str) -> YalidineClient {
        YalidineClient::new("yal", base, API_ID.into(), token.into(), testing::client())
    }

    #[tokio::test]
    async fn pages_until_has_more_is_false() {
        let client = client(&yalidine().await, TOKEN);
        let first = client.list_parcels_page(1).await.unwrap();
        assert!(first.has_more);
        assert_eq!(first.total_data, 3);
        assert_eq!(first.data.len(), 2);
        let second = client.list_parcels_page(2).await.unwrap();
        assert!(!second.has_more);
        assert_eq!(second.data[0].tracking, "yal-CCC333");
        assert_eq!(
            second.data[0].status(),
            (UNKNOWN_CODE, NormalizedStatus::Unknown)
        );
        assert_eq!(second.data[0].extra["to_wilaya_name"], json!("Alger"));
        assert_eq!(client.check().await.unwrap(), 3);
    }

    #[tokio::test]
    async fn finds_a_parcel_by_tracking_or_order_id_or_says_not_found() {
        let client = client(&yalidine().await, TOKEN);
        let by_tracking = client.parcel_by_tracking("yal-BBB222").await.unwrap();
        assert_eq!(by_tracking.order_id.as_deref(), Some("ALPH-2"));
        assert_eq!(by_tracking.status(), (7, NormalizedStatus::Delivered));
        assert_eq!(
            by_tracking.updated_at().unwrap().to_rfc3339(),
            "2024-05-02T09:11:12+00:00"
        );
        let by_order = client.parcel_by_order_id("ALPH-1").await.unwrap();
        assert_eq!(by_order.tracking, "yal-AAA111");

        let err = client.parcel_by_tracking("yal-NOPE").await.unwrap_err();
        assert_eq!(err.class, ErrorClass::NotFound);
        assert!(!err.is_transient());
        assert!(
            err.to_string()
                .starts_with("yalidine/yal not_found: parcel yal-NOPE: not found"),
            "{err}"
        );
        let err = client.parcel_by_order_id("ALPH-404").await.unwrap_err();
        assert_eq!(err.class, ErrorClass::NotFound);
    }

    #[tokio::test]
    async fn reads_a_parcels_history_with_reasons() {
        let client = client(&yalidine().await, TOKEN);
        let history = client.histories("yal-AAA111").await.unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].status, "Tentative échouée");
        assert_eq!(history[1].reason.as_deref(), Some("Client absent"));
    }

    #[tokio::test]
    async fn a_wrong_token_is_unauthorized_and_neither_credential_is_quoted() {
        let client = client(&yalidine().await, "wrong-token");
        let err = client.check().await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Unauthorized);
        assert_eq!(err.http_status, Some(401));
        let shown = format!("{err} {err:?} {client:?}");
        assert!(
            !shown.contains("wrong-token") && !shown.contains(API_ID),
            "{shown}"
        );
    }

    /// A gate that admits everything and records what it is told.
    #[derive(Debug, Default)]
    struct RecordingGate {
        slow_downs: Mutex<Vec<(Provider, String, Duration)>>,
    }

    impl RequestGate for RecordingGate {
        fn admit<'a>(&'a self, _: Provider, _: &'a str) -> GateFuture<'a, Admission> {
            Box::pin(async {
                Admission::Go(Permit {
                    id: None,
                    probe: false,
                })
            })
        }
        fn release<'a>(
            &'a self,
            _: Provider,
            _: &'a str,
            _: Permit,
            _: RequestOutcome,
        ) -> GateFuture<'a, ()> {
            Box::pin(async {})
        }
        fn slow_down<'a>(
            &'a self,
            provider: Provider,
            account: &'a str,
            pause: Duration,
        ) -> GateFuture<'a, ()> {
            self.slow_downs
                .lock()
                .unwrap()
                .push((provider, account.to_owned(), pause));
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn a_spent_quota_window_pauses_the_account_through_its_gate() {
        let app = Router::new().route(
            "/v1/parcels/",
            get(|| async {
                let headers = [
                    ("x-second-quota-left", "3"),
                    ("x-minute-quota-left", "0"),
                    ("x-hour-quota-left", "700"),
                    ("x-day-quota-left", "9000"),
                ];
                (
                    headers,
                    Json(json!({"has_more": false, "total_data": 0, "data": []})),
                )
            }),
        );
        let base = testing::serve(app).await;
        let client = client(&format!("{base}/v1"), TOKEN);
        let recording = Arc::new(RecordingGate::default());
        let page = gate::with_gate(recording.clone(), client.list_parcels_page(1))
            .await
            .unwrap();
        assert_eq!(page.total_data, 0);
        assert_eq!(
            *recording.slow_downs.lock().unwrap(),
            [(
                Provider::Yalidine,
                "yal".to_owned(),
                Duration::from_secs(60)
            )]
        );
    }

    #[tokio::test]
    async fn timeouts_and_closed_ports_are_transient() {
        let app = Router::new().route(
            "/v1/parcels/",
            get(|| async {
                tokio::time::sleep(testing::HANG).await;
                "late"
            }),
        );
        let base = testing::serve(app).await;
        let err = client(&format!("{base}/v1"), TOKEN)
            .list_parcels_page(1)
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Timeout, "{err}");
        let err = client(&testing::closed_port().await, TOKEN)
            .parcel_by_tracking("yal-1")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Connection, "{err}");
        assert!(err.is_transient());
    }
}
