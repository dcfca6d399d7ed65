//! `llm-stress run`: every trial of the cases in a folder through one session, with the
//! reports written, each table printed, and the run published at the end.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::{Context, Result};

use super::{AnalysisArgs, PushArgs};
use crate::compare::baseline::BaselineRun;
use crate::load::Share;
use crate::plan::TrialPlan;
use crate::plan::discovery::{Discovered, discover_with};
use crate::progress::{self, ProgressDisplay, ProgressSetting};
use crate::session::shard::{self, Worker};
use crate::session::sinks::{Publisher, SampleWarnings, TablePrinter, TrialFiles};
use crate::session::{RunContext, RunTally, Session, SessionError};

/// Run the cases' trials and write reports.
#[derive(clap::Args)]
pub struct Args {
    /// Folder of case files.
    #[arg(default_value = "stress-cases")]
    cases: PathBuf,
    /// Attach every trial to this OpenAI-compatible server instead of the case's own.
    #[arg(long, env = "LLM_STRESS_URL")]
    url: Option<String>,
    /// Output folder.
    #[arg(long, env = "LLM_STRESS_OUT")]
    out: Option<PathBuf>,
    #[command(flatten)]
    selection: super::SelectionArgs,
    /// Live progress of each load: auto (a bar on a terminal, else a line every 10 s on
    /// stderr), bar, lines or off.
    #[arg(long, env = progress::PROGRESS_ENV, default_value = "auto", ignore_case = true)]
    progress: ProgressSetting,
    #[command(flatten)]
    analysis: AnalysisArgs,
    #[command(flatten)]
    push: PushArgs,
    /// Compare every trial with its namesake in this baseline (a run folder, or an output
    /// folder whose newest run, or --baseline-run, is used): a confident regression fails the
    /// trial.
    #[arg(long, env = crate::compare::baseline::BASELINE_ENV, value_name = "RUN")]
    baseline: Option<PathBuf>,
    /// The run id to read from --baseline when it is an output folder.
    #[arg(long, requires = "baseline")]
    baseline_run: Option<String>,
    #[command(flatten)]
    gate: super::compare::GateArgs,
    /// Warn when a trial's latency distribution holds fewer samples than this.
    #[arg(long, value_name = "N")]
    min_samples: Option<u64>,
    /// Also push every so often while the run goes (e.g. `30s`), not only at its end.
    #[arg(long, env = "LLM_STRESS_PUSH_INTERVAL", requires = "pushgateway")]
    push_interval: Option<humantime::Duration>,
    /// Run as worker I of N (0-based, e.g. `2/8`) of every load trial: send that share of the
    /// load, start with the other workers at a barrier in the run folder, and write the
    /// trials to OUT/RUN/shards/I for `llm-stress merge`. Unset, it is read from a Kubernetes
    /// Indexed Job (JOB_COMPLETION_INDEX, JOB_COMPLETION_COUNT) or a Slurm job array
    /// (SLURM_ARRAY_TASK_ID − SLURM_ARRAY_TASK_MIN, SLURM_ARRAY_TASK_COUNT). Every worker
    /// needs the same LLM_STRESS_RUN_ID and --out.
    #[arg(long, value_name = "I/N")]
    worker: Option<Share>,
    /// Workers: start the first load at this instant (RFC 3339, such as
    /// `2026-12-06T17:00:00Z`) rather than just after the last worker is ready.
    #[arg(long, value_name = "RFC3339", value_parser = parse_start_at)]
    start_at: Option<SystemTime>,
    /// Workers: how long to wait at a trial's barrier for the other workers.
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    barrier_timeout: humantime::Duration,
}

/// An RFC 3339 instant (`2026-12-06T17:00:00Z`).
fn parse_start_at(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("{text:?} is not an RFC 3339 instant such as 2026-12-06T17:00:00Z: {e}")
    })
}

/// The worker `args` (or the job engine's variables) make this process, and the output
/// folder its shards go to.
fn worker(args: &Args, context: &RunContext) -> Result<Option<(Worker, PathBuf)>> {
    let share = match args.worker {
        Some(share) => Some(share),
        None => Share::from_env(|name| std::env::var(name).ok())?,
    };
    let Some(share) = share else {
        anyhow::ensure!(
            args.start_at.is_none(),
            "--start-at is for workers (--worker I/N)"
        );
        return Ok(None);
    };
    anyhow::ensure!(
        std::env::var("LLM_STRESS_RUN_ID").is_ok_and(|id| !id.is_empty()),
        "worker {share}: set LLM_STRESS_RUN_ID to one run id for every worker (their shards \
         and barrier are under OUT/RUN)"
    );
    let mut worker = Worker::new(share, &context.out_dir, &context.run_id);
    worker.timeout = args.barrier_timeout.into();
    worker.start_at = args.start_at;
    let out = shard::worker_out(&context.out_dir, &context.run_id, share.index());
    Ok(Some((worker, out)))
}

impl Args {
    /// Every trial of the cases in `cases`, written under `out`, with the other settings at
    /// their defaults (the variables `run` reads are still read).
    pub(super) fn for_folder(
        cases: PathBuf,
        out: Option<PathBuf>,
        progress: ProgressSetting,
    ) -> Args {
        Args {
            cases,
            url: None,
            out,
            selection: super::SelectionArgs {
                filter: None,
                tags: Vec::new(),
                set: Vec::new(),
            },
            progress,
            analysis: AnalysisArgs::default(),
            push: PushArgs::default(),
            baseline: None,
            baseline_run: None,
            gate: super::compare::GateArgs::default(),
            push_interval: None,
            min_samples: None,
            worker: None,
            start_at: None,
            barrier_timeout: std::time::Duration::from_secs(600).into(),
        }
    }
}

/// Runs every trial; the exit code is 1 when any failed.
pub fn exec(args: Args) -> Result<ExitCode> {
    let publisher = Publisher::new(
        args.analysis.thresholds()?,
        args.push.gateway(),
        args.push_interval.map(Into::into),
    );
    let mut context = RunContext::from_env(args.out.clone(), args.url.clone());
    let worker = worker(&args, &context)?;
    if let Some((worker, out)) = &worker {
        eprintln!(
            "worker {} of run {}: shards in {}",
            worker.share,
            context.run_id,
            out.display()
        );
        context.out_dir = out.clone();
    }
    let mut session = Session::new(context.clone());
    let loads_only = worker.is_some();
    if let Some((worker, _)) = worker {
        session = session.as_worker(worker);
    }
    if let Some(path) = args.baseline.filter(|p| !p.as_os_str().is_empty()) {
        let gate = args.gate.gate()?;
        let baseline = BaselineRun::load(&path, args.baseline_run.as_deref(), gate)
            .with_context(|| format!("reading the baseline {}", path.display()))?;
        eprintln!("comparing with baseline run {}", baseline.run_id());
        session = session.compare_with(Ok(baseline));
    }
    if let Some(display) = args.progress.style().map(ProgressDisplay::start) {
        session = display.watch(session);
    }
    if let Some(min) = args.min_samples {
        session = session.with_sink(SampleWarnings { min });
    }
    let session = session
        .with_sink(TrialFiles::new(context.out_dir.clone()))
        .with_sink(TablePrinter)
        .with_sink(publisher);
    let overrides = args.selection.overrides()?;
    let selection = Selection {
        filter: args.selection.filter.as_deref(),
        tags: &args.selection.tags,
        loads_only,
    };
    let tally = run_all(
        session,
        discover_with(&args.cases, None, &overrides),
        &selection,
    )?;
    Ok(if tally.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Which trials run: names containing `filter`, of cases with one of `tags` (all when
/// empty).
struct Selection<'a> {
    filter: Option<&'a str>,
    tags: &'a [String],
    /// A worker runs load trials only.
    loads_only: bool,
}

/// Runs every discovered trial the selection takes, skipping those that cannot run here and
/// noting cases that could not be read, then finishes the session. A trial whose results
/// cannot be written ends the run early (after publishing what was written).
fn run_all(
    session: Session,
    discovered: Vec<Discovered>,
    selection: &Selection<'_>,
) -> Result<RunTally, SessionError> {
    for found in discovered {
        match found {
            Discovered::Broken {
                name,
                kind,
                message,
            } => {
                eprintln!("[{kind}] {name}: {message}\n");
                session.note_failure(format!("[{kind}] {name}"));
            }
            Discovered::Plan(plan) => {
                let full = plan.full_name();
                if selection.filter.is_some_and(|f| !full.contains(f))
                    || !plan.has_any_tag(selection.tags)
                {
                    continue;
                }
                if selection.loads_only && !matches!(plan, TrialPlan::Load(_)) {
                    eprintln!("skipping {full}: workers run load trials only");
                    continue;
                }
                if let Some(reason) = plan.unsupported_reason() {
                    eprintln!("skipping {full}: {reason}");
                    continue;
                }
                if let Err(e) = session.run_trial(&plan) {
                    session.note_failure(full);
                    session.finish()?;
                    return Err(e);
                }
            }
        }
    }
    session.finish()
}
