//! Requests per credential per wall-clock second, per service: what a real
//! provider's rate limiter sees, so tests can assert that every worker
//! process together stayed within an account's limit.
//!
//! The credential is the request's `Authorization` header, else its
//! `consumer_key` or `key` query parameter (WooCommerce and mNotify put
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
    let pairs = query_pairs(req.uri().query());
    query_get(&pairs, "consumer_key")
        .or_else(|| query_get(&pairs, "key"))
        .unwrap_or("-")
        .to_owned()
}
