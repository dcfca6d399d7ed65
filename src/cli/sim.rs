//! The `llm-stress sim` subcommands: `run`, `study`, `bench`, `fit`, `calibrate`, `predict`,
//! `validate` and `what-if`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::values::{HardwareArg, ModelArg, RouterArg, SchedulerArg, value_name};
use crate::case::Overrides;
use crate::plan::TrialPlan;
use crate::plan::discovery::{Discovered, discover_with};
use crate::sim::bench::{self, BenchSpec};
use crate::sim::capacity::{CapacitySearch, capacity_qps};
use crate::sim::config::{CostSpec, SimConfig};
use crate::sim::cost::{FittedCost, fit};
use crate::sim::error::SimError;
use crate::sim::router::Router;
use crate::sim::scheduler::{DynamicBatchConfig, SchedulerKind};
use crate::sim::study::{self, StudyConfig};
use crate::sim::table;
use crate::sim::workload::{Arrival, Lengths};
use crate::twin::{self, CalibrateOptions, TwinError, calibrate_run, validate::validate_run};

/// What `llm-stress sim` does.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Simulate one configuration (YAML and/or flags) and print its summary.
    Run(Box<RunArgs>),
    /// Run the scaling study: request scaling, replica scaling and K-bins sensitivity.
    Study(StudyArgs),
    /// Measure how fast the simulator runs (1M requests per scheduler by default).
    Bench(BenchArgs),
    /// Fit t(b, L) = α + β·L·(1 + γ(b−1)/b) to a CSV of step latencies.
    Fit {
        /// CSV with columns batch_size, max_seq_len and latency_s or latency_ms.
        csv: PathBuf,
    },
    /// Fit the simulator to a run's records: decode step time vs batch and context, prefill
    /// vs prompt, slot count; print the fit and write the profile.
    Calibrate(CalibrateArgs),
    /// Predict a case's closed-loop trials with a calibrated profile, written as a run.
    Predict(PredictArgs),
    /// A profile under other deployments and loads: the knee and the highest rate meeting a
    /// TTFT/TPOT objective of each scenario, as a table (stdout, what-if.md) and a chart.
    #[command(name = "what-if")]
    WhatIf(WhatIfArgs),
    /// Calibrate on some trials of a run, predict the others, report the error; the run's
    /// report.html then draws the prediction dashed over the measurements.
    Validate(ValidateArgs),
}

/// Flags of `sim predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The profile (`sim calibrate --out`, or any llm-sim configuration).
    pub profile: PathBuf,
    /// The case file whose trials to predict.
    pub case: PathBuf,
    /// Output folder (the run goes to OUT/RUN_ID, its rows to OUT/results.csv).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The predicted run's id.
    #[arg(long, default_value = "predicted")]
    pub run_id: String,
    /// Delay between a token's making and its reading, ms (`sim calibrate` prints it).
    #[arg(long, default_value_t = 0.0)]
    pub overhead_ms: f64,
    /// Gap between a closed loop's opening sends, ms (`sim calibrate` prints it).
    #[arg(long, default_value_t = 0.0)]
    pub send_gap_ms: f64,
    /// How long the idle server takes to start a step once a request reaches it, ms: requests
    /// reaching it meanwhile are prefilled together (`sim calibrate` prints it).
    #[arg(long, default_value_t = 0.0)]
    pub admission_window_ms: f64,
}

/// Flags of `sim what-if`.
#[derive(Debug, Args)]
pub struct WhatIfArgs {
    /// The profile (`sim calibrate --out`, or any llm-sim configuration).
    pub profile: PathBuf,
    /// A scenario, repeatable: space-separated `key=value` of `replicas=N`,
    /// `router=round-robin|least-outstanding`, `bins=K`, `prompt=LENGTHS`, `output=LENGTHS`,
    /// `cv=X`, `rate=R` (`--scenario "replicas=4 router=least-outstanding"`). The profile as it
    /// is always comes first. Default: 2 replicas with each router, and 4 bins.
    #[arg(long = "scenario")]
    pub scenarios: Vec<twin::whatif::Scenario>,
    /// The objective: largest TTFT p95, ms.
    #[arg(long, default_value_t = 1000.0)]
    pub slo_ttft_ms: f64,
    /// The objective: largest TPOT p95, ms.
    #[arg(long, default_value_t = 50.0)]
    pub slo_tpot_ms: f64,
    /// Folder for `what-if.md` and `what-if.svg` (default: the profile's folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Flags of `sim validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A run folder, or an output folder holding runs (the newest is read).
    pub run: PathBuf,
    /// Trials to calibrate on (comma-separated name parts, `c1,c2,c4`).
    #[arg(long)]
    pub fit: String,
    /// Trials to predict and check (`c8,c16`).
    #[arg(long)]
    pub holdout: String,
    /// The server's slot count, when the fit trials do not show it.
    #[arg(long)]
    pub slots: Option<u32>,
    /// Largest allowed error of a held-out TTFT p50 or output tok/s (`15%` or `0.15`).
    #[arg(long, default_value = "15%", value_parser = parse_fraction)]
    pub max_error: f64,
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    let value = match text.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => text.trim().parse::<f64>(),
    }
    .map_err(|_| format!("`{text}` is not a fraction (0.15) or a percentage (15%)"))?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(format!("`{text}` must be a finite fraction ≥ 0"))
    }
}

/// Flags of `sim calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// A run folder, or an output folder holding runs (the newest is read).
    pub run: PathBuf,
    /// Only trials whose name holds one of these comma-separated parts (`c1,c2,c4`).
    #[arg(long)]
    pub trials: Option<String>,
    /// The server's slot count (largest batch), when the data does not show it.
    #[arg(long)]
    pub slots: Option<u32>,
    /// Where to write the profile (an llm-sim configuration); the fit chart goes beside it
    /// (`profile.yaml` → `profile.fit.svg`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Flags of `sim run`; each overrides the configuration file (or the defaults).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// YAML configuration.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Scheduler.
    #[arg(long)]
    pub scheduler: Option<SchedulerArg>,
    /// Replicas.
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Router between replicas.
    #[arg(long)]
    pub router: Option<RouterArg>,
    /// Hardware profile.
    #[arg(long)]
    pub hardware: Option<HardwareArg>,
    /// Model profile.
    #[arg(long)]
    pub model: Option<ModelArg>,
    /// GPUs per replica (tensor parallelism).
    #[arg(long = "tp")]
    pub tensor_parallel: Option<u32>,
    /// roofline, fitted:ALPHA:BETA:GAMMA (seconds) or fitted-csv:PATH.
    #[arg(long, value_parser = parse_cost)]
    pub cost: Option<CostSpec>,
    /// Batch size (static, multi-bin) or maximum batch size (continuous).
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// Continuous: most tokens per step.
    #[arg(long)]
    pub token_budget: Option<u32>,
    /// Continuous: chunked prefill.
    #[arg(long)]
    pub chunked_prefill: bool,
    /// Static and multi-bin: longest wait before a batch that is not full is served, seconds.
    #[arg(long)]
    pub max_wait_s: Option<f64>,
    /// Multi-bin: number of bins.
    #[arg(long)]
    pub bins: Option<usize>,
    /// Dynamic batch size against this decode time-between-tokens deadline, ms (margin 10 %).
    #[arg(long)]
    pub dynamic_tbt_ms: Option<f64>,
    /// KV capacity per replica in tokens, instead of what the profiles leave.
    #[arg(long)]
    pub kv_tokens: Option<u64>,
    /// KV block size, tokens.
    #[arg(long)]
    pub block_size: Option<u32>,
    /// Number of requests.
    #[arg(long)]
    pub requests: Option<usize>,
    /// at-once, poisson:RATE or gamma:RATE:CV.
    #[arg(long)]
    pub arrival: Option<Arrival>,
    /// Prompt lengths: N, uniform:MIN:MAX, exponential:MEAN, lognormal:MEAN:SIGMA.
    #[arg(long)]
    pub prompt: Option<Lengths>,
    /// Output lengths, as for --prompt.
    #[arg(long)]
    pub output: Option<Lengths>,
    /// σ of the lognormal noise on predicted output lengths.
    #[arg(long)]
    pub prediction_sigma: Option<f64>,
    /// Seed of the workload.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Per-token deadline, ms.
    #[arg(long)]
    pub sla_tpot_ms: Option<f64>,
    /// Per-request deadline, s.
    #[arg(long)]
    pub sla_e2e_s: Option<f64>,
    /// Also search the highest arrival rate whose SLA violation rate is at most this share.
    #[arg(long, value_name = "MAX_VIOLATION")]
    pub capacity: Option<f64>,
    /// Print the summary as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `sim study`.
#[derive(Debug, Args)]
pub struct StudyArgs {
    /// Output folder for the CSVs and analysis.json.
    #[arg(long)]
    pub out: PathBuf,
    /// The reduced study the tests snapshot, instead of the full one.
    #[arg(long)]
    pub small: bool,
}

/// Flags of `sim bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Requests per scheduler.
    #[arg(long, default_value_t = BenchSpec::default().requests)]
    pub requests: usize,
    /// Mean output length, tokens.
    #[arg(long, default_value_t = BenchSpec::default().output_mean)]
    pub output_mean: f64,
    /// Poisson arrival rate, requests per second.
    #[arg(long, default_value_t = BenchSpec::default().rate)]
    pub rate: f64,
}

fn parse_cost(text: &str) -> Result<CostSpec, String> {
    if text == "roofline" {
        return Ok(CostSpec::Roofline);
    }
    if let Some(path) = text.strip_prefix("fitted-csv:") {
        return Ok(CostSpec::FittedCsv(PathBuf::from(path)));
    }
    let numbers: Option<Vec<f64>> = text
        .strip_prefix("fitted:")
        .map(|rest| rest.split(':').map(str::parse).collect::<Result<_, _>>())
        .and_then(Result::ok);
    match numbers.as_deref() {
        Some(&[alpha, beta, gamma]) => Ok(CostSpec::Fitted(FittedCost {
            alpha,
            beta,
            gamma,
            prefill_per_token: 0.0,
        })),
        _ => Err("expected roofline, fitted:ALPHA:BETA:GAMMA or fitted-csv:PATH".to_string()),
    }
}

impl RunArgs {
    /// The configuration: the file (or the defaults) with the flags applied.
    pub fn config(&self) -> Result<SimConfig, SimError> {
        let mut c = match &self.config {
            Some(path) => SimConfig::load(path)?,
            None => SimConfig::default(),
        };
        let s = &mut c.scheduler;
        set(&mut s.kind, self.scheduler.map(SchedulerKind::from));
        set(&mut s.batch_size, self.batch_size);
        set(&mut s.token_budget, self.token_budget);
        s.chunked_prefill |= self.chunked_prefill;
        if self.max_wait_s.is_some() {
            s.max_wait_s = self.max_wait_s;
        }
        set(&mut s.bins, self.bins);
        if let Some(ms) = self.dynamic_tbt_ms {
            s.dynamic = Some(DynamicBatchConfig {
                min_batch: 1,
                tbt_deadline_s: ms / 1e3,
                margin_s: ms / 1e4,
            });
        }
        set(&mut c.replicas, self.replicas);
        set(&mut c.router, self.router.map(Router::from));
        set(&mut c.hardware, self.hardware.map(value_name));
        set(&mut c.model, self.model.map(value_name));
        set(&mut c.tensor_parallel, self.tensor_parallel);
        set(&mut c.cost, self.cost.clone());
        if self.kv_tokens.is_some() {
            c.kv.capacity_tokens = self.kv_tokens;
        }
        set(&mut c.kv.block_size, self.block_size);
        let w = &mut c.workload;
        set(&mut w.requests, self.requests);
        set(&mut w.arrival, self.arrival);
        set(&mut w.prompt, self.prompt);
        set(&mut w.output, self.output);
        set(&mut w.prediction_sigma, self.prediction_sigma);
        set(&mut w.seed, self.seed);
        set(&mut c.sla.tpot_s, self.sla_tpot_ms.map(|ms| ms / 1e3));
        set(&mut c.sla.e2e_s, self.sla_e2e_s);
        Ok(c)
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

/// Runs a `sim` subcommand, writing what it prints to `out` (progress goes to stderr).
pub fn execute(command: SimCommand, out: &mut dyn Write) -> anyhow::Result<()> {
    let text = match command {
        SimCommand::Calibrate(args) => calibrate(&args)?,
        SimCommand::Predict(args) => predict(&args)?,
        SimCommand::WhatIf(args) => what_if(&args)?,
        SimCommand::Validate(args) => {
            let run = crate::compare::runs::read_run(&args.run, None)?;
            let validation =
                validate_run(&run, &args.fit, &args.holdout, args.slots, args.max_error)?;
            out.write_all(validation.render().as_bytes())?;
            let page = crate::report::html::write(
                &run,
                &crate::report::analysis::Thresholds::default(),
                &crate::report::html::Extras::predicted(&validation.predicted),
            )?;
            writeln!(
                out,
                "report (prediction dashed over the measurements): {}",
                page.display()
            )?;
            out.flush()?;
            let failures = validation.failures();
            if !failures.is_empty() {
                anyhow::bail!(
                    "the prediction is off by more than {:.1} %: {}",
                    args.max_error * 100.0,
                    failures.join("; ")
                );
            }
            String::new()
        }
        SimCommand::Run(args) => run(&args)?,
        SimCommand::Study(args) => study(&args)?,
        SimCommand::Bench(args) => {
            let spec = BenchSpec {
                requests: args.requests,
                output_mean: args.output_mean,
                rate: args.rate,
            };
            let mut text = format!("{}\n", bench::HEADER);
            for row in bench::run(&spec)? {
                text.push_str(&bench::render_row(&row));
                text.push('\n');
            }
            text
        }
        SimCommand::Fit { csv } => {
            let fit = fit::fit_csv(&csv)?;
            format!(
                "alpha {:.6e} s, beta {:.6e} s/token, gamma {:.4} ({} points, rms residual \
                 {:.3e} s)\n",
                fit.model.alpha, fit.model.beta, fit.model.gamma, fit.points, fit.rms_residual_s
            )
        }
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| SimError::Io {
            path: PathBuf::from("<stdout>"),
            source,
        })?;
    Ok(())
}

fn predict(args: &PredictArgs) -> anyhow::Result<String> {
    let profile = SimConfig::load(&args.profile)?;
    let case = crate::case::load_case(&args.case)?;
    let folder = match args.case.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let wanted = std::fs::canonicalize(&case.path).unwrap_or_else(|_| case.path.clone());
    let plans: Vec<TrialPlan> = discover_with(&folder, None, &Overrides::default())
        .into_iter()
        .filter_map(|found| match found {
            Discovered::Plan(plan) => Some(plan),
            Discovered::Broken { .. } => None,
        })
        .filter(|plan| {
            std::fs::canonicalize(&plan.case().path).unwrap_or_else(|_| plan.case().path.clone())
                == wanted
        })
        .collect();
    let out = crate::report::trial_dir::out_dir(args.out.as_deref());
    let prediction = twin::predict::predict(
        &profile,
        twin::predict::Client {
            overhead_s: args.overhead_ms / 1e3,
            send_gap_s: args.send_gap_ms / 1e3,
            admission_window_s: args.admission_window_ms / 1e3,
        },
        &plans,
        &out,
        &args.run_id,
    )?;
    let mut text = String::new();
    for trial in &prediction.trials {
        text.push_str(&crate::report::table::render(
            &trial.report,
            crate::report::table::Numbers::Measured,
        ));
        text.push('\n');
    }
    for (name, why) in &prediction.skipped {
        text.push_str(&format!("{name}: not predicted ({why})\n"));
    }
    text.push_str(&format!(
        "wrote {} predicted trials to {}\n",
        prediction.trials.len(),
        out.join(&args.run_id).display()
    ));
    Ok(text)
}

fn what_if(args: &WhatIfArgs) -> anyhow::Result<String> {
    use twin::whatif::{Scenario, Slo};
    let profile = SimConfig::load(&args.profile)?;
    let given = if args.scenarios.is_empty() {
        [
            "replicas=2",
            "replicas=2 router=least-outstanding",
            "bins=4",
        ]
        .iter()
        .map(|s| s.parse::<Scenario>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        args.scenarios.clone()
    };
    let mut scenarios = vec![Scenario::default()];
    scenarios.extend(given.into_iter().filter(|s| *s != Scenario::default()));
    for (name, value) in [("TTFT", args.slo_ttft_ms), ("TPOT", args.slo_tpot_ms)] {
        if !(value.is_finite() && value > 0.0) {
            anyhow::bail!("the {name} objective must be a positive number of ms");
        }
    }
    let slo = Slo {
        ttft_ms: args.slo_ttft_ms,
        tpot_ms: args.slo_tpot_ms,
    };
    let result = twin::whatif::what_if(&profile, &scenarios, slo)?;
    let dir = match (&args.out, args.profile.parent()) {
        (Some(out), _) => out.clone(),
        (None, Some(p)) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let (md, svg) = (dir.join("what-if.md"), dir.join("what-if.svg"));
    std::fs::write(&md, result.markdown())?;
    std::fs::write(&svg, result.chart().to_svg()?)?;
    Ok(format!(
        "{}\nwrote {} and {}\n",
        result.render(),
        md.display(),
        svg.display()
    ))
}

fn calibrate(args: &CalibrateArgs) -> Result<String, TwinError> {
    let run = crate::compare::runs::read_run(&args.run, None)?;
    let options = CalibrateOptions {
        trials: args.trials.clone(),
        slots: args.slots,
    };
    let calibration = calibrate_run(&run, &options)?;
    let mut text = calibration.render();
    if let Some(path) = &args.out {
        calibration.write_profile(path)?;
        let chart = path.with_extension("fit.svg");
        calibration.write_fit_chart(&chart)?;
        text.push_str(&format!(
            "wrote the fit chart (measured against fitted step times) {}\n",
            chart.display()
        ));
        text.push_str(&format!(
            "wrote the profile {p}; predict with: llm-stress sim predict {p} CASE \
             --overhead-ms {:.3} --send-gap-ms {:.3} --admission-window-ms {:.3}\n",
            calibration.overhead_s * 1e3,
            calibration.send_gap_s * 1e3,
            calibration.admission_window_s * 1e3,
            p = path.display()
        ));
    }
    Ok(text)
}

fn study(args: &StudyArgs) -> Result<String, SimError> {
    let config = if args.small {
        StudyConfig::small()
    } else {
        StudyConfig::full()
    };
    let outcome = study::run_study(&config, &args.out, |step, wall_s| {
        eprintln!("{step}: {wall_s:.2} s");
    })?;
    let page = crate::report::html::study::write(&args.out, &outcome.rows, &outcome.analysis)
        .map_err(|e| SimError::Report(e.to_string()))?;
    eprintln!("study page: {}", page.display());
    Ok(format!(
        "{}\n{}\n{}\n",
        study::render(&outcome.rows),
        serde_json::to_string_pretty(&outcome.analysis).unwrap_or_default(),
        written(&args.out)
    ))
}

fn written(out: &Path) -> String {
    format!(
        "wrote {}: one CSV per step, all.csv, analysis.json and study.html",
        out.display()
    )
}

fn run(args: &RunArgs) -> Result<String, SimError> {
    let config = args.config()?;
    let kv_tokens = config.kv_geometry()?.capacity_tokens();
    let result = config.run()?;
    let capacity = args
        .capacity
        .map(|max_violation| {
            let search = CapacitySearch {
                max_violation,
                ..CapacitySearch::default()
            };
            capacity_qps(&config, &search)
        })
        .transpose()?;
    if args.json {
        let json = serde_json::json!({
            "config": config,
            "summary": result.summary,
            "capacity": capacity,
        });
        return Ok(serde_json::to_string_pretty(&json).unwrap_or_default() + "\n");
    }
    let mut text = table::render(&config, &result.summary, kv_tokens);
    if let Some(capacity) = capacity {
        text.push_str(&format!(
            "\ncapacity under SLA: {:.3} req/s ({} probes, at most {:.1} % violations)\n",
            capacity.qps,
            capacity.probes.len(),
            args.capacity.unwrap_or_default() * 100.0
        ));
    }
    Ok(text)
}

/// The simulator's subcommands, as `llm-stress sim` takes them.
#[derive(clap::Args)]
pub struct SimArgs {
    #[command(subcommand)]
    command: SimCommand,
}

/// Runs the simulator command, printing to stdout.
pub fn exec(args: SimArgs) -> anyhow::Result<std::process::ExitCode> {
    execute(args.command, &mut std::io::stdout().lock())?;
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::parse_fraction;

    #[rstest]
    #[case("15%", Some(0.15))]
    #[case("0.15", Some(0.15))]
    #[case(" 2.5 % ", Some(0.025))]
    #[case("-1%", None)]
    #[case("NaN", None)]
    #[case("ten", None)]
    fn max_errors_parse_as_fractions(#[case] text: &str, #[case] want: Option<f64>) {
        let got = parse_fraction(text).ok();
        match (got, want) {
            (Some(g), Some(w)) => assert!((g - w).abs() < 1e-12, "{text}: {g}"),
            (g, w) => assert_eq!(g, w, "{text}"),
        }
    }
}
