//! ordersync: durable job-queue workers that sync shop orders with couriers,
//! ERPs and SMS gateways.
