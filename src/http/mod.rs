//! `ordersync api`: the HTTP side. Health, and the admin JSON API over the
//! failed jobs (the same operations as `ordersync jobs ...`), behind a bearer
//! token. Webhooks and the dashboard build on this router.

pub mod admin;
pub mod dashboard;
pub mod limits;
pub mod maintenance;
pub mod ops;
pub mod orders;
pub mod rejected;
pub mod server;
pub mod texts;
pub mod throttle;
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
    /// Courier account name -> the secret its webhook must present, if set.
    pub courier_webhook_secrets: Arc<std::collections::HashMap<String, Option<SecretString>>>,
    /// Courier webhook events one account may send per second.
    pub courier_webhook_rate: u32,
    /// Timeouts, caps and the body budget.
    pub limits: limits::Limits,
    /// Failed credential attempts per client.
    pub throttle: Arc<throttle::Throttle>,
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
            courier_webhook_secrets: Arc::new(
                config
                    .courier_accounts
                    .iter()
                    .map(|a| (a.name.clone(), a.webhook_secret.clone()))
                    .collect(),
            ),
            courier_webhook_rate: webhooks::DEFAULT_COURIER_RATE,
            limits: limits::Limits::default(),
            throttle: Arc::new(throttle::Throttle::default()),
            config: Arc::new(config.clone()),
            dashboard: dashboard::Settings::default(),
        }
    }
}

/// Content-Security-Policy of every response that does not set its own
/// (the dashboard's pages do): JSON and text load nothing and frame nothing.
const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The whole router.
///
/// Every response carries the security headers (`X-Content-Type-Options`,
/// `X-Frame-Options`, `Referrer-Policy`, a Content-Security-Policy,
/// `Cache-Control: no-store`) unless a route set its own. Webhooks must be
/// answered within the request timeout; no request body may stall past the
/// body timeout; credential attempts are throttled per client.
pub fn router(state: AppState) -> Router {
    use tower_http::set_header::SetResponseHeaderLayer;
    let limits = state.limits.clone();
    let webhooks = Router::new()
        .route(
            "/webhooks/woocommerce/{store}",
            axum::routing::post(webhooks::woocommerce),
        )
        .route(
            "/webhooks/courier/{account}",
            axum::routing::post(webhooks::courier),
        )
        .route(
            "/webhooks/sms/twilio",
            axum::routing::post(webhooks::twilio_status),
        )
        .route(
            "/webhooks/courier/{account}/{token}",
            axum::routing::post(webhooks::courier_with_token),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ));
    let header = |name: header::HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, header::HeaderValue::from_static(value))
    };
    Router::new()
        .merge(ops::routes(state.clone()))
        .merge(webhooks)
        .nest("/admin/api", admin::routes(state.clone()))
        .merge(dashboard::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            throttle::throttle_credentials,
        ))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.body_timeout,
        ))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::REFERRER_POLICY, "no-referrer"))
        .layer(header(
            header::CONTENT_SECURITY_POLICY,
            API_CONTENT_SECURITY_POLICY,
        ))
        .layer(header(header::CACHE_CONTROL, "no-store"))
        .with_state(state)
}

/// A refusal with a status, a JSON `{"error": ...}` body and, when the
/// client should come back later, `Retry-After`.
#[derive(Debug)]
pub struct Refusal {
    /// The status.
    pub status: StatusCode,
    /// What is wrong, for the client.
    pub message: String,
    /// Seconds the client should wait before trying again.
    pub retry_after_secs: Option<u64>,
}

impl Refusal {
    /// A refusal with `status` and `message`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// Ask the client to wait `secs` before trying again.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = ApiError(self.status, self.message).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        response
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::new(e.0, e.1)
    }
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

/// Serve `router(state)` on `listener` until `shutdown` resolves, with the
/// connection limits of `state.limits` (see [`server`]), and run the api's
/// periodic upkeep ([`maintenance`]) meanwhile.
///
/// # Errors
/// The server failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Install the recorder now, so counters from the first request are kept.
    let _ = crate::ops::metrics::recorder();
    let upkeep = tokio::spawn(maintenance::run(state.deps.db.clone()));
    let served = server::serve(
        listener,
        router(state.clone()),
        state.limits.server,
        shutdown,
    )
    .await;
    upkeep.abort();
    served
}
