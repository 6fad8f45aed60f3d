//! The courier role: what the courier jobs (`fetch_tracking`,
//! `refresh_status`) need from any courier, whichever provider a store's
//! account is with.
//!
//! A closed enum, not a trait object: the providers are known when ordersync
//! is built and chosen per account by the configuration, so a `match` per
//! call is all the dispatch needed. It keeps plain `async fn`s (a `dyn`
//! trait would need boxed futures on every call), and a new provider is a
//! compile error at each place it must be handled, all in this file.
//!
//! Each adapter's shapes are turned here into [`CourierOrder`]: the
//! normalized status with the raw code and label beside it.

use chrono::{DateTime, Utc};

use super::datamart::{DatamartClient, DatamartOrder};
use super::maystro::{MaystroClient, MaystroOrder};
use super::yalidine::{Parcel, YalidineClient};
use super::ProviderError;
use crate::domain::status::map_maystro;
use crate::domain::{NormalizedStatus, Provider};

/// One courier account's client.
#[derive(Debug, Clone)]
pub enum CourierClient {
    /// A Maystro Delivery store key.
    Maystro(MaystroClient),
    /// A Yalidine API id and token.
    Yalidine(YalidineClient),
    /// A Datamart key: a status source with no listing, asked order by
    /// order by reference.
    Datamart(DatamartClient),
}

/// What a courier says about one of its orders, in our terms.
#[derive(Debug, Clone, PartialEq)]
pub struct CourierOrder {
    /// The shop's order reference, if the courier has it.
    pub reference: Option<String>,
    /// The tracking number customers see.
    pub tracking_number: Option<String>,
    /// The courier's numeric order id, for couriers that have one (Maystro).
    pub courier_order_id: Option<i64>,
    /// The raw status code (Maystro's; Yalidine's label position).
    pub code: i32,
    /// The raw status label.
    pub label: String,
    /// The normalized status.
    pub status: NormalizedStatus,
    /// The courier's time of this status.
    pub updated_at: Option<DateTime<Utc>>,
}

/// One page of a courier account's orders.
#[derive(Debug, Clone, PartialEq)]
pub struct CourierPage {
    /// Orders over all pages, as the courier counts them now.
    pub total: u64,
    /// More pages follow.
    pub has_more: bool,
    /// This page's readable orders.
    pub orders: Vec<CourierOrder>,
}

/// How to ask a courier about one order: by what the ledger knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderKey {
    /// The courier's numeric id (Maystro).
    CourierId(i64),
    /// The tracking number (Yalidine).
    Tracking(String),
    /// The shop's reference, as given to the courier (Yalidine's `order_id`).
    Reference(String),
}

impl std::fmt::Display for OrderKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OrderKey::CourierId(id) => write!(f, "courier id {id}"),
            OrderKey::Tracking(t) => write!(f, "tracking {t}"),
            OrderKey::Reference(r) => write!(f, "order id {r}"),
        }
    }
}

impl CourierClient {
    /// Which provider the account is with.
    pub fn provider(&self) -> Provider {
        match self {
            CourierClient::Maystro(_) => Provider::Maystro,
            CourierClient::Yalidine(_) => Provider::Yalidine,
            CourierClient::Datamart(_) => Provider::Datamart,
        }
    }

    /// Whether the account's orders can be listed page by page
    /// ([`CourierClient::list_page`]); otherwise each order is looked up by
    /// reference.
    pub fn can_list(&self) -> bool {
        !matches!(self, CourierClient::Datamart(_))
    }

    /// The configured account name.
    pub fn account(&self) -> &str {
        match self {
            CourierClient::Maystro(c) => c.account(),
            CourierClient::Yalidine(c) => c.account(),
            CourierClient::Datamart(c) => c.account(),
        }
    }

    /// Reads page `page` (from 1) of the account's orders.
    ///
    /// # Errors
    /// As the provider's own listing (`MaystroClient::list_orders_page`,
    /// `YalidineClient::list_parcels_page`): transient for timeouts,
    /// connection errors, 5xx and 429; permanent for a refused credential.
    pub async fn list_page(&self, page: u32) -> Result<CourierPage, ProviderError> {
        match self {
            CourierClient::Maystro(c) => {
                let p = c.list_orders_page(page).await?;
                Ok(CourierPage {
                    total: p.count,
                    has_more: p.next.is_some(),
                    orders: p.results.iter().map(from_maystro).collect(),
                })
            }
            CourierClient::Yalidine(c) => {
                let p = c.list_parcels_page(page).await?;
                Ok(CourierPage {
                    total: p.total_data,
                    has_more: p.has_more,
                    orders: p.data.iter().map(from_yalidine).collect(),
                })
            }
            CourierClient::Datamart(_) => Err(self.cannot("list its orders")),
        }
    }

    /// How this courier can be asked about an order the ledger knows by
    /// `reference`, `tracking_number` and `courier_order_id`; `None` when it
    /// cannot be yet (a Maystro order before `fetch_tracking` found its id).
    pub fn key_for(
        &self,
        reference: &str,
        tracking_number: Option<&str>,
        courier_order_id: Option<i64>,
    ) -> Option<OrderKey> {
        match self {
            CourierClient::Maystro(_) => courier_order_id.map(OrderKey::CourierId),
            // Any parcel can be found by the reference it was created with;
            // the tracking number is the exact key once known.
            CourierClient::Yalidine(_) => Some(match tracking_number {
                Some(t) => OrderKey::Tracking(t.to_owned()),
                None => OrderKey::Reference(reference.to_owned()),
            }),
            CourierClient::Datamart(_) => Some(OrderKey::Reference(reference.to_owned())),
        }
    }

    /// Reads one order.
    ///
    /// # Errors
    /// [`super::ErrorClass::NotFound`] when the account does not know it
    /// (which is also what a wrong account for the store looks like); a
    /// key this courier cannot use is [`super::ErrorClass::BadRequest`];
    /// otherwise as [`CourierClient::list_page`].
    pub async fn get_order(&self, key: &OrderKey) -> Result<CourierOrder, ProviderError> {
        match (self, key) {
            (CourierClient::Maystro(c), OrderKey::CourierId(id)) => {
                Ok(from_maystro(&c.get_order(*id).await?))
            }
            (CourierClient::Yalidine(c), OrderKey::Tracking(t)) => {
                Ok(from_yalidine(&c.parcel_by_tracking(t).await?))
            }
            (CourierClient::Yalidine(c), OrderKey::Reference(r)) => {
                Ok(from_yalidine(&c.parcel_by_order_id(r).await?))
            }
            (CourierClient::Datamart(c), OrderKey::Reference(r)) => {
                Ok(from_datamart(&c.order_status(r).await?))
            }
            (client, key) => Err(client.cannot(&format!("look up orders by {key}"))),
        }
    }

    /// A request this provider cannot make, refused before sending.
    fn cannot(&self, what: &str) -> ProviderError {
        ProviderError {
            provider: self.provider(),
            account: self.account().to_owned(),
            class: super::ErrorClass::BadRequest,
            http_status: None,
            retry_after: None,
            message: format!("{} cannot {what}", self.provider()),
        }
    }

    /// Why the courier says an order is where it is, when it gives reasons
    /// (Yalidine's history: "Client absent"); `None` otherwise.
    ///
    /// # Errors
    /// As [`CourierClient::list_page`].
    pub async fn latest_reason(
        &self,
        order: &CourierOrder,
    ) -> Result<Option<String>, ProviderError> {
        match (self, order.tracking_number.as_deref()) {
            (CourierClient::Yalidine(c), Some(tracking)) => {
                let history = c.histories(tracking).await?;
                Ok(history
                    .into_iter()
                    .filter(|h| h.status.trim() == order.label.trim())
                    .max_by_key(|h| super::yalidine::parse_time(&h.date_status))
                    .and_then(|h| h.reason)
                    .filter(|r| !r.trim().is_empty()))
            }
            _ => Ok(None),
        }
    }

    /// Checks the credential; what it can see, in words.
    ///
    /// # Errors
    /// As [`CourierClient::list_page`].
    pub async fn check(&self) -> Result<String, ProviderError> {
        let visible = match self {
            CourierClient::Maystro(c) => c.check().await?,
            CourierClient::Yalidine(c) => c.check().await?,
            CourierClient::Datamart(c) => {
                c.check().await?;
                return Ok("key accepted".to_owned());
            }
        };
        Ok(format!("{visible} orders visible"))
    }
}

/// A Maystro order in our terms: its integer status through Maystro's table
/// (an unknown code is `unknown` and keeps being polled).
fn from_maystro(order: &MaystroOrder) -> CourierOrder {
    let (status, label) = map_maystro(order.status);
    CourierOrder {
        reference: order.external_order_id.clone(),
        tracking_number: order.display_id.clone(),
        courier_order_id: Some(order.id),
        code: i32::try_from(order.status).unwrap_or(i32::MAX),
        label,
        status,
        updated_at: order.updated_at(),
    }
}

/// A Datamart order in our terms: its `orderStatus` through Datamart's
/// table; Datamart's order id serves as the tracking number.
fn from_datamart(order: &DatamartOrder) -> CourierOrder {
    let (code, status) = super::datamart::map_status(&order.order_status);
    CourierOrder {
        reference: Some(order.reference.clone()),
        tracking_number: Some(order.order_id.clone()),
        courier_order_id: None,
        code,
        label: order.order_status.clone(),
        status,
        updated_at: order.updated(),
    }
}

/// A Yalidine parcel in our terms: its label through Yalidine's table.
fn from_yalidine(parcel: &Parcel) -> CourierOrder {
    let (code, status) = parcel.status();
    CourierOrder {
        reference: parcel.order_id.clone(),
        tracking_number: Some(parcel.tracking.clone()),
        courier_order_id: None,
        code,
        label: parcel.last_status.clone().unwrap_or_default(),
        status,
        updated_at: parcel.updated_at(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn client(provider: Provider) -> CourierClient {
        let http = reqwest::Client::new();
        match provider {
            Provider::Yalidine => CourierClient::Yalidine(YalidineClient::new(
                "yal",
                "http://127.0.0.1:9",
                "id".into(),
                "token".into(),
                http,
            )),
            _ => CourierClient::Maystro(MaystroClient::new(
                "m",
                "http://127.0.0.1:9",
                "k".into(),
                http,
            )),
        }
    }

    #[test]
    fn maystro_is_asked_by_its_id_and_yalidine_by_tracking_else_reference() {
        let maystro = client(Provider::Maystro);
        assert_eq!(
            maystro.key_for("ALPH-1", Some("771"), Some(55)),
            Some(OrderKey::CourierId(55))
        );
        assert_eq!(maystro.key_for("ALPH-1", Some("771"), None), None);
        let yalidine = client(Provider::Yalidine);
        assert_eq!(
            yalidine.key_for("ALPH-1", Some("yal-1"), None),
            Some(OrderKey::Tracking("yal-1".into()))
        );
        assert_eq!(
            yalidine.key_for("ALPH-1", None, None),
            Some(OrderKey::Reference("ALPH-1".into()))
        );
        assert_eq!(yalidine.provider(), Provider::Yalidine);
        assert_eq!(yalidine.account(), "yal");
    }

    #[tokio::test]
    async fn a_key_of_another_courier_is_refused_without_a_request() {
        let err = client(Provider::Maystro)
            .get_order(&OrderKey::Tracking("yal-1".into()))
            .await
            .unwrap_err();
        assert_eq!(err.class, super::super::ErrorClass::BadRequest);
        assert_eq!(
            err.message,
            "maystro cannot look up orders by tracking yal-1"
        );
    }

    #[test]
    fn both_couriers_orders_normalize_with_their_raw_status_kept() {
        let maystro: MaystroOrder = serde_json::from_value(json!({
            "id": 7, "display_id": 771, "external_order_id": "ALPH-1", "status": 41,
            "last_update": "2024-05-02T10:11:12Z"
        }))
        .unwrap();
        let m = from_maystro(&maystro);
        assert_eq!(
            (m.courier_order_id, m.code, m.label.as_str(), m.status),
            (Some(7), 41, "LIVRÉ", NormalizedStatus::Delivered)
        );
        let parcel: Parcel = serde_json::from_value(json!({
            "tracking": "yal-1", "order_id": "ALPH-2", "last_status": "Sorti en livraison",
            "date_last_status": "2024-05-02 10:11:12"
        }))
        .unwrap();
        let y = from_yalidine(&parcel);
        assert_eq!(
            (y.courier_order_id, y.code, y.label.as_str(), y.status),
            (
                None,
                5,
                "Sorti en livraison",
                NormalizedStatus::OutForDelivery
            )
        );
        assert_eq!(y.reference.as_deref(), Some("ALPH-2"));
        assert_eq!(y.tracking_number.as_deref(), Some("yal-1"));
    }
}
