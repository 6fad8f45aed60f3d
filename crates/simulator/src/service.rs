//! The four simulated services, by name: the key of every per-service knob,
//! failure queue, counter and admin route.

use std::fmt;
use std::str::FromStr;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One of the simulated external services; faults and counters are per service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Maystro Delivery, under `/maystro/api`.
    Courier,
    /// WooCommerce REST v3, under `/shop/{store}/wp-json/wc/v3`.
    Shop,
    /// ERPNext / Frappe, under `/erp`.
    Erp,
    /// mNotify BMS v2, under `/mnotify`.
    Sms,
    /// Yalidine, the second courier, under `/yalidine/v1`.
    Yalidine,
    /// Twilio Messages, the second SMS gateway, under `/twilio`.
    Twilio,
    /// Datamart, an order-status source, under `/datamart/api/developer`.
    Datamart,
}

impl Service {
    /// Every service, in a fixed order.
    pub const ALL: [Service; 7] = [
        Service::Courier,
        Service::Shop,
        Service::Erp,
        Service::Sms,
        Service::Yalidine,
        Service::Twilio,
        Service::Datamart,
    ];

    /// The lowercase name used in JSON and admin routes.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Courier => "courier",
            Service::Shop => "shop",
            Service::Erp => "erp",
            Service::Sms => "sms",
            Service::Yalidine => "yalidine",
            Service::Twilio => "twilio",
            Service::Datamart => "datamart",
        }
    }

    /// Position in [`Service::ALL`], for per-service arrays.
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Service {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Service> {
        Service::ALL
            .into_iter()
            .find(|svc| svc.as_str() == s)
            .with_context(|| {
                format!(
                    "unknown service {s:?}: expected courier, shop, erp, sms, yalidine, twilio or datamart"
                )
            })
    }
}
