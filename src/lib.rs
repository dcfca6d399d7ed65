//! `llm-stress`: stress tests for LLM inference servers.
//!
//! YAML cases and model specs become test trials (see [`harness`]) that bring up or attach to a
//! server ([`server`]), drive load at it ([`load`], [`client`]), summarise what was measured
//! ([`metrics`]), judge it against targets ([`verdict`]) and write reports ([`report`]);
//! [`progress`] shows a load while it runs. The serving simulator is the `llm-sim` crate,
//! re-exported as [`sim`]; [`yaml`] and [`os`] come from `llm-stress-base`, which both share.
//! [`cli`] holds the command-line interface of the `llm-stress` binary, one module per command.

pub mod accuracy;
pub mod bench;
pub mod case;
pub mod cli;
pub mod client;
pub mod harness;
pub mod load;
pub mod matrix;
pub mod metrics;
pub mod progress;
pub mod prompts;
pub mod report;
pub mod runner;
pub mod server;
pub mod server_metrics;
pub mod verdict;

pub use llm_sim as sim;
pub use llm_stress_base::{os, yaml};
