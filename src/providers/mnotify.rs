//! mNotify (BMS v2), the SMS gateway: send one text to one phone.
//!
//! The API key travels in the query string (`?key=`), so a URL must never
//! reach an error or a log: transport errors are stripped of their URL and
//! every message is scrubbed of the key.
//!
//! A timeout or 5xx after the request left is transient, but the SMS may
//! still have gone out: retrying risks a duplicate text. The send-sms job
//! decides; this client only reports the class.

use crate::domain::Provider;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::transport::{class_for_status, de, excerpt, Account, Failure};
use super::{ErrorClass, ProviderError};

const PROVIDER: Provider = Provider::Mnotify;
/// mNotify's limit on a sender id.
pub const MAX_SENDER_CHARS: usize = 11;
/// The `code` of a successful quick SMS (a string in the JSON).
const CODE_SENT: &str = "2000";

// ---------------------------------------------------------------------------
// UNCONFIRMED (not in a published mNotify document we could read):
// - balance: `GET /api/balance/sms?key=` answering
//   `{"status":"success","balance":N,"bonus":M}`, as several independent
//   public clients call it; used by `check` only;
// - a 200 whose `code` is not "2000" (no list of codes seen): permanent
//   BadRequest, since re-sending could text the customer twice;
// - error bodies other than 401 `{"error": "..."}`: read `error`, then
//   `message`, then quote the body; 429 shape unknown (status decides).
// ---------------------------------------------------------------------------
const BALANCE_PATH: &str = "api/balance/sms";

/// Class of a 200 reply whose `code` is not [`CODE_SENT`].
fn unsent_code_class(_code: &str) -> ErrorClass {
    ErrorClass::BadRequest
}

/// The human text of an mNotify error body.
fn error_text(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<String>,
        message: Option<String>,
    }
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .and_then(|b| b.error.or(b.message))
        .unwrap_or_else(|| excerpt(body))
}

// ---------------------------------------------------------------------------

/// A text mNotify accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SentSms {
    /// mNotify's id for the campaign (`summary.message_id`, else
    /// `summary._id`; empty if it sent neither, since failing a sent SMS
    /// would invite a duplicate).
    pub message_id: String,
    /// Credit remaining on the account, when reported.
    pub credit_left: Option<f64>,
}

/// A client for one mNotify account and sender id.
#[derive(Debug, Clone)]
pub struct MnotifyClient {
    account: Account,
    base_url: String,
    api_key: SecretString,
    sender: String,
    http: reqwest::Client,
}

#[derive(Serialize)]
struct QuickSms<'a> {
    recipient: [&'a str; 1],
    sender: &'a str,
    message: &'a str,
    is_schedule: bool,
    schedule_date: &'a str,
}

impl MnotifyClient {
    /// A client for `account` at `base_url` (e.g. `https://api.mnotify.com`),
    /// sending as `sender` (an approved sender id of at most 11 characters).
    pub fn new(
        account: &str,
        base_url: &str,
        api_key: SecretString,
        sender: &str,
        http: reqwest::Client,
    ) -> Self {
        Self {
            account: Account::new(PROVIDER, account, vec![api_key.clone()]),
            base_url: base_url.trim_end_matches('/').to_owned(),
            api_key,
            sender: sender.to_owned(),
            http,
        }
    }

    /// The configured account name.
    pub fn account(&self) -> &str {
        self.account.name()
    }

    /// Sends `message` to `phone`: `POST /api/sms/quick?key=...`.
    ///
    /// # Errors
    ///
    /// Permanent: [`ErrorClass::Validation`] when mNotify rejected the
    /// recipient (`total_rejected > 0`) or answered 422;
    /// [`ErrorClass::Unauthorized`] (401, bad key); [`ErrorClass::BadRequest`]
    /// for a bad sender id (checked before sending), a 4xx, or a 200 whose
    /// `code` is not "2000"; [`ErrorClass::Decode`]. Transient:
    /// [`ErrorClass::Timeout`], [`ErrorClass::Connection`],
    /// [`ErrorClass::ServerError`], [`ErrorClass::RateLimited`]; after a
    /// timeout or 5xx the text may have been sent anyway.
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account()), err(Display, level = "debug"))]
    pub async fn send(&self, phone: &str, message: &str) -> Result<SentSms, ProviderError> {
        self.validate_config()?;
        let request = self
            .http
            .post(format!("{}/api/sms/quick", self.base_url))
            .query(&[("key", self.api_key.expose_secret())])
            .json(&QuickSms {
                recipient: [phone],
                sender: &self.sender,
                message,
                is_schedule: false,
                schedule_date: "",
            });
        let reply = self.account.execute(request).await?;
        interpret_send(reply.status, &reply.headers, &reply.body).map_err(|f| self.account.error(f))
    }

    /// Validates the configuration (non-empty key, sender id of 1 to 11
    /// characters) and then checks the key by reading the SMS balance, which
    /// it returns. The balance endpoint is UNCONFIRMED (see the top of this
    /// file): if it proves wrong, only this method is affected.
    ///
    /// # Errors
    ///
    /// [`ErrorClass::Unauthorized`] for an empty or refused key,
    /// [`ErrorClass::BadRequest`] for a bad sender id or an unexpected
    /// answer; transient classes as for [`MnotifyClient::send`].
    pub async fn check(&self) -> Result<Option<f64>, ProviderError> {
        #[derive(Deserialize)]
        struct Balance {
            #[serde(default)]
            status: Option<String>,
            #[serde(default, deserialize_with = "de::opt_f64_lenient")]
            balance: Option<f64>,
        }
        self.validate_config()?;
        let request = self
            .http
            .get(format!("{}/{BALANCE_PATH}", self.base_url))
            .query(&[("key", self.api_key.expose_secret())]);
        let reply = self.account.execute(request).await?;
        if let Some(failure) = classify_http(reply.status, &reply.headers, &reply.body) {
            return Err(self.account.error(failure));
        }
        let balance: Balance = self.account.decode(&reply, "balance")?;
        if balance.status.as_deref() != Some("success") {
            return Err(self.account.error(Failure::http(
                reply.status,
                &reply.headers,
                ErrorClass::BadRequest,
                format!("balance check failed: {}", excerpt(&reply.body)),
            )));
        }
        Ok(balance.balance)
    }

    fn validate_config(&self) -> Result<(), ProviderError> {
        let failure = if self.api_key.expose_secret().trim().is_empty() {
            Failure::local(ErrorClass::Unauthorized, "no API key configured")
        } else if self.sender.is_empty() || self.sender.chars().count() > MAX_SENDER_CHARS {
            Failure::local(
                ErrorClass::BadRequest,
                format!(
                    "sender id {:?} must be 1 to {MAX_SENDER_CHARS} characters",
                    self.sender
                ),
            )
        } else {
            return Ok(());
        };
        Err(self.account.error(failure))
    }
}

/// Classifies a non-2xx mNotify response (`None` for 2xx): 401/403
/// Unauthorized, 422 Validation, 429 RateLimited, 5xx ServerError, other
/// 4xx BadRequest, with the body's `error` or `message` text.
fn classify_http(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
    (!status.is_success())
        .then(|| Failure::http(status, headers, class_for_status(status), error_text(body)))
}

/// Reads a quick-SMS response: a [`SentSms`] for a 200 with `code` "2000"
/// and no rejected recipient, otherwise the classified failure.
pub(crate) fn interpret_send(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<SentSms, Failure> {
    #[derive(Deserialize)]
    struct Summary {
        #[serde(default, rename = "_id", deserialize_with = "de::opt_string_or_number")]
        id: Option<String>,
        #[serde(default, deserialize_with = "de::opt_string_or_number")]
        message_id: Option<String>,
        #[serde(default, deserialize_with = "de::opt_f64_lenient")]
        total_rejected: Option<f64>,
        #[serde(default, deserialize_with = "de::opt_f64_lenient")]
        credit_left: Option<f64>,
    }
    #[derive(Deserialize)]
    struct Sent {
        #[serde(default, deserialize_with = "de::opt_string_or_number")]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        summary: Option<Summary>,
    }
    if let Some(failure) = classify_http(status, headers, body) {
        return Err(failure);
    }
    let fail = |class, message: String| Failure::http(status, headers, class, message);
    let sent: Sent = serde_json::from_slice(body).map_err(|e| {
        fail(
            ErrorClass::Decode,
            format!(
                "unexpected quick SMS response ({e}); body: {}",
                excerpt(body)
            ),
        )
    })?;
    let code = sent.code.unwrap_or_default();
    if code != CODE_SENT {
        let text = sent.message.unwrap_or_default();
        return Err(fail(
            unsent_code_class(&code),
            format!("code {code:?}: {text}"),
        ));
    }
    let summary = sent.summary.unwrap_or(Summary {
        id: None,
        message_id: None,
        total_rejected: None,
        credit_left: None,
    });
    if let Some(rejected) = summary.total_rejected.filter(|n| *n > 0.0) {
        return Err(fail(
            ErrorClass::Validation,
            format!("recipient rejected ({rejected} rejected)"),
        ));
    }
    Ok(SentSms {
        message_id: summary.message_id.or(summary.id).unwrap_or_default(),
        credit_left: summary.credit_left,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use axum::extract::Query;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use serde_json::{json, Value};

    use super::*;
    use crate::providers::testing;

    const KEY: &str = "MNOTIFYKEY0123456789abcdef";

    fn interpret(status: u16, body: &Value, headers: &HeaderMap) -> Result<SentSms, Failure> {
        let status = StatusCode::from_u16(status).unwrap();
        interpret_send(status, headers, body.to_string().as_bytes())
    }

    fn success(rejected: u64) -> Value {
        json!({"status": "success", "code": "2000", "message": "messages sent successfully",
            "summary": {"_id": "5f1a", "message_id": "3934ac17-25e8", "type": "API QUICK SMS",
                "total_sent": 1 - rejected, "contacts": 1, "total_rejected": rejected,
                "numbers_sent": ["0241234567"], "credit_used": 1, "credit_left": 1485.5}})
    }

    #[test]
    fn a_2000_reply_is_a_sent_sms() {
        let sent = interpret(200, &success(0), &HeaderMap::new()).unwrap();
        assert_eq!(
            sent,
            SentSms {
                message_id: "3934ac17-25e8".into(),
                credit_left: Some(1485.5)
            }
        );
        let mut numeric = success(0);
        numeric["code"] = json!(2000);
        numeric["summary"]["credit_left"] = json!("12.00");
        numeric["summary"]
            .as_object_mut()
            .unwrap()
            .remove("message_id");
        let sent = interpret(200, &numeric, &HeaderMap::new()).unwrap();
        assert_eq!(sent.message_id, "5f1a");
        assert_eq!(sent.credit_left, Some(12.0));
    }

    #[test]
    fn a_rejected_recipient_is_permanent_validation() {
        let f = interpret(200, &success(1), &HeaderMap::new()).unwrap_err();
        assert_eq!(f.class, ErrorClass::Validation);
        assert!(f.message.starts_with("recipient rejected"), "{}", f.message);
    }

    #[test]
    fn error_table() {
        let mut slow = HeaderMap::new();
        slow.insert("retry-after", "5".parse().unwrap());
        let rows = [
            (
                401,
                json!({"error": "invalid api key. Check your key"}),
                ErrorClass::Unauthorized,
            ),
            (
                403,
                json!({"message": "forbidden"}),
                ErrorClass::Unauthorized,
            ),
            (
                422,
                json!({"message": "The sender field is required."}),
                ErrorClass::Validation,
            ),
            (400, json!({"message": "bad"}), ErrorClass::BadRequest),
            (429, json!({}), ErrorClass::RateLimited),
            (
                500,
                json!({"message": "Server Error"}),
                ErrorClass::ServerError,
            ),
            (503, json!({}), ErrorClass::ServerError),
            (
                200,
                json!({"status": "error", "code": "1002", "message": "low balance"}),
                ErrorClass::BadRequest,
            ),
        ];
        for (status, body, class) in rows {
            let f = interpret(status, &body, &slow).unwrap_err();
            assert_eq!(f.class, class, "{status} {body}");
            assert_eq!(f.retry_after.is_some(), class.is_transient(), "{status}");
        }
        let f = interpret(
            401,
            &json!({"error": "invalid api key."}),
            &HeaderMap::new(),
        )
        .unwrap_err();
        assert_eq!(f.message, "invalid api key.");
        let garbage = interpret_send(StatusCode::OK, &HeaderMap::new(), b"<html>ok</html>");
        assert_eq!(garbage.unwrap_err().class, ErrorClass::Decode);
    }

    fn sms(base: &str, key: &str, sender: &str) -> MnotifyClient {
        MnotifyClient::new("gh", base, key.into(), sender, testing::client())
    }

    async fn gateway() -> String {
        let app = Router::new()
            .route(
                "/mnotify/api/sms/quick",
                post(
                    |Query(q): Query<HashMap<String, String>>, Json(body): Json<Value>| async move {
                        if q.get("key").map(String::as_str) != Some(KEY) {
                            // Echo the key back, as a careless gateway might.
                            let key = q.get("key").cloned().unwrap_or_default();
                            let error = format!("invalid api key. {key} is not a key");
                            return (StatusCode::UNAUTHORIZED, Json(json!({"error": error})))
                                .into_response();
                        }
                        let expected = json!({"recipient": ["0241234567"], "sender": "ShopGH",
                            "message": "Your order shipped", "is_schedule": false, "schedule_date": ""});
                        if body != expected {
                            return (StatusCode::BAD_REQUEST, Json(json!({"message": body.to_string()})))
                                .into_response();
                        }
                        Json(success(0)).into_response()
                    },
                ),
            )
            .route(
                "/mnotify/api/balance/sms",
                get(|Query(q): Query<HashMap<String, String>>| async move {
                    if q.get("key").map(String::as_str) != Some(KEY) {
                        return StatusCode::UNAUTHORIZED.into_response();
                    }
                    Json(json!({"status": "success", "balance": 1485, "bonus": 0})).into_response()
                }),
            );
        format!("{}/mnotify", testing::serve(app).await)
    }

    #[tokio::test]
    async fn sends_a_quick_sms_and_checks_the_balance() {
        let client = sms(&gateway().await, KEY, "ShopGH");
        let sent = client
            .send("0241234567", "Your order shipped")
            .await
            .unwrap();
        assert_eq!(sent.message_id, "3934ac17-25e8");
        assert_eq!(client.check().await.unwrap(), Some(1485.0));
    }

    #[tokio::test]
    async fn a_refused_key_echoed_by_the_gateway_is_redacted() {
        let wrong = "WRONGKEY-zyxwvu987654";
        let client = sms(&gateway().await, wrong, "ShopGH");
        let err = client
            .send("0241234567", "Your order shipped")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Unauthorized);
        assert_eq!(err.message, "invalid api key. [REDACTED] is not a key");
        assert!(!format!("{err} {err:?} {client:?}").contains(wrong));
    }

    #[tokio::test]
    async fn a_transport_error_never_carries_the_key() {
        let closed = testing::closed_port().await;
        // Proof that the danger is real: reqwest's own error names the URL.
        let raw = testing::client()
            .post(format!("{closed}/api/sms/quick"))
            .query(&[("key", KEY)])
            .send()
            .await
            .unwrap_err();
        assert!(raw.to_string().contains(KEY));

        let client = sms(&closed, KEY, "ShopGH");
        let err = client.send("0241234567", "hi").await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Connection);
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(!shown.contains("key="), "{shown}");
    }

    #[tokio::test]
    async fn outage_and_hang_are_transient_without_the_key() {
        let app = Router::new()
            .route(
                "/api/sms/quick",
                post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
            )
            .route(
                "/api/balance/sms",
                get(|| async {
                    tokio::time::sleep(testing::HANG).await;
                    "late"
                }),
            );
        let client = sms(&testing::serve(app).await, KEY, "ShopGH");
        let err = client.send("0241234567", "hi").await.unwrap_err();
        assert_eq!(
            (err.class, err.http_status),
            (ErrorClass::ServerError, Some(503))
        );
        assert!(err.is_transient());
        let err = client.check().await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Timeout);
        assert!(!format!("{err} {err:?}").contains(KEY));
    }

    #[tokio::test]
    async fn bad_config_fails_before_any_request() {
        // A closed port: reaching the network would give Connection instead.
        let closed = testing::closed_port().await;
        let err = sms(&closed, KEY, "A-VERY-LONG-SENDER")
            .check()
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::BadRequest);
        let err = sms(&closed, " ", "ShopGH")
            .send("024", "hi")
            .await
            .unwrap_err();
        assert_eq!(err.class, ErrorClass::Unauthorized);
        assert_eq!(err.retry_after, None::<Duration>);
    }
}
