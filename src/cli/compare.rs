//! `llm-stress compare BASE NEW`: every trial both runs hold, metric by metric, with
//! confidence intervals; `compare.json` and `compare.md` written beside NEW's trials; exit 1
//! on a regression.

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::case::gate::{self, Gate, InconclusivePolicy};
use crate::compare::runs::{self, DEFAULT_SEED};
use crate::compare::{Outcome, render};

/// Compare a run with a baseline run.
#[derive(clap::Args)]
pub struct Args {
    /// The baseline: a run folder, or an output folder (its newest run, or --base-run).
    base: PathBuf,
    /// The candidate: a run folder, or an output folder (its newest run, or --new-run).
    new: PathBuf,
    /// The run id to read from BASE when it is an output folder.
    #[arg(long)]
    base_run: Option<String>,
    /// The run id to read from NEW when it is an output folder.
    #[arg(long)]
    new_run: Option<String>,
    #[command(flatten)]
    gate: GateArgs,
    /// Seed of the bootstrap (the same runs and seed always compare the same way).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    seed: u64,
    /// Append `compare.md` to this file too (GitHub Actions sets GITHUB_STEP_SUMMARY).
    #[arg(long, env = "GITHUB_STEP_SUMMARY", value_name = "FILE")]
    step_summary: Option<PathBuf>,
}

/// How strict the comparison is (shared by `compare` and `run --baseline`).
#[derive(clap::Args, Clone)]
pub struct GateArgs {
    /// Largest change that is not a regression: `10%` or `0.10`.
    #[arg(long, default_value = "10%", value_parser = gate::parse_fraction)]
    pub max_regression: f64,
    /// Confidence of the intervals and tests.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Metrics compared, comma-separated (default: p50 and p95 of TTFT, TPOT, ITL and E2EL,
    /// output_tok_s, req_s, tput_user, error_rate, accuracy).
    #[arg(long, value_name = "LIST")]
    pub metrics: Option<String>,
    /// What an inconclusive metric does: pass (with a warning) or fail.
    #[arg(long, default_value = "pass")]
    pub inconclusive: InconclusivePolicy,
}

impl Default for GateArgs {
    fn default() -> GateArgs {
        let gate = Gate::default();
        GateArgs {
            max_regression: gate.max_regression,
            confidence: gate.confidence,
            metrics: None,
            inconclusive: gate.inconclusive,
        }
    }
}

impl GateArgs {
    /// The validated gate.
    pub fn gate(&self) -> Result<Gate> {
        let mut gate = Gate {
            max_regression: self.max_regression,
            confidence: self.confidence,
            inconclusive: self.inconclusive,
            ..Gate::default()
        };
        if let Some(list) = &self.metrics {
            gate.metrics = Gate::parse_metrics(list)?;
        }
        Ok(gate.validated()?)
    }
}

/// Compares, prints the tables, writes `compare.json` and `compare.md` into NEW's run
/// folder; exit code 1 when a trial regressed (or was inconclusive under
/// `--inconclusive fail`).
pub fn exec(args: Args) -> Result<ExitCode> {
    let gate = args.gate.gate()?;
    let base = runs::read_run(&args.base, args.base_run.as_deref())
        .with_context(|| format!("reading BASE {}", args.base.display()))?;
    let new = runs::read_run(&args.new, args.new_run.as_deref())
        .with_context(|| format!("reading NEW {}", args.new.display()))?;
    let comparison = runs::compare_runs(&base, &new, &gate, args.seed)?;
    print!("{}", render::text(&comparison));
    let markdown = render::markdown(&comparison);
    let json_path = new.dir.join("compare.json");
    let md_path = new.dir.join("compare.md");
    fs::write(&json_path, render::json(&comparison)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    fs::write(&md_path, &markdown).with_context(|| format!("writing {}", md_path.display()))?;
    println!("compare: {}", md_path.display());
    if let Some(summary) = args.step_summary.filter(|p| !p.as_os_str().is_empty()) {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&summary)
            .and_then(|mut f| f.write_all(markdown.as_bytes()))
            .with_context(|| format!("appending to {}", summary.display()))?;
    }
    let failed = comparison
        .trials
        .iter()
        .any(|t| t.outcome.fails(gate.inconclusive));
    if comparison.outcome == Outcome::Inconclusive && !failed {
        eprintln!(
            "warning: {} trial(s) inconclusive: more samples (matrix.rounds, a longer \
             duration) would decide them",
            comparison.count(Outcome::Inconclusive)
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
