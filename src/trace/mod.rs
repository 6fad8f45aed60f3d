//! One order's whole story, read back from the ledger, and why it is where
//! it is: `ordersync orders trace|stuck` and `/admin/api/orders`.
//!
//! - `query`: the SQL (read-only, one snapshot per trace);
//! - [`diagnosis`]: the rules that turn a trace into findings;
//! - [`render`]: the terminal report.

pub mod diagnosis;
mod query;
pub mod render;

pub use query::*;
