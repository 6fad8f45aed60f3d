//! Per-account request gates shared by every worker process, in Redis: one
//! Lua script (`lua/account_gate.lua`) keeps each account's GCRA state
//! (sustained rate + burst), its in-flight permits (leased, so a crashed
//! process's permits expire), the provider's "slow down" (a pause, then half
//! the rate, ramping back by a tenth of it per second) and its circuit
//! breaker (`crate::queue::breaker` reads it for operators).
//!
//! GCRA rather than a crate: the budget must be shared across processes in
//! the queue's own Redis, atomically with the in-flight cap and the
//! adaptive slow-down; the Rust GCRA crates (`governor`) keep state in
//! process memory, and the Redis-module ones (`redis-cell`) need a module
//! loaded into the server; none has a shared circuit breaker.
//!
//! Keys: `{ns}:limits:{provider}:{account}` (hash), `...:inflight` (zset),
//! and `{ns}:breaker:{provider}:{account}` (hash).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::domain::limits::AccountLimit;
use crate::domain::Provider;
use crate::providers::gate::{Admission, GateFuture, Permit, RequestGate, RequestOutcome};

static SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/account_gate.lua")));

/// The shared budgets of every account of one namespace.
#[derive(Clone)]
pub struct Limiter {
    conn: ConnectionManager,
    namespace: String,
    limits: Arc<BTreeMap<(Provider, String), AccountLimit>>,
    /// How long an in-flight permit lives if its request never reports
    /// back (the process died): longer than any request's timeout.
    lease: Duration,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("namespace", &self.namespace)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// Budgets for `limits` (accounts absent from it have no rate or
    /// in-flight limit, but still slow down when their provider asks).
    /// `request_timeout` is the provider timeout: permits outlive it.
    pub fn new(
        conn: ConnectionManager,
        namespace: &str,
        limits: BTreeMap<(Provider, String), AccountLimit>,
        request_timeout: Duration,
    ) -> Self {
        Self {
            conn,
            namespace: namespace.to_owned(),
            limits: Arc::new(limits),
            lease: request_timeout + Duration::from_secs(30),
        }
    }

    /// The limits of an account ([`AccountLimit::UNLIMITED`] if none are
    /// configured).
    pub fn limit(&self, provider: Provider, account: &str) -> AccountLimit {
        self.limits
            .get(&(provider, account.to_owned()))
            .copied()
            .unwrap_or(AccountLimit::UNLIMITED)
    }

    fn state_key(&self, provider: Provider, account: &str) -> String {
        format!("{}:limits:{}:{account}", self.namespace, provider.as_str())
    }

    async fn call(
        &self,
        provider: Provider,
        account: &str,
        args: &[String],
    ) -> redis::RedisResult<(i64, i64, String)> {
        let state = self.state_key(provider, account);
        let mut invocation = SCRIPT.key(&state);
        invocation.key(format!("{state}:inflight"));
        invocation.key(super::breaker::key(&self.namespace, provider, account));
        for arg in args {
            invocation.arg(arg);
        }
        invocation.invoke_async(&mut self.conn.clone()).await
    }

    /// One admission decision (see [`RequestGate::admit`]).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn try_admit(
        &self,
        provider: Provider,
        account: &str,
    ) -> redis::RedisResult<Admission> {
        let limit = self.limit(provider, account);
        let id = uuid::Uuid::new_v4().to_string();
        let (go, wait_ms, why) = self
            .call(
                provider,
                account,
                &[
                    "admit".into(),
                    limit.rate_per_s.unwrap_or(0.0).to_string(),
                    limit.burst.to_string(),
                    limit.max_in_flight.unwrap_or(0).to_string(),
                    self.lease.as_millis().to_string(),
                    id.clone(),
                ],
            )
            .await?;
        Ok(if go == 1 {
            let probe = why == "probe";
            if probe {
                tracing::info!(%provider, account, "circuit breaker half-open: one probe request tests the account");
            }
            Admission::Go(Permit {
                id: Some(id),
                probe,
            })
        } else {
            let why = match why.as_str() {
                "rate" => "rate",
                "in_flight" => "in_flight",
                "breaker_open" => "breaker_open",
                "breaker_half_open" => "breaker_half_open",
                _ => "backoff",
            };
            Admission::Wait(Duration::from_millis(wait_ms.max(1) as u64), why)
        })
    }

    /// End a request: free its in-flight place and count its outcome in the
    /// account's breaker. Returns the breaker's transition, if any
    /// (`opened`, `closed`, `reopened`).
    ///
    /// # Errors
    /// Redis failed.
    pub async fn finish(
        &self,
        provider: Provider,
        account: &str,
        id: &str,
        outcome: RequestOutcome,
    ) -> redis::RedisResult<Option<String>> {
        let breaker = self.limit(provider, account).breaker;
        let (_, _, transition) = self
            .call(
                provider,
                account,
                &[
                    "release".into(),
                    id.to_owned(),
                    match outcome {
                        RequestOutcome::Answered => "ok",
                        RequestOutcome::Failed => "fail",
                    }
                    .into(),
                    breaker.failures.to_string(),
                    breaker.open_for.as_millis().to_string(),
                ],
            )
            .await?;
        Ok((!transition.is_empty()).then_some(transition))
    }

    /// Pause `account` for everyone for `pause`, then halve its rate.
    ///
    /// # Errors
    /// Redis failed.
    pub async fn pause_for(
        &self,
        provider: Provider,
        account: &str,
        pause: Duration,
    ) -> redis::RedisResult<()> {
        self.call(
            provider,
            account,
            &["slow".into(), pause.as_millis().to_string()],
        )
        .await
        .map(|_| ())
    }
}

impl RequestGate for Limiter {
    fn admit<'a>(&'a self, provider: Provider, account: &'a str) -> GateFuture<'a, Admission> {
        Box::pin(async move {
            match self.try_admit(provider, account).await {
                Ok(admission) => admission,
                Err(error) => {
                    // The queue's own Redis is down: the job cannot settle
                    // either, so refusing every request would only add a
                    // second failure. Let it through and say so.
                    tracing::warn!(%provider, account, %error, "rate limiter unreachable: request not limited");
                    Admission::Go(Permit {
                        id: None,
                        probe: false,
                    })
                }
            }
        })
    }

    fn release<'a>(
        &'a self,
        provider: Provider,
        account: &'a str,
        permit: Permit,
        outcome: RequestOutcome,
    ) -> GateFuture<'a, ()> {
        Box::pin(async move {
            let Some(id) = permit.id else { return };
            match self.finish(provider, account, &id, outcome).await {
                Ok(Some(transition)) => {
                    let breaker = self.limit(provider, account).breaker;
                    match transition.as_str() {
                        "closed" => {
                            tracing::info!(%provider, account, "circuit breaker closed: the probe succeeded")
                        }
                        _ => {
                            tracing::warn!(%provider, account, %transition, failures = breaker.failures,
                            open_secs = breaker.open_for.as_secs_f64(),
                            "circuit breaker open: the account's jobs are parked without using attempts until a probe succeeds")
                        }
                    }
                    super::breaker::count_transition(provider, account, &transition);
                }
                Ok(None) => {}
                Err(error) => {
                    // The permit's lease ends it soon enough.
                    tracing::warn!(%provider, account, %error, "could not release an in-flight permit");
                }
            }
        })
    }

    fn slow_down<'a>(
        &'a self,
        provider: Provider,
        account: &'a str,
        pause: Duration,
    ) -> GateFuture<'a, ()> {
        Box::pin(async move {
            if let Err(error) = self.pause_for(provider, account, pause).await {
                tracing::warn!(%provider, account, %error, "could not record a provider's slow-down");
            }
        })
    }
}
