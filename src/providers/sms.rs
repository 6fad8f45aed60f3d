//! The SMS role: what `send_sms` and the resend command need from any
//! gateway, whichever provider the SMS account is with. A closed enum, for
//! the reasons given in [`super::courier`].

use chrono::{DateTime, Utc};

use super::mnotify::MnotifyClient;
use super::twilio::TwilioClient;
use super::ProviderError;
use crate::domain::Provider;

/// The SMS account's client.
#[derive(Debug, Clone)]
pub enum SmsClient {
    /// An mNotify key and sender id.
    Mnotify(MnotifyClient),
    /// A Twilio account and sending number.
    Twilio(TwilioClient),
}

/// A text the gateway accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentText {
    /// The gateway's id for it (mNotify's campaign id, Twilio's `SM...`).
    pub message_id: String,
}

/// What a look-up of an earlier send found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PastSend {
    /// The gateway has it, with this id.
    Found(String),
    /// The gateway lists its texts and this one is not among them.
    NotFound,
    /// The gateway cannot be asked (mNotify lists no texts).
    CannotTell,
}

impl SmsClient {
    /// Which provider the account is with.
    pub fn provider(&self) -> Provider {
        match self {
            SmsClient::Mnotify(_) => Provider::Mnotify,
            SmsClient::Twilio(_) => Provider::Twilio,
        }
    }

    /// The configured account name.
    pub fn account(&self) -> &str {
        match self {
            SmsClient::Mnotify(c) => c.account(),
            SmsClient::Twilio(c) => c.account(),
        }
    }

    /// Sends `text` to `phone`.
    ///
    /// # Errors
    /// As the provider's `send`: permanent for a refused recipient, sender
    /// or key; transient for 429, 5xx, connection failures and timeouts
    /// (after a timeout the text may have gone out: see [`SmsClient::find`]).
    pub async fn send(&self, phone: &str, text: &str) -> Result<SentText, ProviderError> {
        let message_id = match self {
            SmsClient::Mnotify(c) => c.send(phone, text).await?.message_id,
            SmsClient::Twilio(c) => c.send(phone, text).await?.sid,
        };
        Ok(SentText { message_id })
    }

    /// Whether `text` went to `phone` at or after `since`, when the gateway
    /// can say.
    ///
    /// # Errors
    /// The look-up itself failed (as [`SmsClient::send`]): nothing is known.
    pub async fn find(
        &self,
        phone: &str,
        text: &str,
        since: DateTime<Utc>,
    ) -> Result<PastSend, ProviderError> {
        match self {
            SmsClient::Mnotify(_) => Ok(PastSend::CannotTell),
            SmsClient::Twilio(c) => Ok(match c.find_sent(phone, text, since).await? {
                Some(message) => PastSend::Found(message.sid),
                None => PastSend::NotFound,
            }),
        }
    }

    /// Checks the credentials; a short description of what was found.
    ///
    /// # Errors
    /// As [`SmsClient::send`].
    pub async fn check(&self) -> Result<String, ProviderError> {
        match self {
            SmsClient::Mnotify(c) => c.check().await.map(|balance| match balance {
                Some(b) => format!("reachable, balance {b}"),
                None => "reachable".to_owned(),
            }),
            SmsClient::Twilio(c) => c.check().await.map(|status| format!("account {status}")),
        }
    }
}
