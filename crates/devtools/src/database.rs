//! The demo's and the benchmark's scratch databases.
//!
//! Both start from an empty database on the `DATABASE_URL` server. Dropping
//! a database by a name given on the command line is how real data gets
//! lost, so a scratch database is marked when it is created (a comment on
//! the database) and only a marked one is ever dropped: pointing
//! `--database` at anything else is refused, naming it.

use anyhow::Context as _;

/// The comment that marks a database as ordersync-dev's own scratch space.
const SCRATCH_MARKER: &str =
    "ordersync-dev scratch database: dropped and recreated by `ordersync-dev demo|bench`";

/// Drop (if it is ours) and create the scratch database `name` on
/// `database_url`'s server, mark it, and return its URL.
///
/// # Errors
/// The name is not a plain identifier, a database of that name exists and
/// was not created by ordersync-dev, or Postgres refused.
pub(crate) async fn recreate_scratch(database_url: &str, name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "database name '{name}' may only contain letters, digits and _"
    );
    let admin = ordersync::ledger::connect(database_url, 1).await?;
    let existing: Option<Option<String>> = sqlx::query_scalar(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
    )
    .bind(name)
    .fetch_optional(&admin)
    .await?;
    match existing {
        None => {}
        Some(Some(comment)) if comment == SCRATCH_MARKER => {
            sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .execute(&admin)
                .await
                .with_context(|| format!("dropping the scratch database {name}"))?;
        }
        Some(_) => anyhow::bail!(
            "database '{name}' exists and was not created by ordersync-dev: refusing to drop it. \
             Pick another --database, or drop it yourself if it really is disposable"
        ),
    }
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .with_context(|| format!("creating the scratch database {name}"))?;
    sqlx::query(&format!("COMMENT ON DATABASE {name} IS '{SCRATCH_MARKER}'"))
        .execute(&admin)
        .await?;
    admin.close().await;
    let mut url = url::Url::parse(database_url).context("DATABASE_URL is not a URL")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}
