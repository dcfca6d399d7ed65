//! One test binary for the servers trials talk to that measure nothing: the embedded server's
//! routes, sim trials end to end and the Pushgateway client against a fake gateway.

#[path = "../support/mod.rs"]
mod support;

mod embedded_routes;
mod pushgateway;
mod sim_trials;
