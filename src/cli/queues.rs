//! `ordersync queues [--json] [--watch]`.

use anyhow::Context as _;

use crate::cli::GlobalArgs;

pub(crate) async fn queues(
    g: &GlobalArgs,
    json: bool,
    watch: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    let mut conn = crate::queue::connect(&g.redis_url).await?;
    let db = crate::ledger::connect(&g.database_url, 1).await?;
    loop {
        let snapshot = crate::ops::queues::snapshot(
            &mut conn,
            &db,
            &g.namespace,
            crate::http::ops::worker_liveness(),
        )
        .await
        .context("reading queue figures")?;
        let text = if json {
            serde_json::to_string_pretty(&snapshot)?
        } else {
            crate::ops::queues::render_table(&snapshot)
        };
        let Some(period) = watch else {
            println!("{text}");
            return Ok(());
        };
        // Clear the screen and home the cursor, then redraw.
        print!(
            "\x1b[2J\x1b[H{text}\n(every {}; Ctrl-C to stop)\n",
            humantime::format_duration(period)
        );
        use std::io::Write as _;
        std::io::stdout().flush()?;
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
