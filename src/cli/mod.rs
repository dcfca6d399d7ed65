//! The command-line interface: one module per command, each with its `Args` and an `exec`.
//! `main.rs` only parses and dispatches.

pub mod bench;
pub mod bench_serve;
pub mod compare;
pub mod init;
pub mod matrix;
pub mod merge;
pub mod report;
pub mod run;
pub mod serve;
pub mod sim;
pub mod supervise;
pub mod values;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::case::Overrides;
use crate::report::analysis::Thresholds;
use crate::report::pushgateway::{self, Gateway};

/// `llm-stress`: the command line.
#[derive(Parser)]
#[command(
    name = "llm-stress",
    version,
    about = "Stress-test LLM inference servers"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the cases' perf, accuracy, stress and sim trials and write reports.
    Run(run::Args),
    /// Scaffold llm-stress into a repository (cases, a test target, nextest, CI).
    Init(init::Args),
    /// Gather a run's trials into `summary.md` and `report.html` in its folder, print the
    /// summary, and optionally push its metrics to a Prometheus Pushgateway.
    Report(report::Args),
    /// Merge the shards that workers (`run --worker I/N`) wrote for a run into its trial
    /// folders, results.csv rows, verdicts, summary.md and report.html.
    Merge(merge::Args),
    /// Benchmark a running server from flags alone (vLLM `bench serve` flag names work): the
    /// flags become a case run through the full pipeline.
    Bench(bench_serve::Args),
    /// Compare a run with a baseline run, trial by trial and metric by metric, with
    /// confidence intervals; exit 1 on a regression.
    Compare(compare::Args),
    /// Serve the embedded simulated OpenAI-compatible server until Ctrl-C.
    Serve(serve::Args),
    /// The discrete-event serving simulator: run one simulation, the scaling study, or its
    /// benchmark.
    Sim(sim::SimArgs),
    /// Print the parameter combinations a case generates.
    Matrix(matrix::Args),
    /// Measure the client itself: chunks per client CPU-second and timestamp error against a
    /// scripted server in a child process.
    BenchClient(bench::ClientArgs),
    /// Serve the scripted benchmark server (used by bench-client) until Ctrl-C.
    BenchServer(bench::ServerArgs),
    /// Supervise one spawned server shared by a run's trial processes (started by the first
    /// trial that needs it).
    #[command(hide = true)]
    Supervise(supervise::SuperviseArgs),
    /// Stop the spawned servers a run's trial processes share.
    Down(supervise::DownArgs),
}

impl Cli {
    /// Runs the command; its exit code, or an error for `main` to print (exit code 2).
    pub fn exec(self) -> Result<ExitCode> {
        match self.command {
            Command::Run(args) => run::exec(args),
            Command::Init(args) => init::exec(args),
            Command::Report(args) => report::exec(args),
            Command::Merge(args) => merge::exec(args),
            Command::Bench(args) => bench_serve::exec(args),
            Command::Compare(args) => compare::exec(args),
            Command::Serve(args) => serve::exec(args),
            Command::Sim(args) => sim::exec(args),
            Command::Matrix(args) => matrix::exec(args),
            Command::BenchClient(args) => bench::exec_client(args),
            Command::BenchServer(args) => bench::exec_server(args),
            Command::Supervise(args) => supervise::exec_supervise(args),
            Command::Down(args) => supervise::exec_down(args),
        }
    }
}

/// Which trials of the cases a command takes, and the keys it overrides in every case (`run`
/// and `merge`, which must select what the workers ran).
#[derive(clap::Args)]
pub struct SelectionArgs {
    /// Only trials whose `[kind] case::combination` name contains this text.
    #[arg(long)]
    pub filter: Option<String>,
    /// Only the trials of cases with one of these tags (repeatable, or comma-separated).
    #[arg(long = "tag", env = crate::plan::discovery::TAG_ENV, value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Override a key of every case before it is validated, such as
    /// `matrix.concurrency=[1,8]` or `load.duration=30s` (repeatable; after LLM_STRESS_SET).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl SelectionArgs {
    /// The `--set` overrides, after those of `LLM_STRESS_SET`.
    pub fn overrides(&self) -> Result<Overrides> {
        Ok(Overrides::parse(&self.set)?.after_env()?)
    }
}

/// Thresholds of the automatic analysis (`run` and `report`).
#[derive(clap::Args, Default)]
pub struct AnalysisArgs {
    /// YAML file of analysis thresholds (see the book's analysis page); keys left out keep
    /// their defaults.
    #[arg(long, value_name = "FILE")]
    thresholds: Option<PathBuf>,
    /// One analysis threshold, such as `e2el_p90_s.warning=2` (repeatable; applied after
    /// --thresholds).
    #[arg(long = "threshold", value_name = "NAME.LEVEL=VALUE")]
    threshold: Vec<String>,
}

impl AnalysisArgs {
    /// The thresholds: the file's (or the defaults), then each `--threshold`.
    pub fn thresholds(&self) -> Result<Thresholds> {
        let base = match &self.thresholds {
            Some(path) => Thresholds::from_file(path)?,
            None => Thresholds::default(),
        };
        Ok(base.with_overrides(&self.threshold)?)
    }
}

/// Where to push metrics (`run` and `report`).
#[derive(clap::Args, Default)]
pub struct PushArgs {
    /// Push the run's metrics to this Prometheus Pushgateway, such as http://127.0.0.1:9091.
    #[arg(long, env = "LLM_STRESS_PUSHGATEWAY")]
    pushgateway: Option<String>,
    /// The `job` grouping label.
    #[arg(long, env = "LLM_STRESS_PUSH_JOB", default_value = pushgateway::DEFAULT_JOB)]
    push_job: String,
    /// The `instance` grouping label (default: this machine's host name).
    #[arg(long, env = "LLM_STRESS_PUSH_INSTANCE")]
    push_instance: Option<String>,
}

impl PushArgs {
    /// The gateway, when one is named.
    pub fn gateway(&self) -> Option<Gateway> {
        let url = self.pushgateway.clone().filter(|u| !u.is_empty())?;
        Some(Gateway {
            url,
            job: self.push_job.clone(),
            instance: self
                .push_instance
                .clone()
                .unwrap_or_else(crate::os::host_name),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }
}
