//! Requests per credential per wall-clock second, per service: what a real
//! provider's rate limiter sees, so tests can assert that every worker
//! process together stayed within an account's limit.
//!
//! The credential is the request's `Authorization` header, else Yalidine's
//! `X-API-TOKEN`, else its `consumer_key` or `key` query parameter (WooCommerce and mNotify put
//! keys there); a request with none counts under `-`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use axum::http::header;

use crate::http::{query_get, query_pairs};
use crate::lock::lock;
use crate::service::Service;

/// (service, credential) -> (second, requests in it) and the busiest second.
#[derive(Default)]
pub(crate) struct RateCounter {
    per_key: Mutex<HashMap<(Service, String), KeyRate>>,
}

#[derive(Default, Clone, Copy)]
struct KeyRate {
    second: u64,
    in_second: u64,
    peak: u64,
}

impl RateCounter {
    /// Count `req` against its credential's current second.
    pub(crate) fn count(&self, service: Service, req: &Request) {
        let key = credential(req);
        let second = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut map = lock(&self.per_key);
        let rate = map.entry((service, key)).or_default();
        if rate.second != second {
            rate.second = second;
            rate.in_second = 0;
        }
        rate.in_second += 1;
        rate.peak = rate.peak.max(rate.in_second);
    }

    /// The most requests one credential made to `service` in one second.
    pub(crate) fn peak(&self, service: Service) -> u64 {
        lock(&self.per_key)
            .iter()
            .filter(|((s, _), _)| *s == service)
            .map(|(_, r)| r.peak)
            .max()
            .unwrap_or(0)
    }
}

fn credential(req: &Request) -> String {
    if let Some(auth) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        return auth.to_owned();
    }
    if let Some(token) = req
        .headers()
        .get("x-api-token")
        .and_then(|v| v.to_str().ok())
    {
        return token.to_owned();
    }
    let pairs = query_pairs(req.uri().query());
    query_get(&pairs, "consumer_key")
        .or_else(|| query_get(&pairs, "key"))
        .unwrap_or("-")
        .to_owned()
}

/// Yalidine's quota windows, in seconds: second, minute, hour, day.
const QUOTA_WINDOWS: [u64; 4] = [1, 60, 3600, 86_400];

/// What one request to a metered account found: what is left in each window
/// after it (second, minute, hour, day), or that a window was already spent
/// and for how many seconds more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QuotaUse {
    /// Served; left per window.
    Served([u64; 4]),
    /// Refused; seconds until the spent window ends.
    Spent(u64),
}

/// Requests per account per quota window (Yalidine's metering).
#[derive(Default)]
pub(crate) struct QuotaBook {
    /// account -> (window start, requests in it) per window.
    used: Mutex<HashMap<String, [(u64, u64); 4]>>,
}

impl QuotaBook {
    /// Counts one request of `account` against `limits` (per second,
    /// minute, hour, day); a refused request counts nowhere.
    pub(crate) fn take(&self, account: &str, limits: [u64; 4]) -> QuotaUse {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut map = lock(&self.used);
        let windows = map.entry(account.to_owned()).or_default();
        for (i, span) in QUOTA_WINDOWS.iter().enumerate() {
            let start = now - now % span;
            if windows[i].0 != start {
                windows[i] = (start, 0);
            }
        }
        if let Some(i) = (0..4).find(|&i| windows[i].1 >= limits[i]) {
            return QuotaUse::Spent(windows[i].0 + QUOTA_WINDOWS[i] - now);
        }
        let mut left = [0; 4];
        for i in 0..4 {
            windows[i].1 += 1;
            left[i] = limits[i] - windows[i].1;
        }
        QuotaUse::Served(left)
    }
}
