//! `/admin/api/sms/*` and `/admin/api/jobs/requeue`: texts of unknown fate,
//! resending them on purpose, and pushing again what Redis lost. Routed in
//! [`crate::http::admin::routes`], behind the bearer token.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use crate::domain::Source;
use crate::http::{ApiError, AppState};
use crate::queue::reconcile;
use crate::texts::{self, Selection};

/// `GET /sms/unknown` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnknownQuery {
    /// Only this store.
    pub store: Option<String>,
    /// At most this many (default 200).
    pub limit: Option<i64>,
}

/// `GET /sms/unknown`: texts whose fate is unknown, oldest first.
pub async fn unknown(
    State(state): State<AppState>,
    Query(q): Query<UnknownQuery>,
) -> Result<Json<Vec<crate::ledger::sms::UnknownText>>, ApiError> {
    let limit = q.limit.unwrap_or(200).clamp(1, 10_000);
    let mut texts = crate::ledger::sms::unknown(&state.deps.db, q.store.as_deref(), limit).await?;
    // As in the order trace: enough of the number to match it, not the number.
    for t in &mut texts {
        t.phone = crate::redact::mask_phone(&t.phone);
    }
    Ok(Json(texts))
}

/// Body of `POST /sms/resend`: one text (`order` and `status`) or `all`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendBody {
    /// Order reference (with `status`).
    pub order: Option<String>,
    /// The status the text announces (with `order`).
    pub status: Option<String>,
    /// Every text of unknown fate (of `store`, if given).
    #[serde(default)]
    pub all: bool,
    /// Only this store (with `all`).
    pub store: Option<String>,
    /// Change nothing; say what would happen.
    #[serde(default)]
    pub dry_run: bool,
    /// Who asks (recorded).
    pub by: Option<String>,
}

/// `POST /sms/resend`: send texts of unknown fate again, on purpose.
pub async fn resend(
    State(state): State<AppState>,
    Json(body): Json<ResendBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let selection = match (body.order, body.status, body.all) {
        (Some(reference), Some(status), false) => Selection::One { reference, status },
        (None, None, true) => Selection::All { store: body.store },
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "name one text (\"order\" and \"status\") or \"all\": true".into(),
            ))
        }
    };
    let by = format!("api:{}", body.by.as_deref().unwrap_or("admin"));
    let results = texts::resend(&state.deps, &selection, &by, Source::Admin, body.dry_run)
        .await
        .map_err(|e| {
            if e.downcast_ref::<sqlx::Error>().is_some() {
                ApiError::from(e)
            } else {
                ApiError(StatusCode::NOT_FOUND, format!("{e:#}"))
            }
        })?;
    Ok(Json(serde_json::json!({ "results": results })))
}

/// Body of `POST /jobs/requeue`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequeueBody {
    /// Count only; push nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /jobs/requeue`: a reconciler pass now (what the workers do every
/// 30 s): push again every unfinished job Redis does not hold.
pub async fn requeue(
    State(state): State<AppState>,
    body: Option<Json<RequeueBody>>,
) -> Result<Json<reconcile::Report>, ApiError> {
    let dry_run = body.is_some_and(|Json(b)| b.dry_run);
    let mode = if dry_run {
        reconcile::Mode::Count
    } else {
        reconcile::Mode::Repush
    };
    Ok(Json(
        reconcile::pass(
            &state.deps.enqueuer,
            reconcile::DEFAULT_GRACE,
            mode,
            "api:admin",
        )
        .await?,
    ))
}
