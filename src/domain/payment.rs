//! Payment rules: which shop statuses can be invoiced now, which wait for
//! payment, and the ERP's spelling of each shop payment method.

/// Shop statuses that mean "paid or cash on delivery": invoice now.
pub const PAYABLE_STATUSES: [&str; 2] = ["processing", "completed"];
/// Shop statuses that mean "not yet": defer.
pub const AWAITING_PAYMENT: [&str; 2] = ["pending", "on-hold"];

/// The ERP's Mode of Payment for a shop payment method. The ERP rejects
/// anything else (a lower-case "cash" included), so an unknown method is a
/// permanent error naming it.
pub fn mode_of_payment(method: &str) -> Option<&'static str> {
    match method {
        "instapay" => Some("Instapay"),
        "cod" => Some("Cash"),
        "kashier_card" => Some("Kashier Card"),
        "kashier_wallet" => Some("Kashier Wallet"),
        _ => None,
    }
}

/// Every shop status the scheduler looks at for invoices: payable now, or
/// waiting for payment (those jobs defer until the customer pays).
pub const INVOICEABLE_STATUSES: [&str; 4] = [
    PAYABLE_STATUSES[0],
    PAYABLE_STATUSES[1],
    AWAITING_PAYMENT[0],
    AWAITING_PAYMENT[1],
];

/// Shop statuses that cancel the order's invoice.
pub const CANCELLING_STATUSES: [&str; 2] = ["cancelled", "refunded"];

/// Whether a shop status means "the sale is off: cancel its invoice".
pub fn cancels_invoice(shop_status: &str) -> bool {
    CANCELLING_STATUSES.contains(&shop_status)
}

/// Whether a shop status means "paid or cash on delivery: invoice now".
pub fn is_payable(shop_status: &str) -> bool {
    PAYABLE_STATUSES.contains(&shop_status)
}

/// Whether a shop status means "not paid yet: wait".
pub fn is_awaiting_payment(shop_status: &str) -> bool {
    AWAITING_PAYMENT.contains(&shop_status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payment_methods_map_to_the_erp_spelling() {
        assert_eq!(mode_of_payment("instapay"), Some("Instapay"));
        assert_eq!(mode_of_payment("cod"), Some("Cash"));
        assert_eq!(mode_of_payment("kashier_card"), Some("Kashier Card"));
        assert_eq!(mode_of_payment("kashier_wallet"), Some("Kashier Wallet"));
        assert_eq!(mode_of_payment("paypal"), None);
        assert_eq!(mode_of_payment("Cash"), None);
    }
}
