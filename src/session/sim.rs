//! `sim` trials: one step of the case's simulator study ([`crate::sim::study`]), in virtual
//! time, so its results are exact and the same on every run.
//!
//! A case with kind `sim` has one trial per step: `request-scaling`, `replica-scaling` and
//! `bins`. The K-bins step runs at the knee of replica scaling, so the `bins` trial runs the
//! replica-scaling step itself first (trials must not depend on each other's order or
//! process).
//!
//! The trial folder (written by the files sink, [`crate::report::sinks`]) holds
//! `summary.json` (the [`TrialReport`], with its [`SimStepReport`]), the step's CSV in the
//! study's columns (`bins` also writes the `replica-scaling.csv` it found the knee in) and
//! `table.md`, the trial's table. A sim trial writes no `results.csv` row: those columns
//! measure load. The checks are the judge's ([`crate::judge::sim`]).

use std::time::Instant;

use super::RunContext;
use super::trial::meta;
use crate::case::{ServerKind, SimStudySpec};
use crate::judge::{self, Verdict};
use crate::plan::{SimStep, TrialPlan};
use crate::report::sim::SimStepReport;
use crate::report::{TrialBody, TrialReport};
use crate::sim::error::SimError;
use crate::sim::study::{self, StudyConfig, StudyRow, StudyStep, analysis};

/// The rows a sim trial's CSV files hold.
#[derive(Debug, Clone)]
pub struct StudyFiles {
    /// The step.
    pub step: SimStep,
    /// Runs of the replica-scaling step that the K-bins step needed for its knee (written as
    /// `replica-scaling.csv` beside the step's own file when there are any).
    pub knee_runs: Vec<StudyRow>,
    /// The step's runs.
    pub rows: Vec<StudyRow>,
}

/// What a trial's simulations gave.
#[derive(Default)]
struct Simulated {
    /// Runs of the replica-scaling step that the K-bins step needed for its knee.
    knee_runs: Vec<StudyRow>,
    /// The step's runs.
    rows: Vec<StudyRow>,
}

fn simulate(config: &StudyConfig, step: SimStep) -> Result<Simulated, SimError> {
    let only = |step| {
        Ok(Simulated {
            knee_runs: Vec::new(),
            rows: study::run_step(config, step)?,
        })
    };
    match step {
        SimStep::RequestScaling => only(StudyStep::RequestScaling),
        SimStep::ReplicaScaling => only(StudyStep::ReplicaScaling),
        SimStep::Bins => {
            let knee_runs = study::run_step(config, StudyStep::ReplicaScaling)?;
            let replicas = analysis::knee(&knee_runs).ok_or_else(|| {
                SimError::invalid("sim.replica_counts", "replica scaling ran nothing: no knee")
            })?;
            let rows = study::run_step(config, StudyStep::Bins { replicas })?;
            Ok(Simulated { knee_runs, rows })
        }
    }
}

/// Runs the study step. A simulation that fails fails the trial with the simulator's error.
pub(super) fn run(ctx: &RunContext, plan: &TrialPlan, step: SimStep) -> (TrialReport, StudyFiles) {
    let spec = &plan.case().spec;
    let study_spec = spec.sim.as_ref();
    let config = study_spec.map_or_else(StudyConfig::small, SimStudySpec::study_config);
    let started = Instant::now();
    let simulated = match study_spec {
        Some(_) => simulate(&config, step),
        None => Err(SimError::invalid("sim", "the case has no `sim` section")),
    };
    let wall_s = started.elapsed().as_secs_f64();
    let (Simulated { knee_runs, rows }, checks) = match simulated {
        Ok(simulated) => {
            let checks = judge::sim::checks(step, &simulated.rows);
            (simulated, checks)
        }
        Err(e) => (Simulated::default(), vec![judge::sim::error_check(&e)]),
    };
    let sim = step_report(
        study_spec.map_or("small", |s| s.preset.as_str()),
        step,
        &config,
        &knee_runs,
        &rows,
        wall_s,
    );
    let report = TrialReport {
        meta: meta(
            &ctx.run_id,
            plan,
            config.base.model.clone(),
            ServerKind::Simulator,
        ),
        body: TrialBody::Sim(sim),
        verdict: Verdict::from_checks(checks),
    };
    let files = StudyFiles {
        step,
        knee_runs,
        rows,
    };
    (report, files)
}

/// The report of the step: counts, the knee and best K where the step has them, the
/// findings, and the rows as a table.
fn step_report(
    preset: &str,
    step: SimStep,
    config: &StudyConfig,
    knee_runs: &[StudyRow],
    rows: &[StudyRow],
    wall_s: f64,
) -> SimStepReport {
    let all: Vec<StudyRow> = knee_runs.iter().chain(rows).cloned().collect();
    let analysis = study::analyse(&all);
    let total = |count: fn(&StudyRow) -> usize| rows.iter().map(count).sum::<usize>() as u64;
    SimStepReport {
        preset: preset.to_string(),
        step: step.name().to_string(),
        hardware: config.base.hardware.clone(),
        runs: rows.len(),
        requests: total(|r| r.requests),
        completed: total(|r| r.summary.completed),
        rejected: total(|r| r.summary.rejected),
        knee_replicas: analysis.knee_replicas,
        best_bins: analysis.best_bins,
        findings: analysis.findings,
        table: study::render(rows),
        wall_s,
    }
}
