//! Running one trial end to end: server, load, summary, verdict, reports. Shared by the test
//! harness and the CLI.
//!
//! [`execute`] is the whole trial; [`measure`] brings up the servers and drives the load, the
//! accuracy phase ([`accuracy`]) or both; [`prompting`] prepares what is sent; [`sim`] runs a
//! step of the simulator study instead.

mod accuracy;
mod measure;
mod prompting;
pub mod sim;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use crate::case::{Expect, Kind, LoadedCase, ServerSpec};
use crate::load::Shape;
use crate::matrix::Combination;
use crate::report::{self, TrialReport};
use crate::verdict::Verdict;
use measure::measure;
pub use sim::SimStep;

/// One trial to run: a kind, a case and what of the case it runs.
#[derive(Debug, Clone)]
pub struct TrialPlan {
    /// What the trial does.
    pub kind: Kind,
    /// The case (shared by all its trials).
    pub case: Arc<LoadedCase>,
    /// The matrix point or study step it runs.
    pub work: Work,
}

/// What a trial runs.
#[derive(Debug, Clone)]
pub enum Work {
    /// One point of the case's matrix, sent to its servers (`perf`, `stress`; an `accuracy`
    /// trial sends no load and carries the case's first point).
    Matrix(MatrixPoint),
    /// One step of the case's simulator study (`sim`).
    Sim(SimStep),
}

/// A combination of the matrix and how it is driven.
#[derive(Debug, Clone)]
pub struct MatrixPoint {
    /// The combination.
    pub combination: Combination,
    /// How the combination is driven (closed, open at a rate, users).
    pub shape: Shape,
}

impl TrialPlan {
    /// The trial name without the kind: `case::isl128_osl64_c4_n4`, for the accuracy trial the
    /// task and its size, `case::gsm8k_n50`, and for a sim trial the step,
    /// `case::replica-scaling`.
    pub fn name(&self) -> String {
        let spec = &self.case.spec;
        match (&self.work, &spec.accuracy, self.kind) {
            (Work::Sim(step), _, _) => format!("{}::{}", spec.name, step.name()),
            (Work::Matrix(_), Some(accuracy), Kind::Accuracy) => {
                let size = accuracy.limit.map(|n| format!("_n{n}")).unwrap_or_default();
                format!("{}::{}{size}", spec.name, accuracy.task.as_str())
            }
            (Work::Matrix(point), _, _) => {
                format!("{}::{}", spec.name, point.shape.slug(&point.combination))
            }
        }
    }

    /// Why this trial cannot run here, if it cannot: a spawned server whose binary or model
    /// is missing (unless `LLM_STRESS_REQUIRE_REAL=1`). A sim trial needs no server.
    pub fn unsupported_reason(&self) -> Option<String> {
        if let Work::Sim(_) = self.work {
            return None;
        }
        self.case
            .spec
            .destinations()
            .iter()
            .find_map(|d| match &d.server {
                ServerSpec::Spawn(spawn) => crate::server::spawn::missing_requirement(spawn),
                _ => None,
            })
    }
}

/// Settings shared by every trial of a run.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Identifies the run in reports.
    pub run_id: String,
    /// Output folder (results.csv and trial folders go under it).
    pub out_dir: PathBuf,
    /// Attach every trial to this server instead of the case's.
    pub url_override: Option<String>,
}

impl RunContext {
    /// A context from the environment: `LLM_STRESS_RUN_ID` or nextest's run id or a fresh one,
    /// `LLM_STRESS_OUT` (or `out`), and `LLM_STRESS_URL`.
    pub fn from_env(out: Option<PathBuf>, url: Option<String>) -> RunContext {
        RunContext {
            run_id: run_id(),
            out_dir: report::trial_dir::out_dir(out.as_deref()),
            url_override: url.or_else(|| std::env::var(crate::server::URL_ENV).ok()),
        }
    }
}

fn run_id() -> String {
    if let Some(id) = ["LLM_STRESS_RUN_ID", "NEXTEST_RUN_ID"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    {
        return id;
    }
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let compact: String = stamp
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("{compact}-{}", std::process::id())
}

/// What a finished trial produced.
#[derive(Debug, Clone)]
pub struct TrialOutcome {
    /// The result model every report is a view of.
    pub report: TrialReport,
    /// Whether the trial passed (the verdict is what the case expects).
    pub passed: bool,
    /// Where the trial's folder was written.
    pub dir: PathBuf,
}

/// Why a trial's results could not be written.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// Writing reports failed.
    #[error(transparent)]
    Report(#[from] report::ReportError),
    /// Writing a sim trial's study files failed.
    #[error(transparent)]
    Sim(#[from] crate::sim::error::SimError),
}

/// Environment variable setting the client runtime's worker threads.
pub const CLIENT_THREADS_ENV: &str = "LLM_STRESS_CLIENT_THREADS";

/// Worker threads of the client runtime unless set: one thread handles about a million
/// streamed chunks per second (see the README's benchmark), far more than a server on the
/// same machine produces, and leaves the other cores to that server. The open-loop schedule
/// and the embedded server have threads of their own.
pub const DEFAULT_CLIENT_THREADS: usize = 1;

/// The async runtime load runs on, with `threads` workers (default
/// [`DEFAULT_CLIENT_THREADS`]).
pub fn client_runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.filter(|t| *t > 0).unwrap_or(DEFAULT_CLIENT_THREADS))
        .enable_all()
        .build()
}

/// Runs one trial and writes its reports (CSV row, trial folder; a sim trial writes its
/// folder only, see [`sim`]). A server that cannot be had, or requests that fail, make a
/// FAIL verdict with the evidence; only failing to write results is an error.
pub fn execute(plan: &TrialPlan, ctx: &RunContext) -> Result<TrialOutcome, RunError> {
    match &plan.work {
        Work::Matrix(point) => execute_point(plan, point, ctx),
        Work::Sim(step) => sim::execute(plan, *step, ctx),
    }
}

fn execute_point(
    plan: &TrialPlan,
    point: &MatrixPoint,
    ctx: &RunContext,
) -> Result<TrialOutcome, RunError> {
    let threads = std::env::var(CLIENT_THREADS_ENV)
        .ok()
        .and_then(|v| v.parse().ok());
    let runtime = client_runtime(threads)?;
    let measured = runtime.block_on(measure(plan, point, ctx));
    let verdict = Verdict::from_checks(measured.checks);
    let expect_fail = plan.case.spec.expect == Expect::Fail;
    let spec = &plan.case.spec;
    let (c, shape) = (&point.combination, &point.shape);
    let accuracy_only = plan.kind == Kind::Accuracy;
    let report = TrialReport {
        run_id: ctx.run_id.clone(),
        timestamp: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        trial: plan.name(),
        kind: plan.kind,
        case: spec.name.clone(),
        model: plan
            .case
            .model
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default(),
        server: measured.server_label.to_string(),
        api: spec.api.as_str().to_string(),
        isl: if accuracy_only { 0 } else { c.isl },
        osl: if accuracy_only { 0 } else { c.osl },
        mode: if accuracy_only {
            "accuracy".to_string()
        } else {
            shape.mode().as_str().to_string()
        },
        concurrency: match (&spec.accuracy, accuracy_only) {
            (Some(accuracy), true) => accuracy.concurrency,
            _ => shape.concurrency().or(spec.load.max_in_flight).unwrap_or(0),
        },
        rate: shape.rate().filter(|_| !accuracy_only),
        num_prompts: match &measured.accuracy {
            Some(accuracy) if accuracy_only => u32::try_from(accuracy.n).unwrap_or(u32::MAX),
            _ => shape.pool_size(),
        },
        adjusted: c
            .adjusted
            .filter(|_| !accuracy_only)
            .map(|a| format!("{}/{} {}", a.isl, a.osl, a.policy.as_str())),
        summary: measured.summary,
        endpoints: measured.endpoints,
        accuracy: measured.accuracy.as_ref().and_then(|a| a.score()),
        accuracy_threshold: measured
            .accuracy
            .as_ref()
            .and_then(|a| a.threshold.as_ref())
            .map(|t| t.value),
        accuracy_detail: measured.accuracy,
        server_metrics: measured.server_metrics,
        sim: None,
        verdict,
        expect_fail,
    };
    let passed = !report::trial_dir::trial_failed(&report);
    report::csv::append(&ctx.out_dir.join("results.csv"), &report)?;
    let dir = report::trial_dir::write(
        &ctx.out_dir,
        &report,
        &measured.records,
        &measured.samples,
        !passed,
    )?;
    Ok(TrialOutcome {
        report,
        passed,
        dir,
    })
}
