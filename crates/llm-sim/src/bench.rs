//! `llm-stress sim bench`: how fast the simulator itself runs.
//!
//! For each scheduler, one replica of an H100 serving Llama-3.1-8B gets `requests` Poisson
//! arrivals (prompts uniform on [128, 1024], outputs exponential of mean `output_mean`, capped
//! at 8,192); the wall time of generating the workload and the wall and CPU time of simulating
//! it are measured on the calling thread.

use std::time::Instant;

use llm_stress_base::os::process_cpu_s;

use super::config::SimConfig;
use super::engine::simulate;
use super::error::SimError;
use super::scheduler::SchedulerKind;
use super::workload::{Arrival, Lengths};

/// What to benchmark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BenchSpec {
    /// Requests per scheduler.
    pub requests: usize,
    /// Mean output length, tokens.
    pub output_mean: f64,
    /// Poisson arrival rate, requests per second.
    pub rate: f64,
}

impl Default for BenchSpec {
    /// 1,000,000 requests of mean 500 output tokens at 40 requests/s.
    fn default() -> Self {
        BenchSpec {
            requests: 1_000_000,
            output_mean: 500.0,
            rate: 40.0,
        }
    }
}

/// One scheduler's measurement.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Requests simulated.
    pub requests: usize,
    /// Output tokens simulated.
    pub tokens: u64,
    /// Engine events processed.
    pub events: u64,
    /// Runs of steps planned.
    pub segments: u64,
    /// Batch steps simulated.
    pub steps: u64,
    /// Virtual time simulated, seconds.
    pub virtual_s: f64,
    /// Wall time to generate the workload, seconds.
    pub generate_s: f64,
    /// Wall time to simulate it, seconds.
    pub simulate_s: f64,
    /// CPU time of the process while simulating, seconds (the simulation runs on one thread,
    /// so this is its time on one core, whatever else the machine runs).
    pub simulate_cpu_s: f64,
}

impl BenchRow {
    /// Requests simulated per CPU second (simulation alone).
    pub fn requests_per_s(&self) -> f64 {
        self.requests as f64 / self.simulate_cpu_s.max(1e-9)
    }
}

/// The configuration benchmarked for `scheduler`.
pub fn bench_config(spec: &BenchSpec, scheduler: SchedulerKind) -> SimConfig {
    let mut config = SimConfig::default();
    config.scheduler.kind = scheduler;
    config.scheduler.batch_size = match scheduler {
        SchedulerKind::Continuous => 256,
        SchedulerKind::Static | SchedulerKind::MultiBin => 64,
    };
    config.workload.requests = spec.requests;
    config.workload.arrival = Arrival::Poisson { rate: spec.rate };
    config.workload.output = Lengths::Exponential {
        mean: spec.output_mean,
        max: Some(8192),
    };
    config
}

/// Runs the benchmark for every scheduler.
pub fn run(spec: &BenchSpec) -> Result<Vec<BenchRow>, SimError> {
    [
        SchedulerKind::Static,
        SchedulerKind::Continuous,
        SchedulerKind::MultiBin,
    ]
    .into_iter()
    .map(|scheduler| {
        let config = bench_config(spec, scheduler);
        let engine = config.engine_config()?;
        let started = Instant::now();
        let requests = config.workload.generate()?;
        let generate_s = started.elapsed().as_secs_f64();
        let (started, cpu) = (Instant::now(), process_cpu_s());
        let run = simulate(&engine, &requests)?;
        let simulate_s = started.elapsed().as_secs_f64();
        let simulate_cpu_s = process_cpu_s() - cpu;
        Ok(BenchRow {
            scheduler,
            requests: requests.len(),
            tokens: requests.iter().map(|r| u64::from(r.output_tokens)).sum(),
            events: run.stats.events,
            segments: run.stats.segments(),
            steps: run.stats.steps(),
            virtual_s: run.stats.last_event_s,
            generate_s,
            simulate_s,
            simulate_cpu_s,
        })
    })
    .collect()
}

/// The header of [`render_row`]'s table.
pub const HEADER: &str = "| scheduler | requests | output tokens | events | segments | steps | virtual s | generate s | simulate wall s | simulate CPU s | requests per CPU-s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

/// One row of the benchmark table.
pub fn render_row(row: &BenchRow) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {:.0} |",
        row.scheduler.as_str(),
        row.requests,
        row.tokens,
        row.events,
        row.segments,
        row.steps,
        row.virtual_s,
        row.generate_s,
        row.simulate_s,
        row.simulate_cpu_s,
        row.requests_per_s()
    )
}
