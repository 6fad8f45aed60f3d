//! Test helpers: a real HTTP server on 127.0.0.1:0 standing in for a provider.

use std::time::Duration;

use super::{http_client, HttpSettings};

/// The client timeout used by tests; servers that must time out sleep past it.
pub(crate) const TEST_TIMEOUT: Duration = Duration::from_millis(200);

/// How long a "hung" test server sleeps: far past [`TEST_TIMEOUT`]. The
/// client gives up first; the runtime drops the sleeping task at test end.
pub(crate) const HANG: Duration = Duration::from_secs(30);

/// Serves `app` on a fresh local port and returns `http://127.0.0.1:<port>`.
pub(crate) async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A base URL on which nothing listens (connection refused).
pub(crate) async fn closed_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A client with a short timeout, so timeout tests stay fast.
pub(crate) fn client() -> reqwest::Client {
    http_client(&HttpSettings {
        timeout: TEST_TIMEOUT,
        connect_timeout: TEST_TIMEOUT,
    })
}
