//! Plumbing shared by the provider clients: send a request, read the whole
//! reply, and turn transport or HTTP failures into [`ProviderError`]s that
//! carry no secret.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::{parse_retry_after, ErrorClass, Provider, ProviderError, PROVIDER_REQUESTS_METRIC};

/// Longest excerpt of a response body quoted in an error message.
const EXCERPT_CHARS: usize = 200;

/// Who we are talking to: the provider, the configured account, and the
/// credentials that must never appear in an error.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    provider: Provider,
    name: String,
    secrets: Vec<SecretString>,
}

/// A complete HTTP response, body read.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// A provider's pure classification: `None` for a success, else the failure.
pub(crate) type Classifier = fn(StatusCode, &HeaderMap, &[u8]) -> Option<Failure>;

/// A classified failure before it is tied to an account: what the pure
/// per-provider classification functions return.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Failure {
    pub(crate) class: ErrorClass,
    pub(crate) http_status: Option<u16>,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) message: String,
}

impl Failure {
    /// A failure read from an HTTP response. `Retry-After` is kept for
    /// transient classes only: it means nothing for a permanent failure.
    pub(crate) fn http(
        status: StatusCode,
        headers: &HeaderMap,
        class: ErrorClass,
        message: impl Into<String>,
    ) -> Self {
        Self {
            class,
            http_status: Some(status.as_u16()),
            retry_after: class
                .is_transient()
                .then(|| parse_retry_after(headers))
                .flatten(),
            message: message.into(),
        }
    }

    /// A failure found before or without an HTTP response (configuration).
    pub(crate) fn local(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            http_status: None,
            retry_after: None,
            message: message.into(),
        }
    }
}

/// The class an HTTP status has when the body says nothing more specific.
pub(crate) fn class_for_status(status: StatusCode) -> ErrorClass {
    match status.as_u16() {
        401 | 403 => ErrorClass::Unauthorized,
        404 | 410 => ErrorClass::NotFound,
        408 => ErrorClass::Timeout,
        422 => ErrorClass::Validation,
        429 => ErrorClass::RateLimited,
        500..=599 => ErrorClass::ServerError,
        _ => ErrorClass::BadRequest,
    }
}

impl Account {
    pub(crate) fn new(provider: Provider, name: &str, secrets: Vec<SecretString>) -> Self {
        Self {
            provider,
            name: name.to_owned(),
            secrets,
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Ties a failure to this account, scrubbing every credential from the
    /// message: this account's secrets (raw and URL-encoded), and whatever
    /// credential-shaped text a provider echoed back (headers, `Basic`/
    /// `Bearer`/`Token` values, key and secret parameters or JSON fields).
    pub(crate) fn error(&self, failure: Failure) -> ProviderError {
        ProviderError {
            provider: self.provider,
            account: self.name.clone(),
            class: failure.class,
            http_status: failure.http_status,
            retry_after: failure.retry_after,
            message: self.redact(failure.message),
        }
    }

    /// The message without this account's secrets or any credential a
    /// provider echoed (see [`crate::redact::redact_credentials`]).
    fn redact(&self, message: String) -> String {
        let secrets: Vec<&str> = self.secrets.iter().map(|s| s.expose_secret()).collect();
        crate::redact::redact_credentials(&message, &secrets)
    }

    /// Classifies a reqwest failure. The error is stripped of its URL (which
    /// may carry a key in its query) and the message is built from the error
    /// kind and its cause chain only.
    pub(crate) fn transport_error(&self, err: reqwest::Error) -> ProviderError {
        let err = err.without_url();
        let (class, summary) = if err.is_timeout() {
            (ErrorClass::Timeout, "request timed out")
        } else if err.is_connect() {
            (ErrorClass::Connection, "could not connect")
        } else if err.is_decode() {
            (ErrorClass::Decode, "could not decode the response")
        } else if err.is_builder() {
            (
                ErrorClass::BadRequest,
                "could not build the request (check the configured URL)",
            )
        } else if err.is_redirect() {
            (ErrorClass::BadRequest, "redirect failed")
        } else {
            (ErrorClass::Connection, "connection failed")
        };
        let mut message = format!("{summary}: {err}");
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        self.error(Failure::local(class, message))
    }

    /// Sends the request and reads the whole body.
    ///
    /// # Errors
    ///
    /// Transport failures only (timeout, connection, ...); any HTTP status is
    /// returned as a [`Reply`] for the provider to classify.
    pub(crate) async fn execute(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Reply, ProviderError> {
        let Some(gate) = super::gate::current() else {
            return self.send(request).await;
        };
        let permit = self.admit(gate.as_ref()).await?;
        let result = self.send(request).await;
        if let Ok(reply) = &result {
            if let Some(pause) = super::gate::slow_down_for(reply.status, &reply.headers) {
                tracing::info!(provider = %self.provider, account = %self.name, status = reply.status.as_u16(),
                    pause_ms = pause.as_millis() as u64, "provider asked to slow down: account paused, then slower for everyone");
                gate.slow_down(self.provider, &self.name, pause).await;
            }
        }
        let outcome = super::gate::RequestOutcome::of(
            &result.as_ref().map(|r| r.status).map_err(|e| e.class),
        );
        gate.release(self.provider, &self.name, permit, outcome)
            .await;
        result
    }

    /// Wait for room in this account's shared budget, briefly: past
    /// [`super::gate::MAX_INLINE_WAIT`] the request is not sent and the
    /// caller gets [`ErrorClass::HeldBack`] with the time to come back.
    async fn admit(
        &self,
        gate: &dyn super::gate::RequestGate,
    ) -> Result<super::gate::Permit, ProviderError> {
        use super::gate::{Admission, MAX_INLINE_WAIT};
        let mut waited = Duration::ZERO;
        loop {
            match gate.admit(self.provider, &self.name).await {
                Admission::Go(permit) => return Ok(permit),
                Admission::Wait(wait, _) if waited + wait <= MAX_INLINE_WAIT => {
                    tokio::time::sleep(wait).await;
                    waited += wait;
                }
                Admission::Wait(wait, why) => {
                    let what = match why {
                        "rate" => "its rate limit",
                        "in_flight" => "its in-flight cap",
                        "breaker_open" => "its open circuit breaker",
                        "breaker_half_open" => "its circuit breaker's probe",
                        _ => "the provider's request to slow down",
                    };
                    return Err(ProviderError {
                        provider: self.provider,
                        account: self.name.clone(),
                        class: ErrorClass::HeldBack,
                        http_status: None,
                        retry_after: Some(wait),
                        message: format!(
                            "not sent: the account is held back by {what} for {} ms more",
                            wait.as_millis()
                        ),
                    });
                }
            }
        }
    }

    /// Send without the gate.
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, ProviderError> {
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let error = self.transport_error(error);
                count_request(self.provider, error.class.as_str());
                return Err(error);
            }
        };
        let status = response.status();
        count_request(self.provider, status.as_str());
        let headers = std::mem::take(response.headers_mut());
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?
            .to_vec();
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    /// An `Authorization` value built from a credential, marked sensitive so
    /// it is masked in any `Debug` output of the request.
    ///
    /// # Errors
    ///
    /// [`ErrorClass::Unauthorized`] if the credential holds characters an
    /// HTTP header cannot carry.
    pub(crate) fn auth_header(&self, value: &str) -> Result<HeaderValue, ProviderError> {
        let mut header = HeaderValue::from_str(value).map_err(|_| {
            self.error(Failure::local(
                ErrorClass::Unauthorized,
                "the configured credential contains characters not allowed in an HTTP header",
            ))
        })?;
        header.set_sensitive(true);
        Ok(header)
    }

    /// Sends the request, classifies the reply with `classify`, and parses a
    /// success body as JSON. Failure messages start with `what`.
    ///
    /// # Errors
    ///
    /// Transport failures, the failure `classify` found, or
    /// [`ErrorClass::Decode`].
    pub(crate) async fn fetch_json<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        classify: Classifier,
        what: &str,
    ) -> Result<(HeaderMap, T), ProviderError> {
        let reply = self.execute(request).await?;
        if let Some(mut failure) = classify(reply.status, &reply.headers, &reply.body) {
            failure.message = format!("{what}: {}", failure.message);
            return Err(self.error(failure));
        }
        let value = self.decode(&reply, what)?;
        Ok((reply.headers, value))
    }

    /// Parses a success body as JSON.
    ///
    /// # Errors
    ///
    /// [`ErrorClass::Decode`] naming `what` and quoting the start of the body.
    pub(crate) fn decode<T: DeserializeOwned>(
        &self,
        reply: &Reply,
        what: &str,
    ) -> Result<T, ProviderError> {
        serde_json::from_slice(&reply.body).map_err(|e| {
            self.error(Failure::http(
                reply.status,
                &reply.headers,
                ErrorClass::Decode,
                format!(
                    "unexpected {what} response ({e}); body: {}",
                    excerpt(&reply.body)
                ),
            ))
        })
    }
}

/// Counts one provider request by its HTTP status, or by the failure class
/// when no response came.
fn count_request(provider: Provider, status: &str) {
    metrics::counter!(
        PROVIDER_REQUESTS_METRIC,
        "provider" => provider.as_str(),
        "status" => status.to_owned()
    )
    .increment(1);
}

/// Removes HTML tags, decodes the common entities and collapses whitespace:
/// provider messages (Frappe, WordPress) are written for a browser.
pub(crate) fn strip_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut tag: Option<String> = None;
    for c in text.chars() {
        match (&mut tag, c) {
            (None, '<') => tag = Some(String::new()),
            (None, c) => out.push(c),
            (Some(name), '>') => {
                if is_block_tag(name) {
                    out.push(' ');
                }
                tag = None;
            }
            (Some(name), c) => name.push(c),
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#039;", "'")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Tags that separate words (`<b>` inside a word must not add a space).
fn is_block_tag(tag: &str) -> bool {
    let name: String = tag
        .trim_start_matches('/')
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    matches!(
        name.as_str(),
        "br" | "p"
            | "div"
            | "li"
            | "ul"
            | "ol"
            | "tr"
            | "td"
            | "th"
            | "table"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "hr"
    )
}

/// The start of a body, as readable text, for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = strip_html(&String::from_utf8_lossy(body));
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// Serde helpers for fields that providers send in more than one shape.
pub(crate) mod de {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    /// `null`, a string or a number, as an optional string.
    pub(crate) fn opt_string_or_number<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            Value::Number(n) => Ok(Some(n.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a string or a number, got {other}"
            ))),
        }
    }

    /// A string or a number, as a string.
    pub(crate) fn string_or_number<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<String, D::Error> {
        opt_string_or_number(deserializer)?
            .ok_or_else(|| serde::de::Error::custom("expected a string or a number, got null"))
    }

    /// `null`, a number or a numeric string, as an optional float.
    pub(crate) fn opt_f64_lenient<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    /// `null`, a missing or an empty string as `None`: WooCommerce sends `""`
    /// for every unset address field.
    pub(crate) fn non_empty<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        Ok(opt_string_or_number(deserializer)?.filter(|s| !s.trim().is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_defaults() {
        let class = |s: u16| class_for_status(StatusCode::from_u16(s).unwrap());
        assert_eq!(class(400), ErrorClass::BadRequest);
        assert_eq!(class(401), ErrorClass::Unauthorized);
        assert_eq!(class(403), ErrorClass::Unauthorized);
        assert_eq!(class(404), ErrorClass::NotFound);
        assert_eq!(class(408), ErrorClass::Timeout);
        assert_eq!(class(409), ErrorClass::BadRequest);
        assert_eq!(class(422), ErrorClass::Validation);
        assert_eq!(class(429), ErrorClass::RateLimited);
        assert_eq!(class(500), ErrorClass::ServerError);
        assert_eq!(class(503), ErrorClass::ServerError);
        assert_eq!(class(302), ErrorClass::BadRequest);
    }

    #[test]
    fn error_redacts_raw_and_url_encoded_secrets() {
        let account = Account::new(Provider::Mnotify, "gh", vec!["k+y/9 z".into(), "".into()]);
        let err = account.error(Failure::local(
            ErrorClass::Unauthorized,
            "invalid api key k+y/9 z (sent as ?key=k%2By%2F9+z)",
        ));
        assert_eq!(
            err.message,
            "invalid api key [REDACTED] (sent as ?key=[REDACTED])"
        );
        assert_eq!(err.account, "gh");
    }

    #[test]
    fn error_redacts_echoed_authorization_headers() {
        let account = Account::new(Provider::Woocommerce, "BETA", vec!["ck_1".into()]);
        let err = account.error(Failure::local(
            ErrorClass::Unauthorized,
            "bad request; you sent Authorization: Basic Y2tfMTpjc18y and ?consumer_secret=cs_2",
        ));
        assert_eq!(
            err.message,
            "bad request; you sent Authorization: [REDACTED] and ?consumer_secret=[REDACTED]"
        );
    }

    #[test]
    fn retry_after_is_kept_for_transient_failures_only() {
        let mut headers = HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        let busy = Failure::http(
            StatusCode::SERVICE_UNAVAILABLE,
            &headers,
            ErrorClass::ServerError,
            "",
        );
        assert_eq!(busy.retry_after, Some(Duration::from_secs(7)));
        let bad = Failure::http(
            StatusCode::BAD_REQUEST,
            &headers,
            ErrorClass::BadRequest,
            "",
        );
        assert_eq!(bad.retry_after, None);
    }

    #[test]
    fn strip_html_keeps_the_words() {
        assert_eq!(
            strip_html("Could not find <b>Customer</b>: <a href=\"/x\">Jo &amp; Co</a>.<br>Row #2"),
            "Could not find Customer: Jo & Co. Row #2"
        );
    }

    #[test]
    fn excerpt_truncates_on_a_char_boundary() {
        let long = "é".repeat(500);
        let cut = excerpt(long.as_bytes());
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt(b"  "), "(empty body)");
    }
}
