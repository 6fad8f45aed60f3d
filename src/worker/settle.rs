//! The one place an attempt's result becomes what happens next: a ledger
//! row, and for retries and deferrals a delayed task in Redis. apalis-redis
//! never retries on its own: every handler returns `Ok` to it.

use chrono::{DateTime, Utc};

use crate::domain::job::MAX_INFRA_RETRIES;
use crate::domain::{ErrorClass, FailureClass, JobEnvelope, Policies, RunOutcome};
use crate::jobs::{Done, JobError};
use crate::ledger::runs::RunRecord;

/// What to do after one delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The ledger row's outcome.
    pub outcome: RunOutcome,
    /// Error class, when it failed.
    pub error_class: Option<FailureClass>,
    /// Error or reason text.
    pub message: Option<String>,
    /// Provider HTTP status.
    pub http_status: Option<u16>,
    /// Kind-specific facts.
    pub detail: Option<serde_json::Value>,
    /// The next delivery and when it is due (retries and deferrals).
    pub next: Option<(JobEnvelope, DateTime<Utc>)>,
}

impl Decision {
    fn record(outcome: RunOutcome) -> Self {
        Self {
            outcome,
            error_class: None,
            message: None,
            http_status: None,
            detail: None,
            next: None,
        }
    }

    /// The ledger row for this decision.
    pub fn run_record(
        &self,
        envelope: &JobEnvelope,
        worker: &std::sync::Arc<str>,
        started_at: DateTime<Utc>,
        finished_at: DateTime<Utc>,
    ) -> RunRecord {
        RunRecord {
            job_id: envelope.job_id,
            run: envelope.run,
            attempt: envelope.attempt,
            worker: worker.clone(),
            started_at,
            finished_at,
            outcome: self.outcome,
            error_class: self.error_class,
            error_message: self.message.clone(),
            http_status: self.http_status,
            next_run_at: self.next.as_ref().map(|(_, due)| *due),
            next_envelope: self
                .next
                .as_ref()
                .and_then(|(next, _)| serde_json::to_value(next).ok()),
            detail: self.detail.clone(),
        }
    }
}

/// Decide what follows `result` of `envelope`'s delivery at `now`.
pub fn decide(
    envelope: &JobEnvelope,
    result: Result<Done, JobError>,
    policies: &Policies,
    now: DateTime<Utc>,
) -> Decision {
    match result {
        Ok(Done::Succeeded(detail)) => Decision {
            detail,
            ..Decision::record(RunOutcome::Succeeded)
        },
        Ok(Done::Skipped(reason)) => Decision {
            message: Some(reason),
            ..Decision::record(RunOutcome::Skipped)
        },
        Ok(Done::NotFound { provider, message }) => Decision {
            error_class: Some(FailureClass::Provider(provider, ErrorClass::NotFound)),
            message: Some(message),
            ..Decision::record(RunOutcome::NotFound)
        },
        Ok(Done::Deferred(reason)) => {
            let age = (now - envelope.enqueued_at).to_std().unwrap_or_default();
            if age + policies.defer_delay > policies.defer_max_age {
                Decision {
                    error_class: Some(FailureClass::DeferredTooLong),
                    message: Some(format!(
                        "still deferred after {} ({reason}); giving up",
                        humantime::format_duration(std::time::Duration::from_secs(age.as_secs()))
                    )),
                    ..Decision::record(RunOutcome::Failed)
                }
            } else {
                let due = now + policies.defer_delay;
                Decision {
                    message: Some(reason),
                    next: Some((envelope.deferral(), due)),
                    ..Decision::record(RunOutcome::Deferred)
                }
            }
        }
        Err(JobError::Transient {
            class: FailureClass::Paused,
            message,
            retry_after,
            ..
        }) => {
            // An operator paused its store, account or kind: park it without
            // using an attempt, however long the pause lasts (no maximum
            // age: a pause is a decision, not a failure), spread by up to
            // half the wait so a resumed backlog does not return at once.
            let wait = retry_after.unwrap_or(std::time::Duration::from_secs(2));
            let jitter = (wait / 2).mul_f64(rand::random::<f64>());
            let due = now + chrono::Duration::from_std(wait + jitter).unwrap_or_default();
            Decision {
                error_class: Some(FailureClass::Paused),
                message: Some(format!("{message}; parked, no attempt used")),
                next: Some((envelope.deferral(), due)),
                ..Decision::record(RunOutcome::Deferred)
            }
        }
        Err(JobError::Transient {
            class: class @ FailureClass::Provider(_, ErrorClass::HeldBack),
            message,
            retry_after,
            ..
        }) => {
            // Never sent: the account's shared budget had no room. Park the
            // job until there is, without using an attempt; spread the
            // parked jobs of one account over the wait again, so they do
            // not all come back at the same instant (1 to 5 s: wide enough
            // for a backlog, short enough not to delay a recovery).
            let wait = retry_after.unwrap_or(std::time::Duration::from_secs(1));
            let spread = wait.clamp(
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(5),
            );
            let jitter = spread.mul_f64(rand::random::<f64>());
            let due = now + chrono::Duration::from_std(wait + jitter).unwrap_or_default();
            Decision {
                error_class: Some(class),
                message: Some(format!("{message}; parked, no attempt used")),
                next: Some((envelope.deferral(), due)),
                ..Decision::record(RunOutcome::Deferred)
            }
        }
        Err(JobError::Transient {
            class,
            message,
            http_status,
            retry_after,
        }) if class.is_infrastructure() && envelope.infra_retries < MAX_INFRA_RETRIES => {
            // Our own outage: retry with backoff, without using an attempt.
            let policy = policies.get(envelope.kind);
            let delay = policy.delay(envelope.infra_retries + 1, retry_after);
            let due = now + chrono::Duration::from_std(delay).unwrap_or_default();
            Decision {
                error_class: Some(class),
                message: Some(format!("{message} (our own outage: no attempt used)")),
                http_status,
                next: Some((envelope.infra_retry(), due)),
                ..Decision::record(RunOutcome::Retry)
            }
        }
        Err(JobError::Transient {
            class,
            message,
            http_status,
            retry_after,
        }) => {
            let policy = policies.get(envelope.kind);
            if policy.allows_retry_after(envelope.attempt) {
                let delay = policy.delay(envelope.attempt, retry_after);
                let due = now + chrono::Duration::from_std(delay).unwrap_or_default();
                Decision {
                    error_class: Some(class),
                    message: Some(message),
                    http_status,
                    next: Some((envelope.retry(), due)),
                    ..Decision::record(RunOutcome::Retry)
                }
            } else {
                Decision {
                    error_class: Some(class),
                    message: Some(format!(
                        "attempts exhausted ({}/{}): {message}",
                        envelope.attempt, policy.max_attempts
                    )),
                    http_status,
                    ..Decision::record(RunOutcome::Failed)
                }
            }
        }
        Err(JobError::Permanent {
            class,
            message,
            http_status,
        }) => Decision {
            error_class: Some(class),
            message: Some(message),
            http_status,
            ..Decision::record(RunOutcome::Failed)
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;
    use crate::domain::{JobKind, Provider, RetryPolicy, Source};

    fn envelope(attempt: u32) -> JobEnvelope {
        JobEnvelope {
            job_id: Uuid::now_v7(),
            kind: JobKind::CreateInvoice,
            store: "ALPH".into(),
            order_ref: Some("ALPH-1001".into()),
            args: serde_json::Value::Null,
            attempt,
            run: attempt,
            max_attempts: 3,
            enqueued_at: Utc::now(),
            source: Source::Cli,
            replay_of: None,
            ready_at: None,
            infra_retries: 0,
        }
    }

    fn policies() -> Policies {
        let mut p = Policies::default();
        p.set(
            JobKind::CreateInvoice,
            RetryPolicy {
                max_attempts: 3,
                base: Duration::from_millis(100),
                cap: Duration::from_secs(10),
            },
        );
        p.defer_delay = Duration::from_secs(60);
        p.defer_max_age = Duration::from_secs(3600);
        p
    }

    #[test]
    fn a_transient_error_with_attempts_left_schedules_the_next_attempt() {
        let now = Utc::now();
        let e = envelope(1);
        let d = decide(
            &e,
            Err(JobError::transient(
                FailureClass::Provider(Provider::Erpnext, ErrorClass::ServerError),
                "503",
            )),
            &policies(),
            now,
        );
        assert_eq!(d.outcome, RunOutcome::Retry);
        let (next, due) = d.next.unwrap();
        assert_eq!((next.attempt, next.run, next.job_id), (2, 2, e.job_id));
        assert!(due >= now && due <= now + chrono::Duration::milliseconds(100));
    }

    #[test]
    fn retry_after_is_honoured() {
        let now = Utc::now();
        let error = JobError::Transient {
            class: FailureClass::Provider(Provider::Erpnext, ErrorClass::RateLimited),
            message: "429".into(),
            http_status: Some(429),
            retry_after: Some(Duration::from_secs(7)),
        };
        let d = decide(&envelope(1), Err(error), &policies(), now);
        assert_eq!(d.next.unwrap().1, now + chrono::Duration::seconds(7));
        assert_eq!(d.http_status, Some(429));
    }

    #[test]
    fn the_last_attempt_fails_instead_of_retrying() {
        let d = decide(
            &envelope(3),
            Err(JobError::transient(
                FailureClass::Provider(Provider::Erpnext, ErrorClass::Timeout),
                "slow",
            )),
            &policies(),
            Utc::now(),
        );
        assert_eq!(d.outcome, RunOutcome::Failed);
        assert!(d.next.is_none());
        assert!(d.message.unwrap().starts_with("attempts exhausted (3/3)"));
    }

    #[test]
    fn a_permanent_error_fails_at_once() {
        let d = decide(
            &envelope(1),
            Err(JobError::permanent(
                FailureClass::Provider(Provider::Erpnext, ErrorClass::Validation),
                "bad mode",
            )),
            &policies(),
            Utc::now(),
        );
        assert_eq!(d.outcome, RunOutcome::Failed);
        assert_eq!(d.error_class.map(FailureClass::as_str), Some("validation"));
        assert!(d.next.is_none());
    }

    #[test]
    fn a_deferral_reschedules_without_using_an_attempt() {
        let now = Utc::now();
        let d = decide(
            &envelope(1),
            Ok(Done::Deferred("payment pending".into())),
            &policies(),
            now,
        );
        assert_eq!(d.outcome, RunOutcome::Deferred);
        let (next, due) = d.next.unwrap();
        assert_eq!((next.attempt, next.run), (1, 2));
        assert_eq!(due, now + chrono::Duration::seconds(60));
    }

    #[test]
    fn a_paused_job_is_parked_without_an_attempt_even_past_its_maximum_age() {
        let mut e = envelope(3);
        e.enqueued_at = Utc::now() - chrono::Duration::days(30);
        let now = Utc::now();
        let paused = JobError::Transient {
            class: FailureClass::Paused,
            message: "store ALPH is paused by ops since 2026-12-01T00:00:00Z".into(),
            http_status: None,
            retry_after: Some(Duration::from_secs(4)),
        };
        let d = decide(&e, Err(paused), &policies(), now);
        assert_eq!(d.outcome, RunOutcome::Deferred);
        assert_eq!(d.error_class, Some(FailureClass::Paused));
        let (next, due) = d.next.unwrap();
        assert_eq!((next.attempt, next.run), (3, 4));
        let after = (due - now).to_std().unwrap();
        assert!(
            after >= Duration::from_secs(4) && after <= Duration::from_secs(6),
            "{after:?}"
        );
    }

    #[test]
    fn a_request_held_back_by_its_account_parks_the_job_without_an_attempt() {
        let e = envelope(2);
        let now = Utc::now();
        let held = JobError::Transient {
            class: FailureClass::Provider(Provider::Erpnext, ErrorClass::HeldBack),
            message: "erpnext/erpnext held_back: not sent".into(),
            http_status: None,
            retry_after: Some(Duration::from_secs(3)),
        };
        let d = decide(&e, Err(held), &policies(), now);
        assert_eq!(d.outcome, RunOutcome::Deferred);
        let (next, due) = d.next.unwrap();
        assert_eq!((next.attempt, next.run), (2, 3));
        let after = (due - now).to_std().unwrap();
        assert!(
            after >= Duration::from_secs(3) && after <= Duration::from_secs(6),
            "{after:?}"
        );
        assert!(d.message.unwrap().ends_with("parked, no attempt used"));
    }

    #[test]
    fn a_deferral_past_the_maximum_age_fails() {
        let mut e = envelope(1);
        e.enqueued_at = Utc::now() - chrono::Duration::hours(2);
        let d = decide(
            &e,
            Ok(Done::Deferred("payment pending".into())),
            &policies(),
            Utc::now(),
        );
        assert_eq!(d.outcome, RunOutcome::Failed);
        assert_eq!(d.error_class, Some(FailureClass::DeferredTooLong));
    }

    #[test]
    fn our_own_outage_retries_without_using_an_attempt() {
        let now = Utc::now();
        let e = envelope(3);
        let d = decide(
            &e,
            Err(JobError::transient(
                FailureClass::Database,
                "pool timed out",
            )),
            &policies(),
            now,
        );
        assert_eq!(d.outcome, RunOutcome::Retry);
        let (next, _) = d.next.unwrap();
        assert_eq!((next.attempt, next.run, next.infra_retries), (3, 4, 1));
        assert!(d.message.unwrap().contains("no attempt used"));
    }

    #[test]
    fn an_outage_past_its_own_budget_counts_as_attempts_again() {
        let mut e = envelope(3);
        e.infra_retries = MAX_INFRA_RETRIES;
        let d = decide(
            &e,
            Err(JobError::transient(FailureClass::Database, "still down")),
            &policies(),
            Utc::now(),
        );
        assert_eq!(d.outcome, RunOutcome::Failed);
        assert!(d.message.unwrap().starts_with("attempts exhausted (3/3)"));
    }

    #[test]
    fn not_found_is_its_own_outcome() {
        let d = decide(
            &envelope(1),
            Ok(Done::NotFound {
                provider: Provider::Maystro,
                message: "unknown".into(),
            }),
            &policies(),
            Utc::now(),
        );
        assert_eq!(d.outcome, RunOutcome::NotFound);
        assert!(d.next.is_none());
    }
}
