//! The closed sets the commands take, as clap value enums: the simulator's hardware and model
//! profiles, its schedulers and routers.

use clap::ValueEnum;

use crate::sim::router::Router;
use crate::sim::scheduler::SchedulerKind;

/// The simulator's hardware profiles, as `--profile` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HardwareArg {
    /// NVIDIA H100 SXM.
    #[value(name = "h100-sxm")]
    H100Sxm,
    /// NVIDIA H200.
    #[value(name = "h200")]
    H200,
    /// NVIDIA A100 80 GB.
    #[value(name = "a100-80gb")]
    A100_80gb,
    /// Two CPU cores (SmolLM2 on llama.cpp, as measured here).
    #[value(name = "cpu-2core")]
    Cpu2Core,
}

/// The simulator's model profiles, as `--model-profile` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelArg {
    /// Llama 3.1 8B.
    #[value(name = "llama-3.1-8b")]
    Llama31_8b,
    /// Llama 3.1 70B.
    #[value(name = "llama-3.1-70b")]
    Llama31_70b,
    /// SmolLM2 135M.
    #[value(name = "smollm2-135m")]
    Smollm2_135m,
}

/// The simulator's scheduler families, as `--scheduler` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchedulerArg {
    /// Fixed batches, run to completion.
    Static,
    /// Continuous batching.
    Continuous,
    /// Requests binned by predicted output length.
    #[value(name = "multi-bin")]
    MultiBin,
}

impl From<SchedulerArg> for SchedulerKind {
    fn from(arg: SchedulerArg) -> SchedulerKind {
        match arg {
            SchedulerArg::Static => SchedulerKind::Static,
            SchedulerArg::Continuous => SchedulerKind::Continuous,
            SchedulerArg::MultiBin => SchedulerKind::MultiBin,
        }
    }
}

/// The name a value enum was given on the command line (its profile name).
pub fn value_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

/// The simulator's routers, as `--router` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RouterArg {
    /// Each replica in turn.
    RoundRobin,
    /// The replica with the fewest requests in flight.
    LeastOutstanding,
}

impl From<RouterArg> for Router {
    fn from(arg: RouterArg) -> Router {
        match arg {
            RouterArg::RoundRobin => Router::RoundRobin,
            RouterArg::LeastOutstanding => Router::LeastOutstanding,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::profile::{HARDWARE_NAMES, MODEL_NAMES};
    use crate::sim::scheduler::SchedulerKind;

    #[test]
    fn the_profile_flags_take_exactly_the_simulators_profiles() {
        let hardware: Vec<String> = HardwareArg::value_variants()
            .iter()
            .map(|&v| value_name(v))
            .collect();
        assert_eq!(hardware, HARDWARE_NAMES);
        let models: Vec<String> = ModelArg::value_variants()
            .iter()
            .map(|&v| value_name(v))
            .collect();
        assert_eq!(models, MODEL_NAMES);
        let schedulers: Vec<String> = SchedulerArg::value_variants()
            .iter()
            .map(|&s| SchedulerKind::from(s).as_str().to_string())
            .collect();
        assert_eq!(schedulers, ["static", "continuous", "multi-bin"]);
    }
}
