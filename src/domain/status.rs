//! Maystro's 18 status codes mapped to our normalized statuses.
//!
//! The raw code and label are always kept beside the normalized status; an
//! unknown code maps to `unknown` (not final, so the order keeps being polled).

/// Our normalized courier status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NormalizedStatus {
    /// Created or waiting for pick-up.
    Pending,
    /// Being handled at the courier.
    Processing,
    /// Out of stock at the warehouse.
    OnHold,
    /// On its way.
    InTransit,
    /// With a driver.
    OutForDelivery,
    /// A delivery problem (alerted, not received).
    DeliveryIssue,
    /// Postponed by the customer or the driver.
    Postponed,
    /// Delivered (final).
    Delivered,
    /// Cancelled / aborted (final).
    Cancelled,
    /// On its way back.
    Returning,
    /// Back with the store (final).
    Returned,
    /// A code we do not know.
    Unknown,
}

impl NormalizedStatus {
    /// Every status.
    pub const ALL: [NormalizedStatus; 12] = [
        Self::Pending,
        Self::Processing,
        Self::OnHold,
        Self::InTransit,
        Self::OutForDelivery,
        Self::DeliveryIssue,
        Self::Postponed,
        Self::Delivered,
        Self::Cancelled,
        Self::Returning,
        Self::Returned,
        Self::Unknown,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Processing => "processing",
            Self::OnHold => "on_hold",
            Self::InTransit => "in_transit",
            Self::OutForDelivery => "out_for_delivery",
            Self::DeliveryIssue => "delivery_issue",
            Self::Postponed => "postponed",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Returning => "returning",
            Self::Returned => "returned",
            Self::Unknown => "unknown",
        }
    }

    /// Parse the stored spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == s)
    }

    /// Final statuses stop polling.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Delivered | Self::Cancelled | Self::Returned)
    }

    /// Whether a change into this status texts the customer. Internal stages
    /// (pending, processing, returning) are not news to a customer.
    pub fn notifies_customer(self) -> bool {
        matches!(
            self,
            Self::OnHold
                | Self::InTransit
                | Self::OutForDelivery
                | Self::DeliveryIssue
                | Self::Postponed
                | Self::Delivered
                | Self::Cancelled
                | Self::Returned
        )
    }

    /// The customer's text for a change into this status.
    pub fn sms_text(self, reference: &str, tracking: Option<&str>) -> String {
        let tracking = tracking
            .map(|t| format!(" (tracking {t})"))
            .unwrap_or_default();
        let what = match self {
            Self::OnHold => "is waiting for stock",
            Self::InTransit => "has left our warehouse",
            Self::OutForDelivery => "is out for delivery",
            Self::DeliveryIssue => "could not be delivered; the courier will contact you",
            Self::Postponed => "delivery was postponed",
            Self::Delivered => "was delivered. Thank you!",
            Self::Cancelled => "was cancelled",
            Self::Returned => "was returned to the store",
            Self::Pending | Self::Processing | Self::Returning | Self::Unknown => "was updated",
        };
        format!("Order {reference}{tracking} {what}")
    }
}

/// Every Maystro code with its French label and English name (providers.md).
pub const MAYSTRO_CODES: [(i64, &str, &str, NormalizedStatus); 18] = [
    (4, "CRÉÉ", "CREATED", NormalizedStatus::Pending),
    (
        5,
        "DEMANDE DE RAMASSAGE",
        "PICK_UP_REQUESTED",
        NormalizedStatus::Pending,
    ),
    (6, "EN COURS", "IN_PROCESS", NormalizedStatus::Processing),
    (
        8,
        "EN ATTENTE DE TRANSIT",
        "WAITING_TRANSIT",
        NormalizedStatus::Processing,
    ),
    (
        9,
        "EN TRANSIT POUR EXPÉDITION",
        "IN_TRANSIT_TO_BE_SHIPPED",
        NormalizedStatus::InTransit,
    ),
    (
        10,
        "EN TRANSIT POUR RETOUR",
        "IN_TRANSIT_TO_BE_RETURNED",
        NormalizedStatus::Returning,
    ),
    (11, "EN ATTENTE", "PENDING", NormalizedStatus::Pending),
    (
        12,
        "EN RUPTURE DE STOCK",
        "OUT_OF_STOCK",
        NormalizedStatus::OnHold,
    ),
    (
        15,
        "PRÊT À EXPÉDIER",
        "READY_TO_SHIP",
        NormalizedStatus::InTransit,
    ),
    (22, "ASSIGNÉ", "ASSIGNED", NormalizedStatus::OutForDelivery),
    (31, "EXPÉDIÉ", "SHIPPED", NormalizedStatus::OutForDelivery),
    (32, "ALERTÉ", "ALERTED", NormalizedStatus::DeliveryIssue),
    (41, "LIVRÉ", "DELIVERED", NormalizedStatus::Delivered),
    (42, "REPORTÉ", "POSTPONED", NormalizedStatus::Postponed),
    (50, "ANNULÉ", "ABORTED", NormalizedStatus::Cancelled),
    (
        51,
        "PRÊT À RETOURNER",
        "READY_TO_RETURN",
        NormalizedStatus::Returning,
    ),
    (
        52,
        "PRIS PAR LE MAGASIN",
        "TAKEN_BY_STORE",
        NormalizedStatus::Returned,
    ),
    (
        53,
        "NON REÇU",
        "NOT_RECEIVED",
        NormalizedStatus::DeliveryIssue,
    ),
];

/// Map a Maystro code: (normalized status, raw label). Unknown codes keep
/// their number in the label.
pub fn map_maystro(code: i64) -> (NormalizedStatus, String) {
    match MAYSTRO_CODES.iter().find(|(c, ..)| *c == code) {
        Some((_, french, _, status)) => (*status, (*french).to_owned()),
        None => (NormalizedStatus::Unknown, format!("UNKNOWN ({code})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_of_the_18_codes_maps_as_documented() {
        let expected = [
            (4, "pending"),
            (5, "pending"),
            (6, "processing"),
            (8, "processing"),
            (9, "in_transit"),
            (10, "returning"),
            (11, "pending"),
            (12, "on_hold"),
            (15, "in_transit"),
            (22, "out_for_delivery"),
            (31, "out_for_delivery"),
            (32, "delivery_issue"),
            (41, "delivered"),
            (42, "postponed"),
            (50, "cancelled"),
            (51, "returning"),
            (52, "returned"),
            (53, "delivery_issue"),
        ];
        assert_eq!(expected.len(), 18);
        for (code, status) in expected {
            let (mapped, label) = map_maystro(code);
            assert_eq!(mapped.as_str(), status, "code {code}");
            assert!(
                !label.is_empty() && !label.starts_with("UNKNOWN"),
                "code {code}"
            );
        }
    }

    #[test]
    fn only_delivered_aborted_and_taken_by_store_are_final() {
        let finals: Vec<i64> = MAYSTRO_CODES
            .iter()
            .filter(|(c, ..)| map_maystro(*c).0.is_final())
            .map(|(c, ..)| *c)
            .collect();
        assert_eq!(finals, vec![41, 50, 52]);
    }

    #[test]
    fn the_wrong_key_symptom_status_keeps_its_french_label() {
        assert_eq!(map_maystro(9).1, "EN TRANSIT POUR EXPÉDITION");
    }

    #[test]
    fn unknown_codes_are_not_final_and_keep_the_number() {
        let (status, label) = map_maystro(99);
        assert_eq!(status, NormalizedStatus::Unknown);
        assert!(!status.is_final());
        assert_eq!(label, "UNKNOWN (99)");
    }

    #[test]
    fn stored_spellings_round_trip() {
        for s in NormalizedStatus::ALL {
            assert_eq!(NormalizedStatus::parse(s.as_str()), Some(s));
        }
    }
}
