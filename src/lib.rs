//! `llm-stress`: stress tests for LLM inference servers.
//!
//! YAML cases and model specs ([`case`]) expand into parameter combinations ([`matrix`]) and
//! typed trial plans ([`plan`]). A [`session`] runs the plans: it brings up or attaches to a
//! server ([`server`]), drives load at it ([`load`], [`client`]) with prompts of exact length
//! ([`prompts`]), asks accuracy questions ([`accuracy`]), summarises what was measured
//! ([`metrics`], [`server_metrics`]), has it judged ([`judge`]) and tells its sinks: the
//! reports ([`report`]) and the live display ([`progress`]). The test harness ([`harness`])
//! and the command line ([`cli`]) are thin adapters over the session. The serving simulator is
//! the `llm-sim` crate, re-exported as [`sim`]; [`yaml`] and [`os`] come from `llm-stress-base`,
//! which both share. See `ARCHITECTURE.md`.

pub mod accuracy;
pub mod bench;
pub mod case;
pub mod cli;
pub mod client;
pub mod compare;
pub mod harness;
pub mod judge;
pub mod load;
pub mod matrix;
pub mod metrics;
pub mod plan;
pub mod progress;
pub mod prompts;
pub mod report;
pub mod server;
pub mod server_metrics;
pub mod session;

pub use llm_sim as sim;
pub use llm_stress_base::{os, yaml};
