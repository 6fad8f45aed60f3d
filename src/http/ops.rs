//! Operator endpoints: probes, Prometheus metrics, and the queue and store
//! figures behind the dashboard.
//!
//! `/healthz` says the process serves HTTP; `/readyz` that it can reach
//! Redis and Postgres (a pod that cannot is taken out of rotation, not
//! restarted). `/metrics` is unauthenticated like any scrape target: it
//! carries counts and store codes, never payloads or secrets.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use redis::aio::ConnectionManager;
use sqlx::PgPool;

use super::{require_admin, ApiError, AppState};
use crate::ops;

/// How long a readiness check waits for each service.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Prometheus's text exposition format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A worker is live while its heartbeat is younger than this (the default
/// heartbeat times the missed heartbeats allowed).
pub fn worker_liveness() -> Duration {
    crate::queue::keys::HEARTBEAT_INTERVAL * crate::queue::keys::MISSED_HEARTBEATS as u32
}

/// The api's operator routes (full paths; merged into the main router).
pub fn routes(state: AppState) -> Router<AppState> {
    let admin = Router::new()
        .route("/admin/api/queues", get(queues))
        .route("/admin/api/stores", get(stores))
        .route_layer(from_fn_with_state(state, require_admin));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(api_readyz))
        .route("/metrics", get(api_metrics))
        .merge(admin)
}

/// What a worker process needs to answer its probes.
#[derive(Debug, Clone)]
pub struct Probes {
    /// The ledger.
    pub db: PgPool,
    /// The queue.
    pub redis: ConnectionManager,
}

/// A worker's own port: `/healthz`, `/readyz` and `/metrics` (this
/// process's job and provider metrics).
pub fn worker_router(probes: Probes) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/readyz",
            get(|State(p): State<Probes>| async move { readiness(&p.db, p.redis).await }),
        )
        .route(
            "/metrics",
            get(|| async { prometheus_text(ops::metrics::recorder().render()) }),
        )
        .with_state(probes)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn api_readyz(State(state): State<AppState>) -> Response {
    readiness(&state.deps.db, state.deps.enqueuer.connection()).await
}

/// 200 `ready` when Redis and Postgres answer within [`PROBE_TIMEOUT`],
/// else 503 naming which did not.
pub async fn readiness(db: &PgPool, mut redis: ConnectionManager) -> Response {
    let postgres = tokio::time::timeout(
        PROBE_TIMEOUT,
        sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(db),
    );
    let ping = redis::cmd("PING");
    let redis = tokio::time::timeout(PROBE_TIMEOUT, ping.query_async::<String>(&mut redis));
    let (postgres, redis) = tokio::join!(postgres, redis);
    let mut problems = Vec::new();
    match postgres {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => problems.push(format!("postgres: {error}")),
        Err(_) => problems.push(format!("postgres: no answer within {PROBE_TIMEOUT:?}")),
    }
    match redis {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => problems.push(format!("redis: {error}")),
        Err(_) => problems.push(format!("redis: no answer within {PROBE_TIMEOUT:?}")),
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready").into_response()
    } else {
        tracing::warn!(problems = %problems.join("; "), "not ready");
        (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n")).into_response()
    }
}

async fn api_metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = queue_snapshot(&state).await?;
    let stores = ops::stores::freshness(&state.deps.db, &state.config).await?;
    let unknown_texts = crate::ledger::sms::unknown_counts(&state.deps.db).await?;
    let mut text = ops::metrics::render_system_gauges(&snapshot, &stores, &unknown_texts);
    text.push_str(&super::rejected::render_gauge(
        &crate::ledger::rejected::open_counts(&state.deps.db).await?,
    ));
    text.push_str(&ops::accounts::render_gauge(
        &account_statuses(&state).await?,
    ));
    if let Some(pauses) = &state.deps.pauses {
        text.push_str(&ops::pauses::render_gauge(
            &pauses.list().await.map_err(anyhow::Error::from)?,
        ));
    }
    text.push_str(&ops::metrics::recorder().render());
    Ok(prometheus_text(text))
}

fn prometheus_text(text: String) -> Response {
    ([(header::CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], text).into_response()
}

async fn queue_snapshot(state: &AppState) -> Result<ops::queues::Snapshot, ApiError> {
    let mut conn = state.deps.enqueuer.connection();
    Ok(ops::queues::snapshot(
        &mut conn,
        &state.deps.db,
        state.deps.enqueuer.namespace(),
        worker_liveness(),
    )
    .await?)
}

async fn queues(State(state): State<AppState>) -> Result<Json<ops::queues::Snapshot>, ApiError> {
    Ok(Json(queue_snapshot(&state).await?))
}

/// `GET /admin/api/stores`.
#[derive(Debug, serde::Serialize)]
struct StoresReply {
    generated_at: chrono::DateTime<chrono::Utc>,
    stores: Vec<ops::stores::StoreFreshness>,
    /// Every provider account: its limits and circuit breaker.
    accounts: Vec<ops::accounts::AccountStatus>,
}

async fn stores(State(state): State<AppState>) -> Result<Json<StoresReply>, ApiError> {
    Ok(Json(StoresReply {
        generated_at: chrono::Utc::now(),
        stores: ops::stores::freshness(&state.deps.db, &state.config).await?,
        accounts: account_statuses(&state).await?,
    }))
}

async fn account_statuses(state: &AppState) -> Result<Vec<ops::accounts::AccountStatus>, ApiError> {
    let mut conn = state.deps.enqueuer.connection();
    Ok(
        ops::accounts::statuses(&mut conn, state.deps.enqueuer.namespace(), &state.config)
            .await
            .map_err(anyhow::Error::from)?,
    )
}
