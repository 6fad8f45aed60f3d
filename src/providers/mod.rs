//! providers: one HTTP client per configured external account.
//!
//! Owns every request to the couriers ([`maystro`], [`yalidine`], and the
//! status source [`datamart`], behind the courier role [`courier`]), the shop ([`woocommerce`]), the ERP
//! ([`erpnext`]) and the SMS gateways ([`mnotify`], [`twilio`], behind the
//! SMS role [`sms`]): timeouts, the
//! classification of each failure into an [`ErrorClass`] (decided once, here,
//! per provider response), and keeping secrets out of errors and logs.
//!
//! It must not know about jobs, queues or the ledger: callers turn a
//! [`ProviderError`] into a retry, a dead letter or a skip. It records its
//! own request counts through the `metrics` facade
//! ([`PROVIDER_REQUESTS_METRIC`]); `ops::metrics` only describes and serves them.

/// Provider HTTP requests by provider and status (or failure class).
pub const PROVIDER_REQUESTS_METRIC: &str = "ordersync_provider_requests_total";

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, RETRY_AFTER};

pub use crate::domain::{ErrorClass, Provider};

pub mod courier;
pub mod datamart;
pub mod erpnext;
pub mod gate;
pub mod maystro;
pub mod mnotify;
pub mod sms;
#[cfg(test)]
mod testing;
mod transport;
pub mod twilio;
pub mod woocommerce;
pub mod yalidine;

/// A failed call to a provider, already classified.
///
/// The message never contains a secret: transport errors are stripped of
/// their URL and every message is scrubbed of the account's credentials.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{provider}/{account} {class}{}: {message}", HttpStatus(*http_status))]
pub struct ProviderError {
    /// Which provider answered (or failed to).
    pub provider: Provider,
    /// The configured account (or store) name, never its credential.
    pub account: String,
    /// What kind of failure this is.
    pub class: ErrorClass,
    /// The HTTP status, when the provider answered.
    pub http_status: Option<u16>,
    /// How long the provider asked us to wait (`Retry-After`), if it said.
    pub retry_after: Option<Duration>,
    /// Human-readable reason, from the provider's own error text when it gave one.
    pub message: String,
}

impl ProviderError {
    /// True when trying again later can help (see [`ErrorClass::is_transient`]).
    pub fn is_transient(&self) -> bool {
        self.class.is_transient()
    }
}

/// Formats ` (HTTP 404)` when a status is present and nothing otherwise.
struct HttpStatus(Option<u16>);

impl fmt::Display for HttpStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(status) => write!(f, " (HTTP {status})"),
            None => Ok(()),
        }
    }
}

/// Default whole-request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default TCP/TLS connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Timeouts shared by every provider client built from one [`http_client`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// Limit for a whole request, from connect to the last body byte.
    pub timeout: Duration,
    /// Limit for establishing the connection.
    pub connect_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// Builds the one `reqwest::Client` to share between provider clients, so
/// they reuse its connection pool. Sends `User-Agent: ordersync/<version>` and
/// `Accept: application/json`.
///
/// # Panics
///
/// If the TLS backend cannot be initialised, which with the bundled rustls
/// roots does not happen at run time.
pub fn http_client(settings: &HttpSettings) -> reqwest::Client {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    reqwest::Client::builder()
        .user_agent(concat!("ordersync/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .timeout(settings.timeout)
        .connect_timeout(settings.connect_timeout)
        .build()
        .expect("building the HTTP client (rustls) cannot fail")
}

/// Reads `Retry-After` as a delay: either whole seconds or an HTTP date (a
/// date in the past gives zero). `None` when absent or unreadable.
pub fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, chrono::Utc::now())
}

fn retry_after_at(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    // IMF-fixdate ("Wed, 21 Oct 2015 07:28:00 GMT") is valid RFC 2822.
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&chrono::Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(retry_after: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(retry_after).unwrap());
        h
    }

    #[test]
    fn display_names_provider_class_status_and_account() {
        let err = ProviderError {
            provider: Provider::Maystro,
            account: "ALPH".into(),
            class: ErrorClass::NotFound,
            http_status: Some(404),
            retry_after: None,
            message: "order 7 not found".into(),
        };
        assert_eq!(
            err.to_string(),
            "maystro/ALPH not_found (HTTP 404): order 7 not found"
        );
        assert!(!err.is_transient());
        let err = ProviderError {
            class: ErrorClass::Timeout,
            http_status: None,
            ..err
        };
        assert_eq!(err.to_string(), "maystro/ALPH timeout: order 7 not found");
        assert!(err.is_transient());
    }

    #[test]
    fn retry_after_reads_seconds() {
        assert_eq!(
            parse_retry_after(&headers(" 120 ")),
            Some(Duration::from_secs(120))
        );
    }

    #[test]
    fn retry_after_reads_an_http_date_relative_to_now() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:30Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let h = headers("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(retry_after_at(&h, now), Some(Duration::from_secs(30)));
        let later = now + chrono::Duration::minutes(5);
        assert_eq!(retry_after_at(&h, later), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_is_none_when_absent_or_garbage() {
        assert_eq!(parse_retry_after(&HeaderMap::new()), None);
        assert_eq!(parse_retry_after(&headers("soon")), None);
        assert_eq!(parse_retry_after(&headers("-5")), None);
    }

    #[test]
    fn default_settings_are_ten_and_three_seconds() {
        let s = HttpSettings::default();
        assert_eq!(s.timeout, Duration::from_secs(10));
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
    }
}
