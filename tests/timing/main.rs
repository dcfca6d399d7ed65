//! One test binary for the tests that time things against the wall clock: measured latencies
//! against a scripted server's truth (`fidelity`), answers that get worse under a running load
//! (`accuracy`), spawned servers (`spawn`), the simulator served in real time (`sim_server`)
//! and the client benchmark's sampling of its anchor's CPU (`anchor_sampling`).
//! `.config/nextest.toml` runs this binary's tests one at a time with every test thread (test
//! group `serial-load`), so no other test competes for the CPU. Under plain `cargo test` its
//! tests are threads of one process: run it with `-- --test-threads 1`.

#[path = "../support/mod.rs"]
mod support;

mod accuracy;
mod anchor_sampling;
mod compare;
mod consistency;
mod conversations;
mod fidelity;
mod prefix;
mod sim_server;
mod spawn;
mod spawn_shared;
mod trial_limit;
mod twin;
