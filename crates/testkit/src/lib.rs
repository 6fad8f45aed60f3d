//! ordersync-testkit: what fault tests need and nothing ordersync ships.
//!
//! - [`services`]: private Redis and Postgres servers on free loopback ports,
//!   owned by one test, so it can kill, flush and restart them without
//!   touching anyone else's data.
//! - [`stack`]: a whole deployment for one test: those servers, the
//!   provider simulator, the config, and `ordersync-worker` processes.
//! - [`scenario`]: a fault scenario against real `ordersync-worker`
//!   processes and the provider simulator: work flows, a fault strikes
//!   (worker kill storm, `FLUSHALL`, Redis restarted with or without its
//!   append-only file, Postgres stopped), and the ledger and the simulator
//!   are checked for what the fault cost. `just test` runs each fault once,
//!   briefly; `just chaos` soaks them.

pub mod scenario;
pub mod services;
pub mod stack;
