//! The SMS gateway's log of accepted texts and the account's credit.

/// SMS credit the simulated account starts with.
pub(super) const SMS_STARTING_CREDIT: i64 = 100_000;

/// One accepted SMS, per recipient.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct SmsRecord {
    pub(crate) recipient: String,
    pub(crate) sender: String,
    pub(crate) message: String,
    pub(crate) message_id: String,
    pub(crate) sent_at: String,
}
