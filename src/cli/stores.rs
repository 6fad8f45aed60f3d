//! `ordersync stores [check]` and `ordersync summary`: the configured stores
//! and their figures.

use crate::cli::GlobalArgs;

pub(crate) async fn stores(g: &GlobalArgs, check: bool) -> anyhow::Result<()> {
    let config = g.load_config()?;
    for line in config.mapping_lines() {
        println!("{line}");
    }
    let settings = g.settings();
    // Limits come from the file; breaker states from Redis. Without Redis
    // the mapping above still stands: say what is missing, do not fail.
    let statuses = match crate::queue::connect(&settings.redis_url).await {
        Ok(mut conn) => {
            match crate::ops::accounts::statuses(&mut conn, &settings.namespace, &config).await {
                Ok(statuses) => crate::queue::pause::list(&mut conn, &settings.namespace)
                    .await
                    .map(|pauses| (statuses, pauses))
                    .map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::Error::from(e)),
            }
        }
        Err(e) => Err(e),
    };
    match statuses {
        Ok((statuses, pauses)) => {
            for line in crate::ops::accounts::lines(&statuses) {
                println!("{line}");
            }
            for line in crate::ops::pauses::lines(&pauses) {
                println!("{line}");
            }
        }
        Err(e) => println!("account limits and breakers: Redis unavailable ({e:#})"),
    }
    if !check {
        return Ok(());
    }
    let accounts = crate::accounts::Accounts::new(&config);
    let mut failures = 0;
    let mut report =
        |what: String, result: Result<String, crate::providers::ProviderError>| match result {
            Ok(ok) => println!("ok    {what}: {ok}"),
            Err(e) => {
                failures += 1;
                println!("FAIL  {what}: {e}");
            }
        };
    let mut couriers: Vec<_> = accounts.couriers().collect();
    couriers.sort_by_key(|(name, _)| name.as_str());
    for (name, client) in couriers {
        report(format!("courier account '{name}'"), client.check().await);
    }
    let mut shops: Vec<_> = accounts.shops().collect();
    shops.sort_by_key(|(code, _)| code.as_str());
    for (code, client) in shops {
        report(
            format!("shop of {code}"),
            client.check().await.map(|n| format!("{n} orders")),
        );
    }
    let erp = accounts.erp().map_err(|e| anyhow::anyhow!("{e}"))?;
    report(
        format!("ERP '{}'", config.erp.name),
        erp.check().await.map(|_| "reachable".into()),
    );
    let sms = accounts.sms().map_err(|e| anyhow::anyhow!("{e}"))?;
    report(
        format!("SMS '{}'", config.sms.name),
        sms.check().await.map(|_| "reachable".into()),
    );
    if failures > 0 {
        anyhow::bail!("{failures} account check(s) failed");
    }
    Ok(())
}

/// `ordersync summary`.
///
/// # Errors
/// Postgres failed.
pub(crate) async fn summary(g: &GlobalArgs, json: bool) -> anyhow::Result<()> {
    let db = crate::ledger::connect(&g.database_url, 2).await?;
    let rows = crate::ledger::summary::per_store(&db).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", crate::ops::summary::render_table(&rows));
    }
    Ok(())
}
