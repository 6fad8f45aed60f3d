//! `ordersync api` and `ordersync scheduler`: the long-running processes
//! besides the workers.

use anyhow::Context as _;

use crate::cli::GlobalArgs;

pub(crate) async fn api(
    g: &GlobalArgs,
    listen: std::net::SocketAddr,
    dashboard: crate::http::dashboard::DashboardArgs,
    limits: crate::http::limits::LimitArgs,
) -> anyhow::Result<()> {
    let config = g.load_config()?;
    let token = config
        .admin_token
        .clone()
        .context("the admin API needs a bearer token: add [admin] token_env = \"VAR\" to the config and set VAR")?;
    check_admin_token(&config, &token)?;
    let deps = crate::startup::build(&g.settings(), &config, 8).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let bound = listener.local_addr().unwrap_or(listen);
    tracing::info!(listen = %bound, dashboard = %format!("http://{bound}/dashboard/"), "API listening");
    let mut state = crate::http::AppState::new(deps, &config, token);
    state.dashboard = dashboard.settings();
    state.limits = limits.limits();
    state.courier_webhook_rate = limits.courier_webhook_rate;
    crate::http::serve(listener, state, crate::startup::shutdown_signal()).await
}

/// Shortest admin token accepted: 32 characters of a random token (e.g.
/// `openssl rand -hex 32` gives 64) put guessing out of reach even at the
/// throttled rate.
pub(crate) const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// Refuse an admin token shorter than [`MIN_ADMIN_TOKEN_CHARS`], naming
/// the variable that holds it (never its value).
fn check_admin_token(
    config: &crate::config::Config,
    token: &secrecy::SecretString,
) -> anyhow::Result<()> {
    use secrecy::ExposeSecret as _;
    let chars = token.expose_secret().trim().chars().count();
    if chars < MIN_ADMIN_TOKEN_CHARS {
        let var = config
            .admin_token_env
            .as_deref()
            .unwrap_or("the admin token variable");
        anyhow::bail!(
            "{var} holds an admin token of {chars} characters; the admin API needs at least \
             {MIN_ADMIN_TOKEN_CHARS} (generate one with `openssl rand -hex 32`)"
        );
    }
    Ok(())
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
