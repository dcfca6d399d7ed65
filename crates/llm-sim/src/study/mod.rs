//! The scaling study: how the simulated serving system (and the simulator) behaves as the
//! number of requests, the number of replicas and the number of multi-bin bins grow.
//!
//! Three steps, each a list of simulations ([`run_step`] runs one and returns its rows):
//!
//! - request scaling: 1K, 10K, 100K and 1M requests with static and continuous batching on one
//!   replica and multi-bin on 1, 2 and 4 replicas;
//! - replica scaling: 1 to 100 replicas of multi-bin at 1M requests;
//! - K-bins sensitivity: K = 1 … 32 at the best replica count of the replica scaling (its
//!   knee, see [`analysis`]).
//!
//! Every simulation shares one workload shape (Poisson arrivals at a fixed rate, so more
//! replicas serve the same load) and seed, so results are exact and repeatable.
//! [`StudyConfig::full`] is the study of `llm-stress sim study`; [`StudyConfig::small`] a
//! reduced one that runs in seconds in a debug build, for tests.

pub mod analysis;
mod output;

pub use analysis::{Analysis, analyse};
pub use output::{COLUMNS, render, write_csv};

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::config::SimConfig;
use super::error::SimError;
use super::metrics::SimSummary;
use super::scheduler::SchedulerKind;
use super::workload::{Arrival, Lengths};

/// One step of the study.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudyStep {
    /// Requests scaling, several schedulers.
    RequestScaling,
    /// Replica scaling, multi-bin.
    ReplicaScaling,
    /// K-bins sensitivity at this replica count.
    Bins {
        /// Replicas.
        replicas: usize,
    },
}

impl StudyStep {
    /// Name in file names and rows.
    pub fn name(&self) -> &'static str {
        match self {
            StudyStep::RequestScaling => "request-scaling",
            StudyStep::ReplicaScaling => "replica-scaling",
            StudyStep::Bins { .. } => "bins",
        }
    }
}

impl std::fmt::Display for StudyStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What the study simulates.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyConfig {
    /// Everything but the scheduler, the replica count and the request count: hardware, model,
    /// KV cache, workload shape and seed, SLA. Its scheduler settings (token budget, max wait,
    /// prediction noise in the workload) apply to every run.
    pub base: SimConfig,
    /// Request counts of the request-scaling step.
    pub request_counts: Vec<usize>,
    /// (scheduler, replicas) pairs of the request-scaling step.
    pub request_variants: Vec<(SchedulerKind, usize)>,
    /// Replica counts of the replica-scaling step.
    pub replica_counts: Vec<usize>,
    /// Requests of each replica-scaling and K-bins run.
    pub scaled_requests: usize,
    /// Bin counts of the K-bins step.
    pub bin_counts: Vec<usize>,
    /// Bins of multi-bin outside the K-bins step.
    pub default_bins: usize,
    /// Batch size of static and multi-bin.
    pub static_batch: u32,
    /// Maximum batch size of continuous batching.
    pub continuous_batch: u32,
}

impl StudyConfig {
    fn with_rate(rate: f64) -> SimConfig {
        let mut base = SimConfig {
            router: super::router::Router::LeastOutstanding,
            ..SimConfig::default()
        };
        base.workload.arrival = Arrival::Poisson { rate };
        base.workload.prompt = Lengths::Uniform {
            min: 128,
            max: 1024,
        };
        base.workload.output = Lengths::Exponential {
            mean: 500.0,
            max: Some(8192),
        };
        base.workload.prediction_sigma = 0.3;
        base.workload.seed = 2024;
        base.scheduler.max_wait_s = Some(1.0);
        base
    }

    /// The study of `llm-stress sim study`: Llama-3.1-8B on H100s, 200 Poisson requests/s,
    /// prompts uniform on [128, 1024], outputs exponential of mean 500 (capped at 8,192),
    /// predicted with lognormal noise σ = 0.3; static and multi-bin batches of 64 (max wait
    /// 1 s, 4 bins), continuous batches of up to 256; SLA TPOT ≤ 50 ms, E2E ≤ 60 s.
    pub fn full() -> StudyConfig {
        StudyConfig {
            base: StudyConfig::with_rate(200.0),
            request_counts: vec![1_000, 10_000, 100_000, 1_000_000],
            request_variants: vec![
                (SchedulerKind::Static, 1),
                (SchedulerKind::Continuous, 1),
                (SchedulerKind::MultiBin, 1),
                (SchedulerKind::MultiBin, 2),
                (SchedulerKind::MultiBin, 4),
            ],
            replica_counts: vec![1, 2, 4, 8, 16, 32, 64, 100],
            scaled_requests: 1_000_000,
            bin_counts: vec![1, 2, 4, 8, 16, 32],
            default_bins: 4,
            static_batch: 64,
            continuous_batch: 256,
        }
    }

    /// A reduced study for tests: 20 requests/s, up to 5,000 requests, 1 to 16 replicas,
    /// K = 1 to 8.
    pub fn small() -> StudyConfig {
        StudyConfig {
            base: StudyConfig::with_rate(20.0),
            request_counts: vec![500, 2_000, 5_000],
            replica_counts: vec![1, 2, 4, 8, 16],
            scaled_requests: 5_000,
            bin_counts: vec![1, 2, 4, 8],
            ..StudyConfig::full()
        }
    }

    /// The configuration of one run.
    pub fn run_config(
        &self,
        scheduler: SchedulerKind,
        replicas: usize,
        requests: usize,
        bins: usize,
    ) -> SimConfig {
        let mut config = self.base.clone();
        config.scheduler.kind = scheduler;
        config.scheduler.batch_size = match scheduler {
            SchedulerKind::Continuous => self.continuous_batch,
            SchedulerKind::Static | SchedulerKind::MultiBin => self.static_batch,
        };
        config.scheduler.bins = bins;
        config.replicas = replicas;
        config.workload.requests = requests;
        config
    }

    /// The runs of a step: (scheduler, replicas, requests, bins).
    pub fn runs(&self, step: StudyStep) -> Vec<(SchedulerKind, usize, usize, usize)> {
        match step {
            StudyStep::RequestScaling => self
                .request_counts
                .iter()
                .flat_map(|&n| {
                    self.request_variants
                        .iter()
                        .map(move |&(kind, replicas)| (kind, replicas, n, self.default_bins))
                })
                .collect(),
            StudyStep::ReplicaScaling => self
                .replica_counts
                .iter()
                .map(|&r| {
                    (
                        SchedulerKind::MultiBin,
                        r,
                        self.scaled_requests,
                        self.default_bins,
                    )
                })
                .collect(),
            StudyStep::Bins { replicas } => self
                .bin_counts
                .iter()
                .map(|&k| (SchedulerKind::MultiBin, replicas, self.scaled_requests, k))
                .collect(),
        }
    }
}

/// One simulation of the study.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyRow {
    /// Step name.
    pub step: &'static str,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Replicas.
    pub replicas: usize,
    /// Bins (multi-bin; 1 otherwise).
    pub bins: usize,
    /// Requests offered.
    pub requests: usize,
    /// The run's summary.
    pub summary: SimSummary,
    /// Wall time of the run (generation, simulation and summary), seconds.
    pub wall_s: f64,
}

/// Runs every simulation of `step` in order.
pub fn run_step(config: &StudyConfig, step: StudyStep) -> Result<Vec<StudyRow>, SimError> {
    config
        .runs(step)
        .into_iter()
        .map(|(scheduler, replicas, requests, bins)| {
            let started = Instant::now();
            let run = config.run_config(scheduler, replicas, requests, bins);
            let summary = run.run()?.summary;
            Ok(StudyRow {
                step: step.name(),
                scheduler,
                replicas,
                bins: if scheduler == SchedulerKind::MultiBin {
                    bins
                } else {
                    1
                },
                requests,
                summary,
                wall_s: started.elapsed().as_secs_f64(),
            })
        })
        .collect()
}

/// Wall time of one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepTiming {
    /// Step name.
    pub step: &'static str,
    /// Seconds.
    pub wall_s: f64,
}

/// The whole study's results.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyOutcome {
    /// Every row, step by step.
    pub rows: Vec<StudyRow>,
    /// The findings.
    pub analysis: Analysis,
    /// Wall time per step.
    pub timings: Vec<StepTiming>,
}

/// Runs the three steps (the K-bins step at the knee of the replica scaling), writing
/// `<step>.csv` per step, `all.csv` and `analysis.json` into `out`; `progress` hears each
/// step's wall time.
pub fn run_study(
    config: &StudyConfig,
    out: &Path,
    mut progress: impl FnMut(StudyStep, f64),
) -> Result<StudyOutcome, SimError> {
    std::fs::create_dir_all(out).map_err(|source| SimError::Io {
        path: out.to_path_buf(),
        source,
    })?;
    let mut rows = Vec::new();
    let mut timings = Vec::new();
    let mut timed = |step: StudyStep, rows: &mut Vec<StudyRow>| -> Result<(), SimError> {
        let started = Instant::now();
        let step_rows = run_step(config, step)?;
        write_csv(&out.join(format!("{}.csv", step.name())), &step_rows)?;
        let wall_s = started.elapsed().as_secs_f64();
        progress(step, wall_s);
        timings.push(StepTiming {
            step: step.name(),
            wall_s,
        });
        rows.extend(step_rows);
        Ok(())
    };
    timed(StudyStep::RequestScaling, &mut rows)?;
    timed(StudyStep::ReplicaScaling, &mut rows)?;
    let replicas = analysis::knee(&rows).unwrap_or(1);
    timed(StudyStep::Bins { replicas }, &mut rows)?;
    write_csv(&out.join("all.csv"), &rows)?;
    let analysis = analyse(&rows);
    let json = serde_json::json!({
        "analysis": analysis,
        "timings": timings,
        "total_wall_s": timings.iter().map(|t| t.wall_s).sum::<f64>(),
    });
    let path = out.join("analysis.json");
    let text = serde_json::to_string_pretty(&json).map_err(|e| SimError::Io {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    std::fs::write(&path, text + "\n").map_err(|source| SimError::Io { path, source })?;
    Ok(StudyOutcome {
        rows,
        analysis,
        timings,
    })
}
