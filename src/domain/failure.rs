//! Why an attempt failed: the provider failure classes adapters decide, the
//! providers themselves, and [`FailureClass`], the typed error class every
//! failed attempt carries into the ledger.
//!
//! The ledger stores a class as the same snake_case string it always has
//! (`timeout`, `claim_held`, ...), so no stored meaning changes; the
//! provider travels beside it in the type instead of being parsed back out
//! of the message.

use std::fmt;

/// An external service ordersync talks to, by API (not by account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// Maystro Delivery (courier).
    Maystro,
    /// WooCommerce REST v3 (shop).
    Woocommerce,
    /// ERPNext / Frappe (ERP).
    Erpnext,
    /// mNotify BMS v2 (SMS).
    Mnotify,
    /// Yalidine (courier).
    Yalidine,
    /// Twilio Messages (SMS).
    Twilio,
    /// Datamart (order status source, data bundles).
    Datamart,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 7] = [
        Provider::Maystro,
        Provider::Woocommerce,
        Provider::Erpnext,
        Provider::Mnotify,
        Provider::Yalidine,
        Provider::Twilio,
        Provider::Datamart,
    ];

    /// The stable lowercase name (logs, metrics labels, messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Maystro => "maystro",
            Provider::Woocommerce => "woocommerce",
            Provider::Erpnext => "erpnext",
            Provider::Mnotify => "mnotify",
            Provider::Yalidine => "yalidine",
            Provider::Twilio => "twilio",
            Provider::Datamart => "datamart",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of failure, decided once per provider response.
///
/// Transient classes ([`ErrorClass::is_transient`]) are worth retrying with
/// backoff; the others are not. [`ErrorClass::AlreadyExists`] means the work
/// was already done (for example the ERP already holds the invoice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The request or the response body did not complete in time.
    Timeout,
    /// No connection, or it broke before a response arrived.
    Connection,
    /// The provider failed on its side (5xx, or an ERP timestamp conflict).
    ServerError,
    /// The provider asked us to slow down (429, or an ERP rate limit).
    RateLimited,
    /// The credential was refused (401/403): fix the configuration.
    Unauthorized,
    /// The resource does not exist for this account.
    NotFound,
    /// The resource already exists: the work was already done.
    AlreadyExists,
    /// The provider rejected the content (ERP validation, SMS recipient).
    Validation,
    /// The provider rejected the request itself (400 and other 4xx).
    BadRequest,
    /// A success response we could not parse.
    Decode,
    /// Never sent: the account's shared budget had no room (its rate limit,
    /// in-flight cap, or a slow-down the provider asked for). The job is
    /// parked without using an attempt (`crate::worker::settle`).
    HeldBack,
}

impl ErrorClass {
    /// True when trying again later can help.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::Connection
                | Self::ServerError
                | Self::RateLimited
                | Self::HeldBack
        )
    }

    /// Stable snake_case name, for logs, metrics and ledger rows.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connection => "connection",
            Self::ServerError => "server_error",
            Self::RateLimited => "rate_limited",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::Validation => "validation",
            Self::BadRequest => "bad_request",
            Self::Decode => "decode",
            Self::HeldBack => "held_back",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an attempt failed, typed. Stored as [`FailureClass::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// A provider's answer (or the lack of one), classified by its adapter.
    Provider(Provider, ErrorClass),
    /// A provider answered "success" without what we need from it.
    BadResponse(Provider),
    /// Our own Postgres failed.
    Database,
    /// Our own Redis failed (pushing a follow-up).
    Queue,
    /// Another job holds this order's claim (its invoice, its text).
    ClaimHeld,
    /// The task is not a valid job of its kind (no order, no status, not JSON).
    BadPayload,
    /// The shop sent an order we cannot store (the field is named).
    BadOrder,
    /// The job names an order the ledger does not have.
    UnknownOrder,
    /// The job names a store that is not configured (any more).
    UnknownStore,
    /// The order's payment method has no ERP spelling.
    UnknownPaymentMethod,
    /// The order has no phone number to text.
    NoPhone,
    /// A text may or may not have gone out; it is not sent again by itself.
    DeliveryUnknown,
    /// The worker died (or was cut off) mid-attempt.
    WorkerDied,
    /// The handler panicked.
    Panic,
    /// Deferred (payment pending) for longer than the maximum age.
    DeferredTooLong,
    /// The no-op job was asked to fail (tests and benchmarks).
    Test,
    /// An operator paused the job's store, account or kind: the job is
    /// parked without using an attempt until they resume it.
    Paused,
}

impl FailureClass {
    /// The ledger's spelling (`job_runs.error_class`, `dead_letters.error_class`).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Provider(_, class) => class.as_str(),
            FailureClass::BadResponse(_) => "bad_response",
            FailureClass::Database => "database",
            FailureClass::Queue => "queue",
            FailureClass::ClaimHeld => "claim_held",
            FailureClass::BadPayload => "bad_payload",
            FailureClass::BadOrder => "bad_order",
            FailureClass::UnknownOrder => "unknown_order",
            FailureClass::UnknownStore => "unknown_store",
            FailureClass::UnknownPaymentMethod => "unknown_payment_method",
            FailureClass::NoPhone => "no_phone",
            FailureClass::DeliveryUnknown => "delivery_unknown",
            FailureClass::WorkerDied => "worker_died",
            FailureClass::Panic => "panic",
            FailureClass::DeferredTooLong => "deferred_too_long",
            FailureClass::Test => "test",
            FailureClass::Paused => "paused",
        }
    }

    /// Whether our own infrastructure failed (Postgres, Redis), not the job
    /// or its provider: such an attempt is retried without using the job's
    /// attempt budget, because an outage of ours says nothing about the job.
    pub fn is_infrastructure(self) -> bool {
        matches!(self, FailureClass::Database | FailureClass::Queue)
    }

    /// The provider the failure came from, if one did.
    pub fn provider(self) -> Option<Provider> {
        match self {
            FailureClass::Provider(provider, _) | FailureClass::BadResponse(provider) => {
                Some(provider)
            }
            _ => None,
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_classes_are_timeouts_connections_server_errors_rate_limits_and_held_back() {
        use ErrorClass::*;
        let all = [
            Timeout,
            Connection,
            ServerError,
            RateLimited,
            Unauthorized,
            NotFound,
            AlreadyExists,
            Validation,
            BadRequest,
            Decode,
            HeldBack,
        ];
        let transient: Vec<_> = all.into_iter().filter(|c| c.is_transient()).collect();
        assert_eq!(
            transient,
            [Timeout, Connection, ServerError, RateLimited, HeldBack]
        );
        let names: Vec<_> = all.into_iter().map(ErrorClass::as_str).collect();
        assert_eq!(
            names,
            [
                "timeout",
                "connection",
                "server_error",
                "rate_limited",
                "unauthorized",
                "not_found",
                "already_exists",
                "validation",
                "bad_request",
                "decode",
                "held_back"
            ]
        );
    }

    #[test]
    fn provider_failures_are_stored_as_their_provider_class() {
        let class = FailureClass::Provider(Provider::Maystro, ErrorClass::Unauthorized);
        assert_eq!(class.as_str(), "unauthorized");
        assert_eq!(class.provider(), Some(Provider::Maystro));
        assert_eq!(FailureClass::ClaimHeld.as_str(), "claim_held");
        assert_eq!(FailureClass::ClaimHeld.provider(), None);
    }
}
