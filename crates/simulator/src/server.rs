//! Serving: binds the address, seeds the data, and routes each provider behind
//! the fault middleware (with that provider's error shape), next to the admin
//! routes. The only module that knows both the providers and the faults.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::Router;

use crate::config::SimConfig;
use crate::faults::{self, FaultBody};
use crate::service::Service;
use crate::sim::Sim;
use crate::SimHandle;
use crate::{admin, courier, datamart, erp, shop, sms, twilio, yalidine};

/// Seeds the data of `config` and serves the seven services on `addr` (port 0
/// picks a free port) until [`SimHandle::shutdown`].
///
/// # Errors
/// The config is inconsistent (duplicate store code, one courier key on two
/// accounts, page size 0) or `addr` cannot be bound.
pub async fn start(config: SimConfig, addr: SocketAddr) -> anyhow::Result<SimHandle> {
    config.validate().context("invalid simulator config")?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the simulator to {addr}"))?;
    let local = listener.local_addr()?;
    let host = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let base_url = format!("http://{}", SocketAddr::new(host, local.port()));
    let sim = Arc::new(Sim::new(config, base_url, Instant::now()));
    let app = router(&sim);
    let stopping = Arc::clone(&sim);
    let server = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stopping.shutting_down().await })
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "simulator server stopped");
        }
    });
    sim.set_server(server);
    tracing::info!(base_url = %sim.base_url, stores = sim.config.stores.len(), "simulator listening");
    Ok(SimHandle { inner: sim })
}

/// Every provider's routes, then the admin routes (never faulted, never
/// counted).
fn router(sim: &Arc<Sim>) -> Router {
    Service::ALL
        .into_iter()
        .fold(Router::new(), |app, service| {
            app.merge(provider(sim, service))
        })
        .merge(admin::routes(sim))
}

/// One provider's routes, each behind the fault middleware answering in that
/// provider's error shape.
fn provider(sim: &Arc<Sim>, service: Service) -> Router {
    let (routes, body): (Router, FaultBody) = match service {
        Service::Courier => (courier::routes(sim), courier::fault_response),
        Service::Shop => (shop::routes(sim), |status, _| shop::fault_response(status)),
        Service::Erp => (erp::routes(sim), erp::fault_response),
        Service::Sms => (sms::routes(sim), |status, _| sms::fault_response(status)),
        Service::Yalidine => (yalidine::routes(sim), yalidine::fault_response),
        Service::Twilio => (twilio::routes(sim), twilio::fault_response),
        Service::Datamart => (datamart::routes(sim), datamart::fault_response),
    };
    faults::with_faults(routes, sim, service, body)
}
