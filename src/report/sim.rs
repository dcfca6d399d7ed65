//! What a `sim` trial reports: one step of the simulator's scaling study, in virtual time.

use serde::{Deserialize, Serialize};

/// One study step as a `sim` trial ran it (the [`super::TrialReport`]'s `sim`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimStepReport {
    /// The study preset the case starts from (`small`, `full`).
    pub preset: String,
    /// The step: `request-scaling`, `replica-scaling` or `bins`.
    pub step: String,
    /// The simulated hardware profile.
    pub hardware: String,
    /// Simulations of the step.
    pub runs: usize,
    /// Requests offered over the step's simulations.
    pub requests: u64,
    /// Requests that finished.
    pub completed: u64,
    /// Requests refused because they could never fit the KV cache.
    pub rejected: u64,
    /// The knee of replica scaling (the fewest replicas within 95 % of the peak output
    /// throughput): found by the replica-scaling step, and the replicas of the K-bins runs.
    pub knee_replicas: Option<usize>,
    /// The number of bins with the most goodput (K-bins step).
    pub best_bins: Option<usize>,
    /// The study's findings about the rows, in words.
    pub findings: Vec<String>,
    /// The step's rows as a table, without wall times: exact, the same on every run.
    pub table: String,
    /// Wall time of the trial's simulations, seconds.
    pub wall_s: f64,
}
