//! The per-store figures table (`ordersync summary`, and the demo's closing
//! table).

use crate::ledger::summary::StoreSummary;

/// The per-store table.
pub fn render_table(rows: &[StoreSummary]) -> String {
    let mut out = format!(
        "{:<6} {:>6} {:>9} {:>9} {:>9} {:>5} {:>7} {:>9}  {}\n",
        "store",
        "orders",
        "tracking",
        "invoiced",
        "inv.skip",
        "sms",
        "failed",
        "notfound",
        "by status"
    );
    for r in rows {
        let statuses: Vec<String> = r
            .by_status
            .iter()
            .map(|(s, n)| format!("{s}={n}"))
            .collect();
        out.push_str(&format!(
            "{:<6} {:>6} {:>9} {:>9} {:>9} {:>5} {:>7} {:>9}  {}\n",
            r.store,
            r.orders,
            r.with_tracking,
            r.invoices_created,
            r.invoices_skipped,
            r.sms_sent,
            r.failed_jobs,
            r.not_found,
            statuses.join(" ")
        ));
    }
    out
}
