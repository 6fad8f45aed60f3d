//! Twilio Messages, the second SMS gateway: send a text, find the texts sent
//! to a number since a time, and verify the signature of its status
//! callbacks.
//!
//! Twilio keeps every message and lists them by recipient, so a send whose
//! answer never came (a timeout) can be looked up instead of being left of
//! unknown fate: `send_sms` and the resend command ask [`TwilioClient::find_sent`]
//! before anyone decides to send again.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use sha1::Sha1;

use super::transport::{class_for_status, excerpt, Account, Failure};
use super::{ErrorClass, ProviderError};
use crate::domain::Provider;

const PROVIDER: Provider = Provider::Twilio;

/// Twilio's API version path.
const API_VERSION: &str = "2010-04-01";
/// Messages listed per look-up: a recipient gets a few texts a day, so the
/// newest 50 cover any send still of interest.
const LOOKUP_PAGE_SIZE: u32 = 50;

/// Twilio error codes that no retry can fix (providers.md section 6):
/// 20003 authentication, 21211 invalid `To`, 21606 `From` not ours, 21608
/// unverified number (trial), 21610 recipient unsubscribed, 21612 not
/// routable, 21614 not a mobile number.
pub const PERMANENT_CODES: [u32; 7] = [20003, 21211, 21606, 21608, 21610, 21612, 21614];
/// "Too many requests": never processed, always safe to retry.
pub const TOO_MANY_REQUESTS_CODE: u32 = 20429;

/// A Twilio error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

/// The class of a Twilio failure, by its error code first (the code says
/// more than the status), then by the HTTP status.
fn class_for(status: StatusCode, code: Option<u32>) -> ErrorClass {
    match code {
        Some(TOO_MANY_REQUESTS_CODE) => ErrorClass::RateLimited,
        Some(20003) => ErrorClass::Unauthorized,
        Some(c) if PERMANENT_CODES.contains(&c) => ErrorClass::Validation,
        _ => class_for_status(status),
    }
}

/// Classifies a Twilio response: `None` for a success (2xx), otherwise the
/// failure, quoting Twilio's code and message.
pub(crate) fn classify(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Failure> {
    if status.is_success() {
        return None;
    }
    let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
    let code = parsed.as_ref().and_then(|b| b.code);
    let class = class_for(status, code);
    let text = parsed
        .and_then(|b| b.message)
        .unwrap_or_else(|| excerpt(body));
    let message = match code {
        Some(code) => format!("Twilio error {code}: {text}"),
        None => text,
    };
    Some(Failure::http(status, headers, class, message))
}

/// A message as Twilio returns it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TwilioMessage {
    /// Twilio's id (`SM...`).
    pub sid: String,
    /// `accepted`, `queued`, `sending`, `sent`, `delivered`, `undelivered`, `failed`...
    pub status: String,
    /// The recipient (E.164).
    #[serde(default)]
    pub to: Option<String>,
    /// The text.
    #[serde(default)]
    pub body: Option<String>,
    /// When Twilio created it (RFC 2822).
    #[serde(default)]
    pub date_created: Option<String>,
    /// Twilio's error code for a failed message.
    #[serde(default)]
    pub error_code: Option<u32>,
}

impl TwilioMessage {
    /// `date_created` as an instant.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc2822(self.date_created.as_deref()?.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

/// A client for one Twilio account and sending number.
#[derive(Debug, Clone)]
pub struct TwilioClient {
    account: Account,
    base_url: String,
    account_sid: SecretString,
    auth_token: SecretString,
    from: String,
    status_callback: Option<String>,
    country_code: Option<String>,
    http: reqwest::Client,
}

/// How to reach one Twilio account, beside its credentials.
#[derive(Debug, Clone, Default)]
pub struct TwilioSettings {
    /// The sending number (`From`, E.164).
    pub from: String,
    /// Our public status-callback URL, sent with every message (`None`: no
    /// delivery receipts).
    pub status_callback: Option<String>,
    /// Country calling code (e.g. `+213`) put in front of national numbers
    /// (`0555...`), which Twilio refuses (21211).
    pub country_code: Option<String>,
}

impl TwilioClient {
    /// A client for `account` at `base_url` (`https://api.twilio.com`),
    /// authenticating as `account_sid:auth_token`.
    pub fn new(
        account: &str,
        base_url: &str,
        account_sid: SecretString,
        auth_token: SecretString,
        settings: TwilioSettings,
        http: reqwest::Client,
    ) -> Self {
        Self {
            account: Account::new(
                PROVIDER,
                account,
                vec![account_sid.clone(), auth_token.clone()],
            ),
            base_url: base_url.trim_end_matches('/').to_owned(),
            account_sid,
            auth_token,
            from: settings.from,
            status_callback: settings.status_callback,
            country_code: settings.country_code,
            http,
        }
    }

    /// The configured account name.
    pub fn account(&self) -> &str {
        self.account.name()
    }

    /// `phone` as Twilio wants it: E.164 as given, or a national number
    /// (leading 0) with the configured country code in its place.
    pub fn e164(&self, phone: &str) -> String {
        let digits: String = phone
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '+')
            .collect();
        match (&self.country_code, digits.strip_prefix('0')) {
            (Some(cc), Some(national)) if !digits.starts_with('+') => format!("{cc}{national}"),
            _ => digits,
        }
    }

    fn messages_url(&self) -> String {
        format!(
            "{}/{API_VERSION}/Accounts/{}/Messages.json",
            self.base_url,
            self.account_sid.expose_secret()
        )
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(
            self.account_sid.expose_secret(),
            Some(self.auth_token.expose_secret()),
        )
    }

    /// Sends `message` to `phone`: `POST .../Messages.json` with `To`,
    /// `From`, `Body` and, when configured, `StatusCallback`.
    ///
    /// # Errors
    ///
    /// Permanent: [`ErrorClass::Validation`] for Twilio's 21211, 21606,
    /// 21608, 21610, 21612, 21614 (a bad or unreachable recipient or
    /// sender); [`ErrorClass::Unauthorized`] for 20003 / 401;
    /// [`ErrorClass::NotFound`], [`ErrorClass::BadRequest`],
    /// [`ErrorClass::Decode`]. Transient: [`ErrorClass::RateLimited`]
    /// (20429 / 429, never processed, with `Retry-After` when given),
    /// [`ErrorClass::ServerError`], [`ErrorClass::Connection`],
    /// [`ErrorClass::Timeout`] (after which the text may have been sent:
    /// look it up with [`TwilioClient::find_sent`]).
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account()), err(Display, level = "debug"))]
    pub async fn send(&self, phone: &str, message: &str) -> Result<TwilioMessage, ProviderError> {
        let to = self.e164(phone);
        let mut form = vec![
            ("To", to.as_str()),
            ("From", self.from.as_str()),
            ("Body", message),
        ];
        if let Some(url) = &self.status_callback {
            form.push(("StatusCallback", url.as_str()));
        }
        let request = self
            .authorized(self.http.post(self.messages_url()))
            .form(&form);
        let (_, sent) = self
            .account
            .fetch_json(request, classify, &format!("text to {to}"))
            .await?;
        Ok(sent)
    }

    /// The text `message` sent to `phone` at or after `since`, if Twilio has
    /// it: the newest messages to that number (`GET .../Messages.json?To=`),
    /// compared by body and creation time.
    ///
    /// # Errors
    ///
    /// As for [`TwilioClient::send`] (all of them mean "we could not tell").
    #[tracing::instrument(skip_all, fields(provider = PROVIDER.as_str(), account = %self.account()), err(Display, level = "debug"))]
    pub async fn find_sent(
        &self,
        phone: &str,
        message: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<TwilioMessage>, ProviderError> {
        #[derive(Deserialize)]
        struct Page {
            messages: Vec<TwilioMessage>,
        }
        let to = self.e164(phone);
        let request = self.authorized(self.http.get(self.messages_url())).query(&[
            ("To", to.as_str()),
            ("PageSize", &LOOKUP_PAGE_SIZE.to_string()),
        ]);
        let (_, page): (_, Page) = self
            .account
            .fetch_json(request, classify, &format!("texts to {to}"))
            .await?;
        Ok(page.messages.into_iter().find(|m| {
            m.body.as_deref() == Some(message) && m.created_at().is_some_and(|t| t >= since)
        }))
    }

    /// Checks the credentials by reading the account; returns its status
    /// (`active`, `suspended`, `closed`).
    ///
    /// # Errors
    ///
    /// As for [`TwilioClient::send`].
    pub async fn check(&self) -> Result<String, ProviderError> {
        #[derive(Deserialize)]
        struct AccountInfo {
            status: String,
        }
        let url = format!(
            "{}/{API_VERSION}/Accounts/{}.json",
            self.base_url,
            self.account_sid.expose_secret()
        );
        let (_, info): (_, AccountInfo) = self
            .account
            .fetch_json(self.authorized(self.http.get(url)), classify, "account")
            .await?;
        Ok(info.status)
    }
}

/// Twilio's request signature: base64 of the HMAC-SHA1, keyed with the auth
/// token, of the full URL Twilio called followed by every POST parameter's
/// name and value, sorted by name.
pub fn signature(url: &str, params: &[(String, String)], auth_token: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(signing_mac(url, params, auth_token).finalize().into_bytes())
}

/// The HMAC-SHA1 state after the signed string (URL, then sorted params).
fn signing_mac(url: &str, params: &[(String, String)], auth_token: &str) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// Whether `header` (`X-Twilio-Signature`) signs `url` and `params` under
/// `auth_token`, compared in constant time.
pub fn signature_matches(
    url: &str,
    params: &[(String, String)],
    auth_token: &str,
    header: &str,
) -> bool {
    let Ok(given) = base64::engine::general_purpose::STANDARD.decode(header.trim()) else {
        return false;
    };
    signing_mac(url, params, auth_token)
        .verify_slice(&given)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::extract::{Form, Query};
    use axum::http::HeaderMap as AxHeaders;
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use serde_json::json;

    use super::*;
    use crate::providers::testing;

    const SID: &str = "AC0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "twilio-auth-token-secret";

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).unwrap()
    }

    fn twilio_error(code: u32, http: u16) -> Failure {
        let body = json!({"code": code, "message": "nope", "more_info": "https://www.twilio.com/docs/errors/x", "status": http});
        classify(status(http), &HeaderMap::new(), body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn bad_recipients_and_senders_are_permanent_by_their_code() {
        for code in [21211, 21606, 21608, 21610, 21612, 21614] {
            let f = twilio_error(code, 400);
            assert_eq!(f.class, ErrorClass::Validation, "{code}");
            assert!(!f.class.is_transient());
            assert_eq!(f.message, format!("Twilio error {code}: nope"));
        }
        assert_eq!(twilio_error(20003, 401).class, ErrorClass::Unauthorized);
        assert_eq!(twilio_error(20404, 404).class, ErrorClass::NotFound);
        assert_eq!(twilio_error(21602, 400).class, ErrorClass::BadRequest);
    }

    #[test]
    fn too_many_requests_and_server_errors_are_transient_with_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        let body = json!({"code": 20429, "message": "Too Many Requests", "status": 429});
        let f = classify(status(429), &headers, body.to_string().as_bytes()).unwrap();
        assert_eq!(f.class, ErrorClass::RateLimited);
        assert_eq!(f.retry_after, Some(Duration::from_secs(3)));
        // The code decides even on an unexpected status.
        assert_eq!(twilio_error(20429, 400).class, ErrorClass::RateLimited);
        for code in [500, 502, 503] {
            let f = classify(status(code), &HeaderMap::new(), b"<h1>oops</h1>").unwrap();
            assert_eq!(f.class, ErrorClass::ServerError);
            assert!(f.class.is_transient());
        }
        assert_eq!(classify(status(201), &HeaderMap::new(), b"{}"), None);
    }

    #[test]
    fn the_signature_is_twilios_documented_example() {
        // The inputs of the example on Twilio's "Webhooks security" page; the
        // expected value was computed apart, with Python's hmac module.
        let params: Vec<(String, String)> = [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert_eq!(signature(url, &params, "12345"), expected);
        assert!(signature_matches(url, &params, "12345", expected));
        assert!(!signature_matches(url, &params, "12346", expected));
        assert!(!signature_matches(
            "https://mycompany.com/other",
            &params,
            "12345",
            expected
        ));
        let mut tampered = params.clone();
        tampered[2].1 = "9999".into();
        assert!(!signature_matches(url, &tampered, "12345", expected));
        assert!(!signature_matches(url, &params, "12345", "not base64!"));
    }

    #[test]
    fn national_numbers_get_the_country_code() {
        let client = TwilioClient::new(
            "t",
            "http://x",
            SID.into(),
            TOKEN.into(),
            TwilioSettings {
                from: "+15005550006".into(),
                country_code: Some("+213".into()),
                ..TwilioSettings::default()
            },
            testing::client(),
        );
        assert_eq!(client.e164("0555 12-34-56"), "+213555123456");
        assert_eq!(client.e164("+233241234567"), "+233241234567");
    }

    fn authorized(headers: &AxHeaders) -> bool {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{SID}:{TOKEN}"))
        );
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(expected.as_str())
    }

    /// The form of each message the fake Twilio was sent.
    type SentForms = Arc<Mutex<Vec<Vec<(String, String)>>>>;

    async fn twilio(sent: SentForms) -> String {
        let path = format!("/2010-04-01/Accounts/{SID}/Messages.json");
        let recorded = sent.clone();
        let app = Router::new()
            .route(
                &path,
                post(move |headers: AxHeaders, Form(form): Form<Vec<(String, String)>>| {
                    let recorded = recorded.clone();
                    async move {
                        if !authorized(&headers) {
                            let body = json!({"code": 20003, "message": "Authenticate", "status": 401});
                            return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
                        }
                        let to = form.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone());
                        recorded.lock().unwrap().push(form);
                        if to.as_deref() == Some("+21300") {
                            let body = json!({"code": 21211, "message": "The 'To' number +21300 is not a valid phone number.", "status": 400});
                            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
                        }
                        let body = json!({"sid": "SM0001", "status": "queued", "to": to, "error_code": null});
                        (StatusCode::CREATED, Json(body)).into_response()
                    }
                })
                .get(|Query(q): Query<Vec<(String, String)>>| async move {
                    let to = q.iter().find(|(k, _)| k == "To").map(|(_, v)| v.clone());
                    Json(json!({"messages": [
                        {"sid": "SM0002", "status": "delivered", "to": to, "body": "Order A-1 was delivered. Thank you!", "date_created": "Wed, 02 Dec 2026 10:00:00 +0000"},
                        {"sid": "SM0001", "status": "sent", "to": to, "body": "Order A-1 is out for delivery", "date_created": "Wed, 02 Dec 2026 09:00:00 +0000"}
                    ], "next_page_uri": null}))
                }),
            )
            .route(
                &format!("/2010-04-01/Accounts/{SID}.json"),
                get(|headers: AxHeaders| async move {
                    if authorized(&headers) {
                        Json(json!({"sid": SID, "status": "active"})).into_response()
                    } else {
                        StatusCode::UNAUTHORIZED.into_response()
                    }
                }),
            );
        testing::serve(app).await
    }

    fn client(base: &str, token: &str) -> TwilioClient {
        TwilioClient::new(
            "tw",
            base,
            SID.into(),
            token.into(),
            TwilioSettings {
                from: "+15005550006".into(),
                status_callback: Some("https://ordersync.example/webhooks/sms/twilio".into()),
                country_code: Some("+213".into()),
            },
            testing::client(),
        )
    }

    #[tokio::test]
    async fn sends_with_basic_auth_and_the_status_callback() {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let client = client(&twilio(sent.clone()).await, TOKEN);
        let message = client.send("0555123456", "hello").await.unwrap();
        assert_eq!(
            (message.sid.as_str(), message.status.as_str()),
            ("SM0001", "queued")
        );
        let form = sent.lock().unwrap()[0].clone();
        let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(field("To").as_deref(), Some("+213555123456"));
        assert_eq!(field("From").as_deref(), Some("+15005550006"));
        assert_eq!(field("Body").as_deref(), Some("hello"));
        assert_eq!(
            field("StatusCallback").as_deref(),
            Some("https://ordersync.example/webhooks/sms/twilio")
        );
        assert_eq!(client.check().await.unwrap(), "active");

        let err = client.send("+21300", "hello").await.unwrap_err();
        assert_eq!(
            (err.class, err.http_status),
            (ErrorClass::Validation, Some(400))
        );
        assert!(err.message.contains("Twilio error 21211"), "{err}");
    }

    #[tokio::test]
    async fn a_wrong_token_is_unauthorized_and_never_quoted() {
        let client = client(&twilio(Arc::default()).await, "wrong-token");
        let err = client.send("+213555123456", "x").await.unwrap_err();
        assert_eq!(err.class, ErrorClass::Unauthorized);
        let shown = format!("{err} {err:?} {client:?}");
        assert!(
            !shown.contains("wrong-token") && !shown.contains(SID),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn finds_a_sent_text_by_recipient_body_and_time() {
        let client = client(&twilio(Arc::default()).await, TOKEN);
        let since = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
        let found = client
            .find_sent(
                "0555123456",
                "Order A-1 is out for delivery",
                since("2026-12-02T08:59:00Z"),
            )
            .await
            .unwrap();
        assert_eq!(found.map(|m| m.sid).as_deref(), Some("SM0001"));
        let too_late = client
            .find_sent(
                "0555123456",
                "Order A-1 is out for delivery",
                since("2026-12-02T09:30:00Z"),
            )
            .await
            .unwrap();
        assert_eq!(too_late, None);
        let other_text = client
            .find_sent(
                "0555123456",
                "Order A-1 was cancelled",
                since("2026-12-02T08:00:00Z"),
            )
            .await
            .unwrap();
        assert_eq!(other_text, None);
    }
}
