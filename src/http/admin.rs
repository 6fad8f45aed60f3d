//! `/admin/api`: failed jobs, one job's history, replay and discard.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use uuid::Uuid;

use crate::failures::{self, Resolution, Summary};
use crate::http::{require_admin, ApiError, AppState};
use crate::ledger::dead_letters::{self, Filter};

/// The admin routes, all behind the bearer token.
pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/jobs/failed", get(failed))
        .route("/jobs/replay", post(replay))
        .route("/jobs/discard", post(discard))
        .route("/jobs/{id}", get(show))
        .route("/jobs/requeue", post(crate::http::texts::requeue))
        .route("/sms/unknown", get(crate::http::texts::unknown))
        .route("/sms/resend", post(crate::http::texts::resend))
        .route("/sync", post(sync))
        .route("/stores/sync", post(sync_all_stores))
        .route("/stores/{store}/sync", post(sync_store))
        .route("/paused", get(paused))
        .route("/pause", post(pause))
        .route("/resume", post(resume))
        // A static segment wins over a capture in axum, so `stuck` is never a reference.
        .route("/orders", get(crate::http::orders::list_orders))
        .route("/orders/stats", get(crate::http::orders::order_stats))
        .route("/orders/stuck", get(crate::http::orders::stuck_orders))
        .route(
            "/orders/rejected",
            get(crate::http::rejected::rejected_orders),
        )
        .route("/orders/{reference}", get(crate::http::orders::trace_order))
        .route_layer(axum::middleware::from_fn(
            crate::http::rejected::refuse_control_characters,
        ))
        .route_layer(from_fn_with_state(state, require_admin))
}

/// Filters, as query parameters or JSON fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterParams {
    /// Job kind.
    pub kind: Option<String>,
    /// Store code.
    pub store: Option<String>,
    /// RFC 3339 time, or a duration back from now (`2h`, `3d`).
    pub since: Option<String>,
    /// Text in the message, class or order reference.
    pub grep: Option<String>,
    /// One fingerprint.
    pub fingerprint: Option<String>,
}

impl FilterParams {
    fn to_filter(&self) -> Result<Filter, ApiError> {
        let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
        for (name, value) in [
            ("kind", &self.kind),
            ("store", &self.store),
            ("grep", &self.grep),
            ("fingerprint", &self.fingerprint),
        ] {
            if let Some(value) = value {
                crate::input::plain_text(name, value).map_err(bad)?;
            }
        }
        if let Some(kind) = &self.kind {
            kind.parse::<crate::domain::JobKind>().map_err(bad)?;
        }
        let since = match &self.since {
            None => None,
            Some(s) => {
                Some(crate::input::parse_since("since", s, chrono::Utc::now()).map_err(bad)?)
            }
        };
        Ok(Filter {
            kind: self.kind.clone(),
            store: self.store.clone(),
            since,
            grep: self.grep.clone(),
            fingerprint: self.fingerprint.clone(),
            include_resolved: false,
        })
    }
}

/// `GET /jobs/failed` query.
#[derive(Debug, Deserialize)]
pub struct FailedQuery {
    /// Jobs instead of groups.
    #[serde(default)]
    pub ungrouped: bool,
    /// Include resolved ones.
    #[serde(default)]
    pub resolved: bool,
    /// At most this many jobs.
    pub limit: Option<i64>,
    /// Filters.
    #[serde(flatten)]
    pub filter: FilterParams,
}

async fn failed(
    State(state): State<AppState>,
    Query(q): Query<FailedQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let mut filter = q.filter.to_filter()?;
    filter.include_resolved = q.resolved;
    let db = &state.deps.db;
    Ok(Json(if q.ungrouped {
        serde_json::to_value(
            dead_letters::list(db, &filter, q.limit.unwrap_or(200).clamp(1, 10_000)).await?,
        )
        .map_err(anyhow::Error::from)?
    } else {
        serde_json::to_value(dead_letters::groups(db, &filter).await?)
            .map_err(anyhow::Error::from)?
    }))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<failures::JobHistory>, ApiError> {
    let id: Uuid = id
        .parse()
        .map_err(|_| ApiError(StatusCode::BAD_REQUEST, format!("'{id}' is not a job id")))?;
    failures::history(&state.deps.db, id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no job {id}")))
}

/// Body of replay and discard.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionBody {
    /// Job ids.
    #[serde(default)]
    pub ids: Vec<Uuid>,
    /// Every open failed job matching the filters.
    #[serde(default)]
    pub all: bool,
    /// Change nothing; say what would happen.
    #[serde(default)]
    pub dry_run: bool,
    /// Who asks (recorded with the resolution).
    pub by: Option<String>,
    /// Filters (with `all` or `fingerprint`).
    #[serde(flatten)]
    pub filter: FilterParams,
}

async fn resolve(
    state: &AppState,
    body: SelectionBody,
    replay: bool,
) -> Result<Json<serde_json::Value>, ApiError> {
    let filter = body.filter.to_filter()?;
    if let Some(by) = &body.by {
        crate::input::plain_text("by", by).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    }
    let ids = failures::select(
        &state.deps.db,
        &body.ids,
        body.filter.fingerprint.as_deref(),
        body.all,
        filter,
    )
    .await
    .map_err(|e| match e.downcast::<sqlx::Error>() {
        // The ledger failing is ours to log, not the client's to read.
        Ok(db) => ApiError::from(db),
        Err(e) => ApiError(StatusCode::BAD_REQUEST, format!("{e:#}")),
    })?;
    let by = format!("api:{}", body.by.as_deref().unwrap_or("admin"));
    let mut summary = Summary::default();
    let mut results: Vec<Resolution> = Vec::with_capacity(ids.len());
    for id in ids {
        let r = if replay {
            failures::replay(&state.deps, id, &by, body.dry_run).await
        } else {
            failures::discard(&state.deps, id, &by, body.dry_run).await
        };
        summary.add(&r);
        results.push(r);
    }
    Ok(Json(
        serde_json::json!({ "summary": summary, "results": results }),
    ))
}

async fn replay(
    State(state): State<AppState>,
    Json(body): Json<SelectionBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    resolve(&state, body, true).await
}

async fn discard(
    State(state): State<AppState>,
    Json(body): Json<SelectionBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    resolve(&state, body, false).await
}

/// Body of `POST /sync`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncBody {
    /// Store code.
    pub store: String,
    /// Job kind.
    pub kind: String,
    /// Order reference, for per-order kinds.
    pub order: Option<String>,
}

/// `POST /sync`: enqueue one job now (source `admin`).
async fn sync(
    State(state): State<AppState>,
    Json(body): Json<SyncBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let kind: crate::domain::JobKind = body
        .kind
        .parse()
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    if !state.webhook_secrets.contains_key(&body.store) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown store '{}'", body.store),
        ));
    }
    if matches!(
        kind,
        crate::domain::JobKind::SendSms | crate::domain::JobKind::Noop
    ) {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!("{kind} jobs are not enqueued by hand"),
        ));
    }
    let job = match (kind.is_per_order(), &body.order) {
        (true, Some(order)) => crate::queue::NewJob::for_order(kind, &body.store, order),
        (true, None) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("{kind} is a per-order job: give \"order\""),
            ));
        }
        (false, Some(_)) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("{kind} is a per-store job: \"order\" does not apply"),
            ));
        }
        (false, None) => crate::queue::NewJob::for_store(kind, &body.store),
    };
    let (envelopes, _) = state
        .deps
        .enqueuer
        .enqueue(crate::domain::Source::Admin, vec![job])
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "job_id": envelopes[0].job_id, "kind": kind })),
    ))
}

/// What a store sync request did for one store.
#[derive(Debug, serde::Serialize)]
pub struct StoreSync {
    /// Store code.
    pub store: String,
    /// The import job enqueued, if one was.
    pub job_id: Option<Uuid>,
    /// Why none was, if none was.
    pub skipped: Option<&'static str>,
}

/// Enqueue `store`'s order import now (source `admin`), unless one is still
/// queued or running: the scheduler's rule, so a click never stacks imports.
async fn enqueue_import(state: &AppState, store: &str) -> Result<StoreSync, ApiError> {
    let kind = crate::domain::JobKind::ImportOrders;
    if crate::ledger::jobs::has_unfinished(&state.deps.db, kind.as_str(), store, None).await? {
        return Ok(StoreSync {
            store: store.to_owned(),
            job_id: None,
            skipped: Some("an import of this store is still pending or running"),
        });
    }
    let (envelopes, _) = state
        .deps
        .enqueuer
        .enqueue(
            crate::domain::Source::Admin,
            vec![crate::queue::NewJob::for_store(kind, store)],
        )
        .await?;
    Ok(StoreSync {
        store: store.to_owned(),
        job_id: Some(envelopes[0].job_id),
        skipped: None,
    })
}

/// `POST /stores/{store}/sync`: import the store's orders now.
async fn sync_store(
    State(state): State<AppState>,
    Path(store): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if !state.webhook_secrets.contains_key(&store) {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("unknown store '{store}'"),
        ));
    }
    let synced = enqueue_import(&state, &store).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "stores": [synced] })),
    ))
}

/// `POST /stores/sync`: import every configured store's orders now.
async fn sync_all_stores(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let mut synced = Vec::with_capacity(state.config.stores.len());
    for store in &state.config.stores {
        synced.push(enqueue_import(&state, &store.code).await?);
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "stores": synced })),
    ))
}

/// Body of `POST /pause` and `POST /resume`: exactly one of `store`,
/// `account` (`ROLE:NAME`) and `kind`, as on the command line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// A store code.
    pub store: Option<String>,
    /// A provider account, `ROLE:NAME`.
    pub account: Option<String>,
    /// A job kind.
    pub kind: Option<String>,
    /// Why (pause only).
    pub reason: Option<String>,
    /// Who (pause only; recorded as `api:<by>`, default `api:admin`).
    pub by: Option<String>,
}

impl PauseBody {
    /// The scope named, checked against the configuration.
    fn scope(&self, state: &AppState) -> Result<crate::queue::pause::PauseScope, ApiError> {
        use crate::queue::pause::PauseScope;
        let bad = |m: String| ApiError(StatusCode::BAD_REQUEST, m);
        let scope = match (&self.store, &self.account, &self.kind) {
            (Some(store), None, None) => PauseScope::parse("store", store),
            (None, Some(account), None) => PauseScope::parse("account", account),
            (None, None, Some(kind)) => PauseScope::parse("kind", kind),
            _ => Err("name exactly one of \"store\", \"account\" (ROLE:NAME) or \"kind\"".into()),
        }
        .map_err(bad)?;
        crate::ops::pauses::validate(&scope, &state.config).map_err(bad)?;
        Ok(scope)
    }
}

fn pause_check(state: &AppState) -> Result<&crate::queue::pause::PauseCheck, ApiError> {
    state.deps.pauses.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "pauses are not available in this process".into(),
        )
    })
}

/// `GET /paused`: every pause, who made it, when and why.
async fn paused(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let pauses = pause_check(&state)?
        .list()
        .await
        .map_err(anyhow::Error::from)?;
    let views: Vec<_> = pauses
        .iter()
        .map(|(scope, pause)| crate::ops::pauses::PauseView::of(scope, pause))
        .collect();
    Ok(Json(serde_json::json!({ "paused": views })))
}

/// `POST /pause`: pause a store, an account or a kind; its jobs wait.
async fn pause(
    State(state): State<AppState>,
    Json(body): Json<PauseBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let scope = body.scope(&state)?;
    for (field, value) in [("by", &body.by), ("reason", &body.reason)] {
        if let Some(value) = value {
            crate::input::plain_text(field, value)
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
        }
    }
    let request = crate::queue::pause::Pause {
        by: format!("api:{}", body.by.as_deref().unwrap_or("admin")),
        at: chrono::Utc::now(),
        reason: body
            .reason
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty()),
    };
    let (new, pause) = pause_check(&state)?
        .pause(&scope, &request)
        .await
        .map_err(anyhow::Error::from)?;
    tracing::info!(%scope, by = %pause.by, new, "paused");
    Ok(Json(serde_json::json!({
        "paused": crate::ops::pauses::PauseView::of(&scope, &pause),
        "already_paused": !new,
    })))
}

/// `POST /resume`: resume what was paused; its parked jobs run again.
async fn resume(
    State(state): State<AppState>,
    Json(body): Json<PauseBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let scope = body.scope(&state)?;
    if body.reason.is_some() {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "\"reason\" applies to pause, not resume".into(),
        ));
    }
    let was = pause_check(&state)?
        .resume(&scope)
        .await
        .map_err(anyhow::Error::from)?;
    tracing::info!(%scope, was_paused = was.is_some(), "resumed");
    Ok(Json(serde_json::json!({
        "scope": scope.scope(),
        "name": scope.name(),
        "was_paused": was.map(|p| crate::ops::pauses::PauseView::of(&scope, &p)),
    })))
}
