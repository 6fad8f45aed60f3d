//! How one delivery ended, as the ledger spells it.

/// How one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Done.
    Succeeded,
    /// Nothing to do (already done elsewhere, final status, ...).
    Skipped,
    /// Transient failure; another attempt is scheduled.
    Retry,
    /// Not yet (payment pending); rescheduled without using an attempt.
    Deferred,
    /// Permanent failure or attempts exhausted.
    Failed,
    /// The provider does not know the order (often a wrong store key).
    NotFound,
}

impl RunOutcome {
    /// The ledger's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Succeeded => "succeeded",
            RunOutcome::Skipped => "skipped",
            RunOutcome::Retry => "retry",
            RunOutcome::Deferred => "deferred",
            RunOutcome::Failed => "failed",
            RunOutcome::NotFound => "not_found",
        }
    }

    /// Every outcome.
    pub const ALL: [RunOutcome; 6] = [
        RunOutcome::Succeeded,
        RunOutcome::Skipped,
        RunOutcome::Retry,
        RunOutcome::Deferred,
        RunOutcome::Failed,
        RunOutcome::NotFound,
    ];

    /// Whether a job whose latest run ended so is still waiting for another
    /// delivery.
    pub fn is_unfinished(self) -> bool {
        matches!(self, RunOutcome::Retry | RunOutcome::Deferred)
    }

    /// Whether the job ended in failure (a dead letter).
    pub fn is_failure(self) -> bool {
        matches!(self, RunOutcome::Failed | RunOutcome::NotFound)
    }
}
