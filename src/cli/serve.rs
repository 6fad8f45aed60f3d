//! `ordersync api` and `ordersync scheduler`: the long-running processes
//! besides the workers.

use anyhow::Context as _;

use crate::cli::GlobalArgs;

pub(crate) async fn api(
    g: &GlobalArgs,
    listen: std::net::SocketAddr,
    dashboard: crate::http::dashboard::DashboardArgs,
) -> anyhow::Result<()> {
    let config = g.load_config()?;
    let token = config
        .admin_token
        .clone()
        .context("the admin API needs a bearer token: add [admin] token_env = \"VAR\" to the config and set VAR")?;
    let deps = crate::startup::build(&g.settings(), &config, 8).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(%listen, dashboard = %format!("http://{listen}/dashboard/"), "API listening");
    let mut state = crate::http::AppState::new(deps, &config, token);
    state.dashboard = dashboard.settings();
    crate::http::serve(listener, state, crate::startup::shutdown_signal()).await
}

/// `ordersync scheduler`.
///
/// # Errors
/// The config is invalid or a service is unreachable.
pub(crate) async fn scheduler(g: &GlobalArgs) -> anyhow::Result<()> {
    let config = g.load_config()?;
    let deps = crate::startup::build(&g.settings(), &config, 4).await?;
    let stores = config.stores.iter().map(|s| s.code.clone()).collect();
    let entries = crate::domain::schedule::entries(&config.schedule)?;
    for e in &entries {
        tracing::info!(kind = %e.kind, schedule = %e.schedule, "scheduled");
    }
    crate::scheduler::run(deps, stores, entries, crate::startup::shutdown_signal()).await
}
