//! Failed jobs: fingerprints that group them, and the replay and discard
//! operations the CLI (and the admin API) offer over the dead letters.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::{FailureClass, JobEnvelope, JobKind, Provider, Source};
use crate::jobs::Deps;
use crate::ledger::dead_letters;

/// The message with what varies between jobs of one cause (numbers, ids,
/// order references' numbers) replaced, so they share a fingerprint.
pub fn normalize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_hexdigit() && looks_like_uuid(c, &chars) {
            for _ in 0..35 {
                chars.next();
            }
            out.push_str("<id>");
        } else if c.is_ascii_digit() {
            while chars.peek().is_some_and(|d| d.is_ascii_digit()) {
                chars.next();
            }
            out.push('#');
        } else {
            out.push(c);
        }
    }
    out
}

fn looks_like_uuid(first: char, rest: &std::iter::Peekable<std::str::Chars<'_>>) -> bool {
    let candidate: String = std::iter::once(first)
        .chain(rest.clone().take(35))
        .collect();
    candidate.len() == 36 && Uuid::parse_str(&candidate).is_ok()
}

/// Group key: kind + provider + error class + normalized message.
pub fn fingerprint(kind: JobKind, class: FailureClass, message: &str) -> String {
    fingerprint_named(kind.as_str(), class, message)
}

/// [`fingerprint`] for a kind known only by name (an undecodable payload's).
pub fn fingerprint_named(kind: &str, class: FailureClass, message: &str) -> String {
    let provider = class.provider().map_or("ordersync", Provider::as_str);
    let mut hash = Sha256::new();
    for part in [kind, provider, class.as_str(), &normalize(message)] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hash.finalize()
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What a replay or discard did to one dead letter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Resolution {
    /// Re-enqueued as `new_job` with a fresh attempt budget.
    Replayed {
        /// The failed job.
        job_id: Uuid,
        /// The new job.
        new_job: Uuid,
    },
    /// Marked resolved without running.
    Discarded {
        /// The failed job.
        job_id: Uuid,
    },
    /// Would be replayed or discarded (`--dry-run`).
    WouldResolve {
        /// The failed job.
        job_id: Uuid,
    },
    /// Nothing done, and why.
    Skipped {
        /// The job.
        job_id: Uuid,
        /// Why.
        reason: String,
    },
    /// It failed, and why.
    Error {
        /// The job.
        job_id: Uuid,
        /// What went wrong.
        error: String,
    },
}

/// Why a dead letter cannot be resolved now, if it cannot.
async fn blocked(deps: &Deps, job_id: Uuid) -> anyhow::Result<Option<String>> {
    let Some(dead) = dead_letters::get(&deps.db, job_id).await? else {
        return Ok(Some(format!("job {job_id} is not a failed job")));
    };
    Ok(match (dead.resolution.as_deref(), dead.replayed_as) {
        // A replay would only meet the text's "unknown" claim and fail again:
        // sending it again is an explicit decision of its own.
        (None, _) if dead.error_class == FailureClass::DeliveryUnknown.as_str() => Some(format!(
            "its text may have been sent already; to send it again on purpose: ordersync sms resend --order {} --status {}",
            dead.order_ref.as_deref().unwrap_or("?"),
            dead.payload
                .pointer("/args/status")
                .and_then(|s| s.as_str())
                .unwrap_or("?")
        )),
        (None, _) => None,
        (Some("replayed"), Some(new_job)) => {
            let state = crate::ledger::jobs::get(&deps.db, new_job)
                .await?
                .map(|j| j.state)
                .unwrap_or_default();
            let pending = matches!(state.as_str(), "queued" | "retry" | "deferred");
            Some(if pending {
                format!("its replay {new_job} is still pending")
            } else {
                format!("already replayed as {new_job} ({state})")
            })
        }
        (Some(other), _) => Some(format!(
            "already {other} by {} at {}",
            dead.resolved_by.unwrap_or_default(),
            dead.resolved_at.map(|t| t.to_rfc3339()).unwrap_or_default()
        )),
    })
}

/// Replay dead letter `job_id`: a new job with the same arguments, a fresh
/// attempt budget, source `replay`, linked both ways. Idempotent: a dead letter
/// already replayed (its replay pending, running or done) or discarded is
/// skipped with the reason.
pub async fn replay(deps: &Deps, job_id: Uuid, by: &str, dry_run: bool) -> Resolution {
    match replay_inner(deps, job_id, by, dry_run).await {
        Ok(r) => r,
        Err(e) => Resolution::Error {
            job_id,
            error: format!("{e:#}"),
        },
    }
}

async fn replay_inner(
    deps: &Deps,
    job_id: Uuid,
    by: &str,
    dry_run: bool,
) -> anyhow::Result<Resolution> {
    if let Some(reason) = blocked(deps, job_id).await? {
        return Ok(Resolution::Skipped { job_id, reason });
    }
    if dry_run {
        return Ok(Resolution::WouldResolve { job_id });
    }
    let mut tx = deps.db.begin().await?;
    let Some(payload) = dead_letters::lock_open(&mut tx, job_id).await? else {
        let reason = blocked(deps, job_id)
            .await?
            .unwrap_or_else(|| "resolved meanwhile".into());
        return Ok(Resolution::Skipped { job_id, reason });
    };
    let failed: JobEnvelope = serde_json::from_value(payload)?;
    let envelope = JobEnvelope {
        job_id: Uuid::now_v7(),
        attempt: 1,
        run: 1,
        max_attempts: deps.policies.get(failed.kind).max_attempts,
        enqueued_at: chrono::Utc::now(),
        source: Source::Replay,
        replay_of: Some(job_id),
        infra_retries: 0,
        ..failed
    };
    crate::ledger::jobs::insert(&mut *tx, deps.enqueuer.namespace(), &[(&envelope, None)]).await?;
    dead_letters::mark_replayed(&mut *tx, job_id, envelope.job_id, by).await?;
    // Push before committing: if Redis refuses, the transaction rolls back and
    // the dead letter stays open for the next replay.
    deps.enqueuer.push(&[(envelope.clone(), None)]).await?;
    tx.commit().await?;
    Ok(Resolution::Replayed {
        job_id,
        new_job: envelope.job_id,
    })
}

/// Discard dead letter `job_id`: resolved without running.
pub async fn discard(deps: &Deps, job_id: Uuid, by: &str, dry_run: bool) -> Resolution {
    let result: anyhow::Result<Resolution> = async {
        if let Some(reason) = blocked(deps, job_id).await? {
            return Ok(Resolution::Skipped { job_id, reason });
        }
        if dry_run {
            return Ok(Resolution::WouldResolve { job_id });
        }
        Ok(
            if dead_letters::mark_discarded(&deps.db, job_id, by).await? {
                Resolution::Discarded { job_id }
            } else {
                Resolution::Skipped {
                    job_id,
                    reason: "resolved meanwhile".into(),
                }
            },
        )
    }
    .await;
    result.unwrap_or_else(|e| Resolution::Error {
        job_id,
        error: format!("{e:#}"),
    })
}

/// Everything the ledger knows about one job: who enqueued it, every run,
/// its failure and its replays.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobHistory {
    /// The job.
    pub job: crate::ledger::jobs::JobRow,
    /// Every delivery.
    pub runs: Vec<crate::ledger::runs::RunRow>,
    /// Its dead letter, if it failed.
    pub failed: Option<dead_letters::DeadLetter>,
    /// The failed job it replays.
    pub replay_of: Option<Uuid>,
    /// Jobs replaying it: (job id, enqueued at).
    pub replays: Vec<(Uuid, chrono::DateTime<chrono::Utc>)>,
    /// While its open dead letter holds its order back from the scheduler:
    /// "not retried by the scheduler: open failure since ...".
    pub scheduler_note: Option<String>,
}

/// The history of `job_id`, or `None` if the ledger has no such job.
///
/// # Errors
/// Postgres failed.
pub async fn history(db: &sqlx::PgPool, job_id: Uuid) -> sqlx::Result<Option<JobHistory>> {
    let Some(job) = crate::ledger::jobs::get(db, job_id).await? else {
        return Ok(None);
    };
    let failed = dead_letters::get(db, job_id).await?;
    let scheduler_note = match (&failed, job.order_ref.as_deref()) {
        (Some(dead), Some(order_ref))
            if dead.resolution.is_none()
                && job
                    .kind
                    .parse::<JobKind>()
                    .ok()
                    .is_some_and(crate::domain::schedule::held_by_open_failure) =>
        {
            dead_letters::held_since(db, &job.kind, order_ref)
                .await?
                .map(crate::domain::schedule::held_note)
        }
        _ => None,
    };
    Ok(Some(JobHistory {
        runs: crate::ledger::runs::for_job(db, job_id).await?,
        failed,
        replay_of: crate::ledger::jobs::replay_of(db, job_id).await?,
        replays: dead_letters::replays_of(db, job_id).await?,
        scheduler_note,
        job,
    }))
}

/// The dead letters a bulk operation applies to: explicit ids, or every open
/// one of a fingerprint, or every open one matching the filter (`all`).
///
/// # Errors
/// Nothing was selected, or Postgres failed.
pub async fn select(
    db: &sqlx::PgPool,
    ids: &[Uuid],
    fingerprint: Option<&str>,
    all: bool,
    mut filter: dead_letters::Filter,
) -> anyhow::Result<Vec<Uuid>> {
    if !ids.is_empty() {
        anyhow::ensure!(
            fingerprint.is_none() && !all,
            "name job ids, or a fingerprint, or all: not several"
        );
        return Ok(ids.to_vec());
    }
    anyhow::ensure!(
        fingerprint.is_some() || all,
        "name job ids, or use a fingerprint, or all"
    );
    filter.fingerprint = fingerprint.map(str::to_owned);
    filter.include_resolved = false;
    Ok(dead_letters::list(db, &filter, i64::MAX)
        .await?
        .into_iter()
        .map(|d| d.job_id)
        .collect())
}

/// Counts of a bulk operation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Replayed or discarded (or would be, in a dry run).
    pub resolved: u64,
    /// Skipped.
    pub skipped: u64,
    /// Failed.
    pub errors: u64,
}

impl Summary {
    /// Count one result.
    pub fn add(&mut self, r: &Resolution) {
        match r {
            Resolution::Replayed { .. }
            | Resolution::Discarded { .. }
            | Resolution::WouldResolve { .. } => self.resolved += 1,
            Resolution::Skipped { .. } => self.skipped += 1,
            Resolution::Error { .. } => self.errors += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ErrorClass;

    fn provider(provider: Provider, class: ErrorClass) -> FailureClass {
        FailureClass::Provider(provider, class)
    }

    #[test]
    fn one_revoked_key_is_one_group_across_orders() {
        let revoked = provider(Provider::Maystro, ErrorClass::Unauthorized);
        let a = fingerprint(
            JobKind::RefreshStatus,
            revoked,
            "maystro/alph unauthorized (HTTP 401): order 104772: Invalid token.",
        );
        let b = fingerprint(
            JobKind::RefreshStatus,
            revoked,
            "maystro/alph unauthorized (HTTP 401): order 99: Invalid token.",
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 12);
    }

    #[test]
    fn kind_class_provider_and_message_each_split_groups() {
        let validation = provider(Provider::Erpnext, ErrorClass::Validation);
        let base = fingerprint(JobKind::CreateInvoice, validation, "bad mode");
        assert_ne!(base, fingerprint(JobKind::SendSms, validation, "bad mode"));
        assert_ne!(
            base,
            fingerprint(
                JobKind::CreateInvoice,
                provider(Provider::Erpnext, ErrorClass::Timeout),
                "bad mode"
            )
        );
        assert_ne!(
            base,
            fingerprint(
                JobKind::CreateInvoice,
                provider(Provider::Mnotify, ErrorClass::Validation),
                "bad mode"
            )
        );
        assert_ne!(
            base,
            fingerprint(JobKind::CreateInvoice, validation, "missing customer")
        );
    }

    #[test]
    fn the_provider_comes_from_the_class_not_the_message() {
        let ours = fingerprint(
            JobKind::CreateInvoice,
            FailureClass::Database,
            "erpnext/x down",
        );
        let theirs = fingerprint(
            JobKind::CreateInvoice,
            provider(Provider::Erpnext, ErrorClass::ServerError),
            "erpnext/x down",
        );
        assert_ne!(ours, theirs);
    }

    #[test]
    fn normalize_replaces_numbers_and_ids() {
        assert_eq!(
            normalize(
                "order ALPH-1042 (courier id 77) job 0190a3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d failed"
            ),
            "order ALPH-# (courier id #) job <id> failed"
        );
    }
}
