//! Texts whose fate is unknown, and sending one again on purpose.
//!
//! A text is sent at most once by default: when the gateway timed out, or the
//! worker died mid-send, nobody knows whether the customer got it, and
//! `send_sms` never sends it again by itself. Those texts are listed here
//! (`ordersync sms unknown`, the admin API, the dashboard, a metric), and an
//! operator may resend one or all of them (`ordersync sms resend`): each
//! resend is a new `send_sms` job, recorded in the ledger with who asked, and
//! the failed job's dead letter is marked replayed by it. A gateway that lists
//! its texts (Twilio) is asked first, by recipient and time: a text it has
//! is recorded as sent and not sent again.

use serde::Serialize;
use uuid::Uuid;

use crate::domain::{JobKind, Source};
use crate::jobs::Deps;
use crate::ledger::{dead_letters, orders, sms};
use crate::providers::sms::PastSend;
use crate::queue::NewJob;

/// Whether the gateway has `text` already: `Ok(Some(id))` found, `Ok(None)`
/// not listed or the gateway cannot tell, `Err(why)` the look-up failed.
async fn sent_already(deps: &Deps, text: &sms::UnknownText) -> Result<Option<String>, String> {
    let gateway = deps.accounts.sms().map_err(|e| e.to_string())?;
    let since = text.claimed_at - crate::jobs::send_sms::LOOKUP_CLOCK_SLACK;
    match gateway.find(&text.phone, &text.message, since).await {
        Ok(PastSend::Found(id)) => Ok(Some(id)),
        Ok(PastSend::NotFound | PastSend::CannotTell) => Ok(None),
        Err(e) => Err(format!(
            "could not ask {} whether it was sent ({e}); not resent",
            gateway.provider()
        )),
    }
}

/// Which unknown texts to resend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// The text announcing `status` on order `reference`.
    One {
        /// Order reference.
        reference: String,
        /// Normalized status the text announces.
        status: String,
    },
    /// Every text of unknown fate (of one store, if given).
    All {
        /// Only this store.
        store: Option<String>,
    },
}

/// What a resend did to one text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Resend {
    /// A new job will send it.
    Resent {
        /// Order reference.
        reference: String,
        /// The status it announces.
        status: String,
        /// The job that will send it.
        job_id: Uuid,
        /// The job whose attempt left it unknown.
        previous_job: Uuid,
    },
    /// Would be resent (`--dry-run`).
    WouldResend {
        /// Order reference.
        reference: String,
        /// The status it announces.
        status: String,
    },
    /// Not resent, and why.
    Skipped {
        /// Order reference.
        reference: String,
        /// The status it announces.
        status: String,
        /// Why.
        reason: String,
    },
}

/// Resend the selected texts, as `by` asked through `source`.
///
/// # Errors
/// An unknown order reference, or Postgres failed (texts already handed to
/// a new job stay so; pushes that fail are done by the reconciler).
pub async fn resend(
    deps: &Deps,
    selection: &Selection,
    by: &str,
    source: Source,
    dry_run: bool,
) -> anyhow::Result<Vec<Resend>> {
    let targets: Vec<(i64, String, String, String)> = match selection {
        Selection::One { reference, status } => {
            let order = orders::by_reference(&deps.db, reference)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no order with reference '{reference}'"))?;
            vec![(order.id, order.store, reference.clone(), status.clone())]
        }
        Selection::All { store } => sms::unknown(&deps.db, store.as_deref(), i64::MAX)
            .await?
            .into_iter()
            .map(|t| (t.order_id, t.store, t.reference, t.status))
            .collect(),
    };
    let unknown_texts: std::collections::HashMap<(i64, String), sms::UnknownText> =
        sms::unknown(&deps.db, None, i64::MAX)
            .await?
            .into_iter()
            .map(|t| ((t.order_id, t.status.clone()), t))
            .collect();
    let mut results = Vec::with_capacity(targets.len());
    for (order_id, store, reference, status) in targets {
        if let Some(text) = unknown_texts.get(&(order_id, status.clone())) {
            let found = match sent_already(deps, text).await {
                Ok(found) => found,
                Err(reason) => {
                    results.push(Resend::Skipped {
                        reference,
                        status,
                        reason,
                    });
                    continue;
                }
            };
            if let Some(message_id) = found {
                if !dry_run {
                    sms::mark_sent(&deps.db, order_id, &status, &message_id).await?;
                }
                results.push(Resend::Skipped {
                    reference,
                    status,
                    reason: format!(
                        "the gateway has it (sent as {message_id}); {}",
                        if dry_run {
                            "would be recorded as sent"
                        } else {
                            "recorded as sent"
                        }
                    ),
                });
                continue;
            }
        }
        if dry_run {
            let unknown = sms::unknown(&deps.db, Some(&store), i64::MAX)
                .await?
                .iter()
                .any(|t| t.order_id == order_id && t.status == status);
            results.push(if unknown {
                Resend::WouldResend { reference, status }
            } else {
                Resend::Skipped {
                    reference,
                    status,
                    reason: "its fate is not unknown (sent, never tried, or already being resent)"
                        .into(),
                }
            });
            continue;
        }
        let job_id = Uuid::now_v7();
        let mut tx = deps.db.begin().await?;
        let Some(previous_job) =
            sms::request_resend(&mut tx, order_id, &status, job_id, by).await?
        else {
            results.push(Resend::Skipped {
                reference,
                status,
                reason: "its fate is not unknown (sent, never tried, or already being resent)"
                    .into(),
            });
            continue;
        };
        let job = NewJob {
            args: serde_json::json!({ "status": status, "resend_of": previous_job }),
            job_id: Some(job_id),
            ..NewJob::for_order(JobKind::SendSms, &store, &reference)
        };
        let deliveries = deps
            .enqueuer
            .record(&mut tx, source, std::slice::from_ref(&job))
            .await?;
        dead_letters::mark_replayed(&mut *tx, previous_job, job_id, by).await?;
        tx.commit().await?;
        deps.enqueuer.push_committed(&deliveries).await;
        results.push(Resend::Resent {
            reference,
            status,
            job_id,
            previous_job,
        });
    }
    Ok(results)
}
