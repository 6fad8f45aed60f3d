//! `ordersync orders list|stats|trace REF|stuck|rejected`.

use std::fmt::Write as _;

use anyhow::Context as _;
use clap::Subcommand;

use crate::cli::GlobalArgs;
use crate::trace::{
    self, render, DEFAULT_STUCK_DAYS, DEFAULT_STUCK_LIMIT, MAX_STUCK_DAYS, MAX_STUCK_LIMIT,
};

/// `ordersync orders ...`
#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// Cached orders, newest first, with filters and a search (the admin
    /// API's `GET /admin/api/orders`): one page; `--cursor` continues.
    List {
        /// Only this store.
        #[arg(long)]
        store: Option<String>,
        /// Only this shop status (processing, completed, ...).
        #[arg(long)]
        shop_status: Option<String>,
        /// Only this normalized courier status (or `none`: not at the courier yet).
        #[arg(long)]
        courier_status: Option<String>,
        /// Only this invoice state (none, creating, voided, draft, submitted,
        /// paid, cancelled, existing).
        #[arg(long)]
        invoice_state: Option<String>,
        /// Text in the reference, customer name or phone (3 characters or more).
        #[arg(long, short = 'q')]
        search: Option<String>,
        /// The previous page's next cursor.
        #[arg(long)]
        cursor: Option<String>,
        /// Orders per page (1 to 500).
        #[arg(long)]
        limit: Option<String>,
        /// JSON output (the admin API's shape).
        #[arg(long)]
        json: bool,
    },
    /// Order counts and revenue, in total and per store, by shop status,
    /// courier status and invoice state, with each store's last syncs.
    Stats {
        /// JSON output (the admin API's shape).
        #[arg(long)]
        json: bool,
    },
    /// Everything about one order, and why it is where it is: diagnosis,
    /// current state, status history, every job with its attempts and
    /// errors, the store's syncs, invoice and texts.
    Trace {
        /// Order reference, e.g. ALPH-1001.
        reference: String,
        /// JSON output (the admin API's shape).
        #[arg(long)]
        json: bool,
    },
    /// Orders in one non-final status (or never seen by the courier) for
    /// more than N days, per store, longest-stuck first.
    Stuck {
        /// Whole days without a status change.
        #[arg(long, default_value_t = DEFAULT_STUCK_DAYS,
              value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_STUCK_DAYS)))]
        days: u32,
        /// Only this store.
        #[arg(long)]
        store: Option<String>,
        /// At most this many orders listed (counts cover them all).
        #[arg(long, default_value_t = DEFAULT_STUCK_LIMIT,
              value_parser = clap::value_parser!(i64).range(1..=MAX_STUCK_LIMIT))]
        limit: i64,
        /// JSON output (the admin API's shape).
        #[arg(long)]
        json: bool,
    },
    /// Shop orders that could not be stored (a total out of range, a
    /// reference collision, an unreadable field), each naming the field and
    /// why; open ones unless --all.
    Rejected {
        /// Only this store.
        #[arg(long)]
        store: Option<String>,
        /// Include the ones a later version of the order resolved.
        #[arg(long)]
        all: bool,
        /// At most this many.
        #[arg(long, default_value_t = crate::http::rejected::DEFAULT_LIMIT,
              value_parser = clap::value_parser!(i64).range(1..=crate::http::rejected::MAX_LIMIT))]
        limit: i64,
        /// JSON output (the admin API's shape).
        #[arg(long)]
        json: bool,
    },
}

/// Run an `orders` command.
///
/// # Errors
/// Bad input or an unknown order or store (named, with hints), or Postgres failed.
pub(crate) async fn run(g: &GlobalArgs, command: OrdersCommand) -> anyhow::Result<()> {
    let db = crate::ledger::connect(&g.database_url, 2).await?;
    match command {
        OrdersCommand::List {
            store,
            shop_status,
            courier_status,
            invoice_state,
            search,
            cursor,
            limit,
            json,
        } => {
            let params = crate::ops::orders_view::ListParams {
                store,
                shop_status,
                courier_status,
                invoice_state,
                q: search,
                cursor,
                limit,
            };
            list(&db, &params, json).await?;
        }
        OrdersCommand::Stats { json } => stats(&db, json).await?,
        OrdersCommand::Trace { reference, json } => {
            trace::validate_reference(&reference).map_err(anyhow::Error::msg)?;
            let Some(found) = trace::trace_order(&db, &reference)
                .await
                .with_context(|| format!("tracing order {reference}"))?
            else {
                let hints = trace::unknown_reference_hints(&db, &reference).await?;
                let mut message = format!("no order with reference '{reference}'");
                for hint in hints {
                    let _ = write!(message, "\n  hint: {hint}");
                }
                anyhow::bail!(message);
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                print!("{}", render::render_trace(&found));
            }
        }
        OrdersCommand::Stuck {
            days,
            store,
            limit,
            json,
        } => {
            if let Some(store) = store.as_deref() {
                if let Some(message) = trace::unknown_store(&db, store).await? {
                    anyhow::bail!(message);
                }
            }
            let stuck = trace::stuck_orders(&db, days, store.as_deref(), limit).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stuck)?);
            } else {
                print!("{}", render::render_stuck(&stuck));
            }
        }
        OrdersCommand::Rejected {
            store,
            all,
            limit,
            json,
        } => rejected(&db, store.as_deref(), all, limit, json).await?,
    }
    Ok(())
}

/// `ordersync orders rejected`.
async fn rejected(
    db: &sqlx::PgPool,
    store: Option<&str>,
    all: bool,
    limit: i64,
    json: bool,
) -> anyhow::Result<()> {
    use crate::ledger::rejected;
    if let Some(store) = store {
        crate::input::plain_text("--store", store).map_err(anyhow::Error::msg)?;
    }
    let open: std::collections::BTreeMap<String, i64> =
        rejected::open_counts(db).await?.into_iter().collect();
    let orders = rejected::list(db, store, all, limit).await?;
    if json {
        let reply = crate::http::rejected::RejectedReply { open, orders };
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    if orders.is_empty() {
        println!("no rejected orders{}", if all { "" } else { " open" });
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<6} {:>10} {:<14} {:<18} {:>5} {:<20} reason",
        "store", "shop id", "reference", "field", "seen", "last seen"
    );
    for o in &orders {
        let _ = writeln!(
            out,
            "{:<6} {:>10} {:<14} {:<18} {:>5} {:<20} {}{}",
            o.store,
            o.shop_order_id,
            o.reference.as_deref().unwrap_or("-"),
            o.field,
            o.times_seen,
            o.last_seen_at.format("%Y-%m-%d %H:%M:%S"),
            o.reason,
            if o.resolved_at.is_some() {
                " (resolved)"
            } else {
                ""
            },
        );
    }
    let total: i64 = open.values().sum();
    let _ = writeln!(out, "{total} open rejected order(s)");
    print!("{out}");
    Ok(())
}

/// `ordersync orders list`.
async fn list(
    db: &sqlx::PgPool,
    params: &crate::ops::orders_view::ListParams,
    json: bool,
) -> anyhow::Result<()> {
    use crate::ops::orders_view;
    let stores = orders_view::stores_with_orders(db).await?;
    let request = params
        .check(&stores)
        .map_err(|e| anyhow::anyhow!(flag_named(&e)))?;
    let page = orders_view::page(db, &request).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(());
    }
    if page.orders.is_empty() {
        println!("no orders match");
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:<12} {:<16} {:<10} {:>12} {:<8} {:<16} {:<24} imported",
        "reference", "shop", "courier", "invoice", "total", "method", "phone", "customer"
    );
    for o in &page.orders {
        let _ = writeln!(
            out,
            "{:<14} {:<12} {:<16} {:<10} {:>12} {:<8} {:<16} {:<24} {}",
            o.reference,
            o.shop_status,
            o.courier_status.as_deref().unwrap_or("-"),
            o.invoice_state,
            o.total,
            o.payment_method,
            o.phone.as_deref().unwrap_or("-"),
            o.customer_name.as_deref().unwrap_or("-"),
            o.imported_at.format("%Y-%m-%d %H:%M"),
        );
    }
    match &page.next_cursor {
        Some(cursor) => {
            let _ = writeln!(out, "more: --cursor {cursor}");
        }
        None => {
            let _ = writeln!(out, "(last page)");
        }
    }
    print!("{out}");
    Ok(())
}

/// `ordersync orders stats`.
async fn stats(db: &sqlx::PgPool, json: bool) -> anyhow::Result<()> {
    use crate::ledger::orders_view::OrderCounts;
    let stats = crate::ledger::orders_view::stats(db).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    let counts = |c: &OrderCounts| {
        let join = |m: &std::collections::BTreeMap<String, i64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "  {} orders, revenue {}\n  shop:    {}\n  courier: {}\n  invoice: {}\n",
            c.orders,
            c.revenue,
            join(&c.by_shop_status),
            join(&c.by_courier_status),
            join(&c.by_invoice_state)
        )
    };
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or_else(
            || "never".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M:%S").to_string(),
        )
    };
    let mut out = String::new();
    let _ = write!(out, "all stores\n{}", counts(&stats.total));
    for store in &stats.stores {
        let _ = write!(
            out,
            "{}  (last import {}, last tracking fetch {})\n{}",
            store.store,
            when(store.last_import_at),
            when(store.last_tracking_at),
            counts(&store.counts)
        );
    }
    print!("{out}");
    Ok(())
}

/// An orders-view message about an API parameter, naming the flag instead.
fn flag_named(message: &str) -> String {
    for (parameter, flag) in [
        ("store ", "--store "),
        ("shop_status ", "--shop-status "),
        ("courier_status ", "--courier-status "),
        ("invoice_state ", "--invoice-state "),
        ("q ", "--search "),
        ("cursor ", "--cursor "),
        ("limit ", "--limit "),
    ] {
        if let Some(rest) = message.strip_prefix(parameter) {
            return format!("{flag}{rest}");
        }
    }
    message.to_owned()
}
