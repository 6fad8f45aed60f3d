//! The HTTP API (`ordersync api`) of a test, on a loopback port.

use ordersync::http::AppState;
use secrecy::SecretString;
use tokio::sync::oneshot;

use super::TestApp;

/// The admin bearer token of every API a test serves.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A running API. It shuts down when this value is dropped.
pub struct ApiServer {
    /// `http://127.0.0.1:{port}`, without a trailing slash.
    pub base: String,
    /// Dropping it ends the server's graceful-shutdown wait.
    _stop: oneshot::Sender<()>,
}

/// Serve the API over `app`'s services, behind [`ADMIN_TOKEN`].
pub async fn serve_api(app: &TestApp) -> ApiServer {
    serve_api_with(app, |_| {}).await
}

/// [`serve_api`] with `edit` applied to the state first (a smaller webhook
/// body limit, secure cookies, another token...).
pub async fn serve_api_with(app: &TestApp, edit: impl FnOnce(&mut AppState)) -> ApiServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut state = AppState::new(
        app.deps.clone(),
        &app.config,
        SecretString::from(ADMIN_TOKEN),
    );
    edit(&mut state);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(ordersync::http::serve(listener, state, async {
        let _ = stopped.await;
    }));
    ApiServer { base, _stop: stop }
}
