//! `ordersync api`: the HTTP side. Health, and the admin JSON API over the
//! failed jobs (the same operations as `ordersync jobs ...`), behind a bearer
//! token. Webhooks and the dashboard build on this router.

pub mod admin;
pub mod dashboard;
pub mod ops;
pub mod orders;
pub mod texts;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use crate::jobs::Deps;

/// What handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Connections and clients.
    pub deps: Deps,
    /// The admin bearer token.
    pub admin_token: Arc<SecretString>,
    /// Known stores and their webhook secrets.
    pub webhook_secrets: Arc<std::collections::HashMap<String, Option<SecretString>>>,
    /// Largest webhook body accepted.
    pub webhook_body_limit: usize,
    /// Courier account name -> the stores it serves.
    pub courier_accounts: Arc<std::collections::HashMap<String, Vec<String>>>,
    /// The configuration (stores and their accounts, for freshness).
    pub config: Arc<crate::config::Config>,
    /// The dashboard's session settings.
    pub dashboard: dashboard::Settings,
}

impl AppState {
    /// State for `config`'s stores.
    pub fn new(deps: Deps, config: &crate::config::Config, admin_token: SecretString) -> Self {
        Self {
            deps,
            admin_token: Arc::new(admin_token),
            webhook_secrets: Arc::new(
                config
                    .stores
                    .iter()
                    .map(|s| (s.code.clone(), s.webhook_secret.clone()))
                    .collect(),
            ),
            webhook_body_limit: webhooks::DEFAULT_BODY_LIMIT,
            courier_accounts: Arc::new(
                config
                    .courier_accounts
                    .iter()
                    .map(|a| (a.name.clone(), a.stores.clone()))
                    .collect(),
            ),
            config: Arc::new(config.clone()),
            dashboard: dashboard::Settings::default(),
        }
    }
}

/// The whole router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ops::routes(state.clone()))
        .route(
            "/webhooks/woocommerce/{store}",
            axum::routing::post(webhooks::woocommerce),
        )
        .route(
            "/webhooks/courier/{account}",
            axum::routing::post(webhooks::courier),
        )
        .nest("/admin/api", admin::routes(state.clone()))
        .merge(dashboard::routes())
        .with_state(state)
}

/// A JSON error: `{"error": "..."}` with a status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        tracing::error!(error = format!("{e:#}"), "admin API request failed");
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; see the server log".into(),
        )
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        anyhow::Error::from(e).into()
    }
}

/// Reject requests without `Authorization: Bearer <token>` (constant-time
/// compare), unless they carry a dashboard session instead (see
/// [`dashboard::authorize_session`]: cookie, same origin, CSRF token on writes).
pub async fn require_admin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(authorization) = request.headers().get(header::AUTHORIZATION) else {
        return match dashboard::authorize_session(&state, request.method(), request.headers()) {
            Ok(_) => next.run(request).await,
            Err(refused) => refused.into_response(),
        };
    };
    let presented = authorization
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let expected = state.admin_token.expose_secret().as_bytes();
    if presented.is_empty() || !bool::from(presented.as_bytes().ct_eq(expected)) {
        return ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// Serve `router(state)` on `listener` until `shutdown` resolves.
///
/// # Errors
/// The server failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
