//! `llm-stress`: stress tests for LLM inference servers.
//!
//! YAML cases and model specs ([`case`]) expand into parameter combinations ([`matrix`]) and
//! typed trial plans ([`plan`]). A [`session`] runs the plans: it brings up or attaches to a
//! server ([`server`]), drives load at it ([`load`], [`client`]) with prompts of exact length
//! ([`prompts`]), asks accuracy questions ([`accuracy`](mod@accuracy)), summarises what was measured
//! ([`metrics`], [`server_metrics`]), has it judged ([`judge`]) and tells its sinks: the
//! reports ([`report`]) and the live display ([`progress`]). The test harness ([`harness`])
//! and the command line ([`cli`]) are thin adapters over the session. The serving simulator is
//! the `llm-sim` crate, re-exported as [`sim`]; [`yaml`] and [`os`] come from `llm-stress-base`,
//! which both share. See `ARCHITECTURE.md`.
//!
//! In another repository, trials can also be Rust functions: `#[llm_stress::perf]`,
//! `#[llm_stress::stress]` and `#[llm_stress::accuracy]` on an
//! `async fn NAME(t: Trial) -> TrialResult` ([`trial`]), run with the YAML cases by
//! [`main!`] in a `harness = false` test target. `llm-stress init` sets that up.

#[doc(hidden)]
pub mod __private;
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
pub mod prelude;
pub mod progress;
pub mod prompts;
pub mod report;
pub mod server;
pub mod server_metrics;
pub mod session;
pub mod trial;
pub mod twin;

// The fuzz targets (property tests; tests only, not part of the module map).
#[cfg(test)]
mod fuzzing;

pub use llm_sim as sim;
pub use llm_stress_base::{os, yaml};

pub use llm_stress_macros::{accuracy, perf, stress};

/// The `main` of a `harness = false` test target: every YAML case in the crate's
/// `stress-cases/` (or `LLM_STRESS_CASES`) and every attributed trial function of the
/// binary, as one sorted list of trials for `cargo test` and nextest. Each passing trial's
/// redacted table is checked against an insta snapshot in the crate's `snapshots/` (with the
/// default `insta` feature). For other settings, write `main` with [`harness::Harness`].
#[macro_export]
macro_rules! main {
    () => {
        fn main() -> ::std::process::ExitCode {
            let harness = $crate::harness::Harness::new(::core::env!("CARGO_MANIFEST_DIR"));
            $crate::__with_snapshots!(harness).main()
        }
    };
}

/// The crate's insta snapshots, checked from the user's crate (so insta finds its folders).
#[cfg(feature = "insta")]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_snapshots {
    ($harness:expr) => {
        $harness.with_snapshot(::std::sync::Arc::new(|name: &str, table: &str| {
            let mut settings = $crate::__private::insta::Settings::clone_current();
            settings.set_snapshot_path(::core::concat!(
                ::core::env!("CARGO_MANIFEST_DIR"),
                "/snapshots"
            ));
            settings.set_prepend_module_to_snapshot(false);
            settings.set_omit_expression(true);
            settings.bind(|| $crate::__private::insta::assert_snapshot!(name.to_string(), table));
        }))
    };
}

/// Without the `insta` feature: no snapshots.
#[cfg(not(feature = "insta"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __with_snapshots {
    ($harness:expr) => {
        $harness
    };
}
