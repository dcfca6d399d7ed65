//! `sim` trials: one step of the case's simulator study ([`crate::sim::study`]), in virtual
//! time, so its results are exact and the same on every run.
//!
//! A case with kind `sim` has one trial per step: `request-scaling`, `replica-scaling` and
//! `bins`. The K-bins step runs at the knee of replica scaling, so the `bins` trial runs the
//! replica-scaling step itself first (trials must not depend on each other's order or
//! process).
//!
//! The trial folder holds `summary.json` (the [`TrialReport`], with its [`SimStepReport`]),
//! the step's CSV in the study's columns (`bins` also writes the `replica-scaling.csv` it found
//! the knee in) and [`TABLE_FILE`], the trial's table. A sim trial writes no `results.csv`
//! row: those columns measure load.
//!
//! Checks: every simulated request completes (none rejected as too long for the KV cache,
//! none left unfinished); for replica scaling, output throughput does not fall as replicas are
//! added. A simulation that cannot run (a setting the simulator refuses) fails the trial with
//! the simulator's error.

use std::path::Path;
use std::time::{Instant, SystemTime};

use super::{RunContext, RunError, TrialOutcome, TrialPlan};
use crate::case::{Expect, SimStudySpec};
use crate::report::sim::SimStepReport;
use crate::report::table::{self, Numbers};
use crate::report::{ReportError, TrialReport, trial_dir};
use crate::sim::error::SimError;
use crate::sim::study::{self, StudyConfig, StudyRow, StudyStep, analysis};
use crate::verdict::{Check, Status, Verdict};

/// The trial's table (as `llm-stress run` prints it), in its folder.
pub const TABLE_FILE: &str = "table.md";

/// How much output throughput may fall when replicas are added before the scaling check
/// fails: routing makes the replicas' loads differ slightly from one count to the next.
pub const SCALING_TOLERANCE: f64 = 0.01;

/// One step of the study, as a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimStep {
    /// Request scaling: every scheduler variant at every request count.
    RequestScaling,
    /// Replica scaling: multi-bin at every replica count.
    ReplicaScaling,
    /// K-bins sensitivity at the knee of replica scaling (which the trial runs first).
    Bins,
}

impl SimStep {
    /// Every step, in the study's order.
    pub const ALL: [SimStep; 3] = [
        SimStep::RequestScaling,
        SimStep::ReplicaScaling,
        SimStep::Bins,
    ];

    /// The step's name in trial names and files (the study's own step names).
    pub fn name(self) -> &'static str {
        match self {
            SimStep::RequestScaling => "request-scaling",
            SimStep::ReplicaScaling => "replica-scaling",
            SimStep::Bins => "bins",
        }
    }
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

/// Runs the study step and writes the trial folder. A simulation that fails fails the trial;
/// only failing to write the folder is an error.
pub(super) fn execute(
    plan: &TrialPlan,
    step: SimStep,
    ctx: &RunContext,
) -> Result<TrialOutcome, RunError> {
    let spec = &plan.case.spec;
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
            let checks = checks(step, &simulated.rows);
            (simulated, checks)
        }
        Err(e) => (Simulated::default(), vec![error_check(&e)]),
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
        run_id: ctx.run_id.clone(),
        timestamp: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        trial: plan.name(),
        kind: plan.kind,
        case: spec.name.clone(),
        model: config.base.model.clone(),
        server: "simulator".into(),
        api: "-".into(),
        isl: 0,
        osl: 0,
        mode: "sim".into(),
        concurrency: 0,
        rate: None,
        num_prompts: 0,
        adjusted: None,
        summary: Default::default(),
        endpoints: Vec::new(),
        accuracy: None,
        accuracy_threshold: None,
        accuracy_detail: None,
        server_metrics: Vec::new(),
        sim: Some(sim),
        verdict: Verdict::from_checks(checks),
        expect_fail: spec.expect == Expect::Fail,
    };
    let passed = !trial_dir::trial_failed(&report);
    let dir = trial_dir::write_summary(&ctx.out_dir, &report, !passed)?;
    if !knee_runs.is_empty() {
        let name = StudyStep::ReplicaScaling.name();
        study::write_csv(&dir.join(format!("{name}.csv")), &knee_runs)?;
    }
    study::write_csv(&dir.join(format!("{}.csv", step.name())), &rows)?;
    write_text(
        &dir.join(TABLE_FILE),
        &table::render(&report, Numbers::Measured),
    )?;
    Ok(TrialOutcome {
        report,
        passed,
        dir,
    })
}

fn write_text(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|e| ReportError::io(path, "write", e))
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

/// The step's checks: every request served; for replica scaling, throughput that does not
/// fall with more replicas.
fn checks(step: SimStep, rows: &[StudyRow]) -> Vec<Check> {
    let mut checks = vec![served_check(rows)];
    if step == SimStep::ReplicaScaling {
        checks.push(scaling_check(rows));
    }
    checks
}

fn check(name: &str, rule: &str, status: Status, reason: String) -> Check {
    Check {
        name: name.to_string(),
        source: "sim".to_string(),
        actual: None,
        target: None,
        ratio: None,
        rule: rule.to_string(),
        status,
        reason,
    }
}

fn error_check(error: &SimError) -> Check {
    check(
        "simulations",
        "every simulation of the step runs",
        Status::Fail,
        error.to_string(),
    )
}

/// Every simulated request completes: a rejected request (one that can never fit the KV
/// cache) or one left unfinished means the simulated deployment did not serve the workload.
fn served_check(rows: &[StudyRow]) -> Check {
    let requests: usize = rows.iter().map(|r| r.requests).sum();
    let completed: usize = rows.iter().map(|r| r.summary.completed).sum();
    let short: Vec<String> = rows
        .iter()
        .filter(|r| r.summary.completed < r.requests)
        .map(shortfall)
        .collect();
    let (status, reason) = match (rows.len(), short.as_slice()) {
        (0, _) => (Status::Fail, "the step ran no simulation".to_string()),
        (runs, []) => (
            Status::Pass,
            format!("{completed} of {requests} requests completed over {runs} simulations"),
        ),
        (runs, short) => {
            let shown: Vec<&str> = short.iter().take(3).map(String::as_str).collect();
            let more = short.len().saturating_sub(shown.len());
            let more = if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            };
            (
                Status::Fail,
                format!(
                    "{} of {runs} simulations did not serve every request: {}{more}",
                    short.len(),
                    shown.join("; ")
                ),
            )
        }
    };
    Check {
        actual: Some(completed as f64),
        target: Some(requests as f64),
        ..check(
            "requests served",
            "every simulated request completes (none rejected, none unfinished)",
            status,
            reason,
        )
    }
}

/// `multi-bin on 2 replica(s), 4 bin(s), 500 requests: 380 completed, 120 rejected (never
/// fit the KV cache), 0 unfinished`.
fn shortfall(row: &StudyRow) -> String {
    let s = &row.summary;
    let unfinished = row.requests.saturating_sub(s.completed + s.rejected);
    format!(
        "{} on {} replica(s), {} bin(s), {} requests: {} completed, {} rejected (never fit \
         the KV cache), {unfinished} unfinished",
        row.scheduler.as_str(),
        row.replicas,
        row.bins,
        row.requests,
        s.completed,
        s.rejected
    )
}

/// Output throughput does not fall (beyond [`SCALING_TOLERANCE`]) from one replica count to
/// the next: the same arrivals over more replicas are served at least as fast.
fn scaling_check(rows: &[StudyRow]) -> Check {
    let rule = format!(
        "output tok/s does not fall by more than {:.0} % when replicas are added",
        SCALING_TOLERANCE * 100.0
    );
    let worst = rows
        .windows(2)
        .filter(|w| w[0].summary.output_tok_s > 0.0)
        .map(|w| (w[1].summary.output_tok_s / w[0].summary.output_tok_s, w))
        .min_by(|a, b| a.0.total_cmp(&b.0));
    let Some((ratio, pair)) = worst else {
        return check(
            "throughput with replicas",
            &rule,
            Status::NotApplicable,
            "fewer than two replica counts with throughput: nothing to compare".to_string(),
        );
    };
    let (before, after) = (&pair[0], &pair[1]);
    let (status, reason) = if ratio >= 1.0 - SCALING_TOLERANCE {
        let (first, last) = (&rows[0], &rows[rows.len() - 1]);
        (
            Status::Pass,
            format!(
                "{:.1} tok/s on {} replica(s) to {:.1} on {}; each count keeps at least {:.1} % \
                 of the one before",
                first.summary.output_tok_s,
                first.replicas,
                last.summary.output_tok_s,
                last.replicas,
                ratio * 100.0
            ),
        )
    } else {
        (
            Status::Fail,
            format!(
                "{:.1} tok/s on {} replica(s) falls to {:.1} on {} ({:.1} %)",
                before.summary.output_tok_s,
                before.replicas,
                after.summary.output_tok_s,
                after.replicas,
                ratio * 100.0
            ),
        )
    };
    Check {
        actual: Some(ratio),
        target: Some(1.0 - SCALING_TOLERANCE),
        ..check("throughput with replicas", &rule, status, reason)
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;
    use crate::sim::metrics::SimSummary;
    use crate::sim::scheduler::SchedulerKind;

    /// A run of `requests` requests on `replicas` replicas that completed `completed`,
    /// rejected `rejected`, at `tok_s` output tokens per second.
    fn row(
        replicas: usize,
        requests: usize,
        completed: usize,
        rejected: usize,
        tok_s: f64,
    ) -> StudyRow {
        let summary = SimSummary {
            requests,
            completed,
            rejected,
            output_tok_s: tok_s,
            ..SimSummary::default()
        };
        StudyRow {
            step: "replica-scaling",
            scheduler: SchedulerKind::MultiBin,
            replicas,
            bins: 4,
            requests,
            summary,
            wall_s: 0.0,
        }
    }

    #[rstest]
    #[case::all_served(vec![row(1, 10, 10, 0, 5.0), row(2, 10, 10, 0, 9.0)], Status::Pass, "20 of 20 requests completed")]
    #[case::rejected(vec![row(1, 10, 10, 0, 5.0), row(2, 10, 7, 3, 9.0)], Status::Fail, "1 of 2 simulations did not serve every request: multi-bin on 2 replica(s), 4 bin(s), 10 requests: 7 completed, 3 rejected")]
    #[case::unfinished(vec![row(1, 10, 8, 0, 5.0)], Status::Fail, "8 completed, 0 rejected (never fit the KV cache), 2 unfinished")]
    #[case::nothing_ran(vec![], Status::Fail, "the step ran no simulation")]
    fn every_request_must_be_served(
        #[case] rows: Vec<StudyRow>,
        #[case] status: Status,
        #[case] reason: &str,
    ) {
        let check = served_check(&rows);
        assert_eq!(check.status, status, "{}", check.reason);
        assert!(check.reason.contains(reason), "{}", check.reason);
    }

    #[test]
    fn only_the_first_shortfalls_are_listed() {
        let rows: Vec<StudyRow> = (1..=5).map(|r| row(r, 10, 9, 1, 1.0)).collect();
        let check = served_check(&rows);
        assert!(
            check.reason.starts_with("5 of 5 simulations"),
            "{}",
            check.reason
        );
        assert!(check.reason.ends_with("; and 2 more"), "{}", check.reason);
    }

    #[rstest]
    #[case::grows(&[10.0, 20.0, 20.0], Status::Pass, "10.0 tok/s on 1 replica(s) to 20.0 on 3")]
    #[case::noise(&[10.0, 20.0, 19.9], Status::Pass, "each count keeps at least 99.5 % of the one before")]
    #[case::falls(&[10.0, 20.0, 15.0], Status::Fail, "20.0 tok/s on 2 replica(s) falls to 15.0 on 3 (75.0 %)")]
    #[case::one_count(&[10.0], Status::NotApplicable, "nothing to compare")]
    fn throughput_must_not_fall_with_replicas(
        #[case] tok_s: &[f64],
        #[case] status: Status,
        #[case] reason: &str,
    ) {
        let rows: Vec<StudyRow> = tok_s
            .iter()
            .enumerate()
            .map(|(i, &t)| row(i + 1, 10, 10, 0, t))
            .collect();
        let check = scaling_check(&rows);
        assert_eq!(check.status, status, "{}", check.reason);
        assert!(check.reason.contains(reason), "{}", check.reason);
    }

    #[test]
    fn a_simulation_error_fails_with_the_simulators_message() {
        let check = error_check(&SimError::invalid("sim.kv_tokens", "too small"));
        assert_eq!(check.status, Status::Fail);
        assert_eq!(check.reason, "`sim.kv_tokens`: too small");
    }

    #[test]
    fn step_names_are_the_studys() {
        assert_eq!(
            SimStep::RequestScaling.name(),
            StudyStep::RequestScaling.name()
        );
        assert_eq!(
            SimStep::ReplicaScaling.name(),
            StudyStep::ReplicaScaling.name()
        );
        assert_eq!(SimStep::Bins.name(), StudyStep::Bins { replicas: 1 }.name());
    }
}
